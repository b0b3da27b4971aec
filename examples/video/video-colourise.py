#!/usr/bin/env python3
"""video-colourise: colours one segment of a video, frame by frame, reporting progress per frame.

The body names the segment ({"bucket", "key", "out", "index", "rate"}). ffmpeg decodes its frames to PNG, the
`colourise` example ($COLOURISE) colours each one, ffmpeg encodes them again at the same rate, and the result goes
to `out` in the same bucket. Its response ({"bucket", "key", "frames"}) is what video-join gets for it.
$FAIL_SEGMENT_ONCE names a segment index whose first attempt fails on purpose, to watch a retry.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from video_common import fail, progress, run, s3  # noqa: E402


def main() -> None:
    job = json.load(sys.stdin)
    if str(job["index"]) == os.environ.get("FAIL_SEGMENT_ONCE") and os.environ.get("Http_X_Sluice_Attempt") == "1":
        fail(f"segment {job['index']}: failing its first attempt on purpose (FAIL_SEGMENT_ONCE)")
    colourise = os.environ.get("COLOURISE", "colourise")
    client = s3()
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "segment.mp4")
        client.download_file(job["bucket"], job["key"], source)
        run("ffmpeg", "-v", "error", "-i", source, os.path.join(tmp, "gray-%05d.png"))
        frames = sorted(glob.glob(os.path.join(tmp, "gray-*.png")))
        for number, frame in enumerate(frames, start=1):
            with open(frame, "rb") as gray:
                coloured = subprocess.run([colourise], stdin=gray, capture_output=True, check=False)
            if coloured.returncode != 0:
                fail(f"colourise failed on frame {number}: {coloured.stderr.decode(errors='replace')}")
            with open(frame.replace("gray-", "colour-"), "wb") as out:
                out.write(coloured.stdout)
            progress(100 * number / len(frames), f"frame {number}/{len(frames)}")
        result = os.path.join(tmp, "colour.mp4")
        run("ffmpeg", "-v", "error", "-y", "-framerate", job["rate"], "-i", os.path.join(tmp, "colour-%05d.png"),
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-r", job["rate"], result)
        client.upload_file(result, job["bucket"], job["out"])
    print(json.dumps({"bucket": job["bucket"], "key": job["out"], "frames": len(frames), "segment": job["key"]}))


if __name__ == "__main__":
    main()
