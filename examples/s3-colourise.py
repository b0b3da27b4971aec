#!/usr/bin/env python3
"""A Sluice function: colourise an image that landed in a bucket and write the result to another bucket.

Deploy it as a process function with an S3 trigger (see the README); the router calls it with the object event
as the body: {"bucket", "key", "size", "etag", "eventName", ...}. It reads the object, runs the `colourise`
example (grayscale in, colour PNG out), writes `<key without extension>.colour.png` to $OUTPUT_BUCKET and prints
{"bucket", "key", "bytes"} -- the response, which the trigger's callbackUrl receives.

Settings (envVars): OUTPUT_BUCKET (required), S3_ENDPOINT (for MinIO and other S3-compatible stores),
COLOURISE (path of the colourise binary; default `colourise` on PATH), and the usual AWS_* credentials.
"""
import json
import os
import subprocess
import sys

import boto3


def main() -> int:
    event = json.load(sys.stdin)
    s3 = boto3.client(
        "s3",
        endpoint_url=os.environ.get("S3_ENDPOINT") or None,
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
    )
    image = s3.get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read()
    colourise = subprocess.run(
        [os.environ.get("COLOURISE", "colourise")], input=image, capture_output=True, check=False
    )
    if colourise.returncode != 0:
        print(colourise.stderr.decode(errors="replace"), file=sys.stderr)
        return 1
    out_bucket = os.environ["OUTPUT_BUCKET"]
    out_key = os.path.splitext(event["key"])[0] + ".colour.png"
    s3.put_object(Bucket=out_bucket, Key=out_key, Body=colourise.stdout, ContentType="image/png")
    print(json.dumps({"bucket": out_bucket, "key": out_key, "bytes": len(colourise.stdout)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
