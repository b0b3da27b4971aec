"""What the three video functions share: the S3 client, running ffmpeg, and reporting progress to Sluice."""
import json
import os
import subprocess
import sys
import urllib.request

import boto3


def s3():
    """An S3 client for AWS, or for MinIO and other S3-compatible stores when S3_ENDPOINT is set."""
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("S3_ENDPOINT") or None,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )


def run(*args: str) -> str:
    """Runs a command (ffmpeg, ffprobe, colourise); its stdout, or exits with its stderr on failure."""
    done = subprocess.run(args, capture_output=True, check=False)
    if done.returncode != 0:
        fail(f"{args[0]} failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    return done.stdout.decode(errors="replace")


def probe(path: str) -> dict:
    """Frames (counted by decoding), frame rate and duration of a video's first stream."""
    out = run(
        "ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
        "-show_entries", "stream=nb_read_frames,r_frame_rate,width,height", "-show_entries", "format=duration",
        "-of", "json", path,
    )
    info = json.loads(out)
    stream = info["streams"][0]
    num, den = stream["r_frame_rate"].split("/")
    return {
        "frames": int(stream["nb_read_frames"]),
        "fps": int(num) / int(den),
        "rate": stream["r_frame_rate"],
        "duration": float(info["format"]["duration"]),
    }


def post(url: str, body: bytes, content_type: str = "text/plain") -> bytes:
    """POSTs to a URL Sluice gave the call (its progress or fan-out URL); the answer's body."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def progress(percent: float, message: str) -> None:
    """Reports how far the call got, when Sluice gave it a progress URL; a lost report is not worth failing for."""
    url = os.environ.get("Http_X_Sluice_Progress_Url")
    if url:
        try:
            post(url, f"{percent:.0f} {message}".encode())
        except OSError:
            pass


def fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(1)
