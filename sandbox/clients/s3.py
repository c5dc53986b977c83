"""S3 observations through boto3 (moto on the local backend, the chart's S3 server on kind)."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


class S3Client:
    """Lists what the jobs wrote; never writes."""

    def __init__(
        self, endpoint_url: str, access_key: str, secret_key: str, region: str = "us-east-1"
    ) -> None:
        self._s3: Any = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            # A dead endpoint must fail in seconds, not after botocore's default retries.
            config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}),
        )

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        """Keys under ``prefix``, relative to it, sorted."""
        keys: list[str] = []
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [obj["Key"][len(prefix) :] for obj in page.get("Contents", [])]
        return sorted(keys)
