#!/usr/bin/env python3
"""video-join: joins the colourised segments of a video into one and uploads `NAME.colour.mp4`.

Sluice calls it once every video-colourise call of a split has ended, with the group as its body: each child's
outcome in order, its short response inline ({"bucket", "key", "frames"}), and the split's context. A segment
that failed for good fails the join, naming it. Its response ({"bucket", "key", "bytes", "frames"}) goes to the
function's async.onSuccess URL, which announces the video.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from video_common import fail, probe, progress, run, s3  # noqa: E402


def main() -> None:
    group = json.load(sys.stdin)
    failed = [c for c in group["calls"] if c["status"] != "succeeded"]
    if failed:
        fail("segments not colourised: " + "; ".join(f"{c['index']} {c['status']}: {c.get('error')}" for c in failed))
    context = group["context"]
    source = context["source"]["key"]
    name = os.path.splitext(source)[0] + ".colour.mp4"
    client = s3()
    with tempfile.TemporaryDirectory() as tmp:
        listing = os.path.join(tmp, "segments.txt")
        with open(listing, "w") as segments:
            for call in group["calls"]:
                piece = call["body"]
                path = os.path.join(tmp, f"{call['index']:03}.mp4")
                client.download_file(piece["bucket"], piece["key"], path)
                segments.write(f"file '{path}'\n")
                progress(90 * (call["index"] + 1) / len(group["calls"]), f"segment {call['index'] + 1} fetched")
        result = os.path.join(tmp, "colour.mp4")
        run("ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", listing, "-c", "copy", result)
        frames = probe(result)["frames"]
        client.upload_file(result, context["output"], name)
        size = os.path.getsize(result)
        progress(100, f"{name} uploaded")
        # The pieces, grey and coloured, served their purpose.
        for call in group["calls"]:
            for key in (call["body"]["key"], call["body"]["segment"]):
                client.delete_object(Bucket=call["body"]["bucket"], Key=key)
    print(json.dumps({"bucket": context["output"], "key": name, "bytes": size, "frames": frames}))


if __name__ == "__main__":
    main()
