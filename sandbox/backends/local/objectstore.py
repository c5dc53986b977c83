"""The S3 server: moto in server mode on 127.0.0.1, with the artifacts and data buckets."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.state import SandboxState
from sandbox.ports import LOOPBACK

ARTIFACTS_BUCKET = "mlflow-artifacts"
DATA_BUCKET = "mlops-data"
REGION = "us-east-1"


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def spec(
    python: Path, state: SandboxState, port: int, base_env: dict[str, str], timeout: float
) -> ServiceSpec:
    # moto keeps everything in memory: a restart empties the buckets, which is what a sandbox wants.
    argv = [str(python), "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)]
    health = f"{url(port)}/"  # ListBuckets: moto answers unsigned requests

    def ready() -> bool:
        with urllib.request.urlopen(health, timeout=2) as resp:
            return resp.status == 200

    return ServiceSpec(
        name="s3",
        argv=argv,
        env=base_env,
        log=state.log_file("s3"),
        ready=ready,
        timeout=timeout,
        port=port,
        url=url(port),
    )


def create_buckets(port: int, access_key: str, secret_key: str) -> None:
    """Create both buckets (idempotent) with the sandbox's generated keys."""
    import boto3  # lazy: boto3 costs ~0.3 s to import and a reused stack never needs it
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=url(port),
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(retries={"max_attempts": 3}),
    )
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for bucket in (ARTIFACTS_BUCKET, DATA_BUCKET):
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def buckets_exist(port: int) -> bool:
    """Whether moto still holds both buckets (it forgets them when it restarts)."""
    for bucket in (ARTIFACTS_BUCKET, DATA_BUCKET):
        request = urllib.request.Request(f"{url(port)}/{bucket}", method="HEAD")
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                if resp.status != 200:
                    return False
        except OSError:
            return False
    return True
