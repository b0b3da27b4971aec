#!/usr/bin/env python3
"""The video walkthrough's S3 chores: `buckets` creates videos-in, videos-work and videos-out; `notify URL` has
videos-in announce new objects over SNS to URL (Sluice's `/connectors/s3/sns?token=…`); `put FILE KEY` uploads to
videos-in; `get KEY FILE` downloads from videos-out. S3_ENDPOINT and the AWS_* variables say where."""
import os
import sys

import boto3


def main() -> None:
    where = {"endpoint_url": os.environ.get("S3_ENDPOINT") or None,
             "region_name": os.environ.get("AWS_REGION", "us-east-1")}
    s3 = boto3.client("s3", **where)
    match sys.argv[1:]:
        case ["buckets"]:
            for bucket in ("videos-in", "videos-work", "videos-out"):
                s3.create_bucket(Bucket=bucket)
        case ["notify", url]:
            sns = boto3.client("sns", **where)
            topic = sns.create_topic(Name="videos-in")["TopicArn"]
            sns.subscribe(TopicArn=topic, Protocol=url.split(":", 1)[0], Endpoint=url)
            s3.put_bucket_notification_configuration(Bucket="videos-in", NotificationConfiguration={
                "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]})
        case ["put", path, key]:
            s3.upload_file(path, "videos-in", key)
        case ["get", key, path]:
            s3.download_file("videos-out", key, path)
        case _:
            sys.exit(__doc__)


if __name__ == "__main__":
    main()
