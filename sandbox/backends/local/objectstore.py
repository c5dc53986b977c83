"""The S3 server: moto in server mode on 127.0.0.1, with the buckets the S3 chart creates."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path
from typing import Any

from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.ports import LOOPBACK


def _client(url: str, access_key: str, secret_key: str, region: str) -> Any:
    import boto3  # lazy: boto3 costs ~0.3 s to import and a reused stack never needs it
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(retries={"max_attempts": 3}),
    )


def create_buckets(url: str, access_key: str, secret_key: str, region: str, buckets: list[str]) -> None:
    """Create ``buckets`` (idempotent) with the sandbox's generated keys."""
    client = _client(url, access_key, secret_key, region)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in buckets:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def snapshot(url: str, access_key: str, secret_key: str, region: str, folder: Path) -> int:
    """Copy every object of every bucket into ``folder/<bucket>/<key>`` (moto keeps them only in memory);
    returns how many. The folder is replaced; it is written completely before it is used."""
    client = _client(url, access_key, secret_key, region)
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700)
    count = 0
    for bucket in (b["Name"] for b in client.list_buckets().get("Buckets", [])):
        (tmp / bucket).mkdir()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                target = tmp / bucket / obj["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                count += 1
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return count


def restore(url: str, access_key: str, secret_key: str, region: str, folder: Path) -> int:
    """Put back what ``snapshot`` saved (buckets created as needed), then delete ``folder``."""
    client = _client(url, access_key, secret_key, region)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    count = 0
    for bucket_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if bucket_dir.name not in existing:
            client.create_bucket(Bucket=bucket_dir.name)
        for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
            client.put_object(Bucket=bucket_dir.name, Key=path.relative_to(bucket_dir).as_posix(),
                              Body=path.read_bytes())  # fmt: skip
            count += 1
    shutil.rmtree(folder, ignore_errors=True)
    return count


def missing_buckets(url: str, buckets: list[str]) -> list[str]:
    """The buckets moto no longer holds (it forgets them when it restarts)."""
    missing = []
    for bucket in buckets:
        request = urllib.request.Request(f"{url}/{bucket}", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status != 200:
                    missing.append(bucket)
        except OSError:
            missing.append(bucket)
    return missing


class S3(Service):
    """moto keeps everything in memory: a restart empties the buckets, which is what a sandbox wants."""

    name = "s3"
    stop_stage = 2
    port_key = "s3"

    def spec(self, ctx: StackContext) -> ServiceSpec:
        url = ctx.url("s3")

        def ready() -> bool:
            with urllib.request.urlopen(f"{url}/", timeout=2) as resp:  # ListBuckets: moto answers unsigned
                return resp.status == 200

        return ServiceSpec(
            name=self.name,
            argv=[str(ctx.python), "-m", "moto.server", "-H", LOOPBACK, "-p", str(ctx.ports["s3"])],
            env=ctx.process_env(),
            log=ctx.state.log_file(self.name),
            ready=ready,
            timeout=self.timeout(ctx),
            port=ctx.ports["s3"],
            url=url,
        )

    def provision(self, ctx: StackContext) -> str:
        buckets = ctx.config.buckets
        create_buckets(ctx.url("s3"), ctx.secrets["AWS_ACCESS_KEY_ID"], ctx.secrets["AWS_SECRET_ACCESS_KEY"],
                       ctx.config.platform.region, buckets)  # fmt: skip
        return f"buckets {', '.join(buckets)}"

    def health(self, ctx: StackContext, probes: Probes) -> tuple[bool, str]:
        missing = missing_buckets(ctx.url("s3"), ctx.config.buckets)
        return not missing, f"buckets missing: {', '.join(missing)}" if missing else "buckets present"
