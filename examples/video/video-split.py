#!/usr/bin/env python3
"""video-split: cuts a video that landed in a bucket into segments and fans out one video-colourise call each.

Called by an S3 trigger with the object event ({"bucket", "key", ...}). It cuts the video into $SEGMENTS (4) runs
of whole frames, uploads them to $WORK_BUCKET under `<key>.segments/`, and declares the fan-out at
$Http_X_Sluice_Fanout_Url: one video-colourise call per segment, joined by video-join, which gets the output
bucket and name in its context. Its response is Sluice's answer: the ids of the children and the join.
"""
import json
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from video_common import fail, post, probe, progress, run, s3  # noqa: E402


def main() -> None:
    event = json.load(sys.stdin)
    bucket, key = event["bucket"], event["key"]
    work = os.environ.get("WORK_BUCKET", bucket)
    client = s3()
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "source")
        client.download_file(bucket, key, source)
        info = probe(source)
        count = max(1, min(int(os.environ.get("SEGMENTS", "4")), info["frames"]))
        per = math.ceil(info["frames"] / count)
        calls = []
        for index in range(count):
            first, last = index * per, min(info["frames"], (index + 1) * per) - 1
            if first > last:
                break
            path = os.path.join(tmp, f"{index:03}.mp4")
            # Exactly these frames, re-timed from zero, losslessly enough for the next step.
            run("ffmpeg", "-v", "error", "-y", "-i", source, "-an",
                "-vf", f"select=between(n\\,{first}\\,{last}),setpts=N/FRAME_RATE/TB", "-r", info["rate"],
                "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", path)
            segment = f"{key}.segments/{index:03}.mp4"
            client.upload_file(path, work, segment)
            progress(100 * (index + 1) / count, f"segment {index + 1}/{count} uploaded")
            calls.append({"function": "video-colourise",
                          "body": {"bucket": work, "key": segment, "out": f"{key}.segments/{index:03}.colour.mp4",
                                   "index": index, "rate": info["rate"]}})
    context = {"bucket": work, "source": {"bucket": bucket, "key": key}, "frames": info["frames"],
               "duration": info["duration"], "output": os.environ.get("OUTPUT_BUCKET", bucket)}
    document = {"calls": calls, "join": {"function": "video-join", "context": context}}
    url = os.environ.get("Http_X_Sluice_Fanout_Url") or fail("no X-Sluice-Fanout-Url: is this running on Sluice?")
    print(post(url, json.dumps(document).encode(), "application/json").decode())


if __name__ == "__main__":
    main()
