"""The split dataset on S3: ``s3://<bucket>/runs/<dag_run_id>/{train,test}.csv`` + ``manifest.json``.

The S3 client takes endpoint, keys and region from the standard AWS variables
(``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ...), so the same code talks to AWS, moto or any
S3 server.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_jobs.config import JobFailed

if TYPE_CHECKING:
    import pandas as pd

FILES = ("train.csv", "test.csv")
TARGET = "target"


def run_prefix(dag_run_id: str) -> str:
    return f"runs/{dag_run_id}/"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_hash(files: dict[str, bytes]) -> str:
    """One hash over the split's files (names included), recorded in the manifest and in MLflow."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return f"sha256:{digest.hexdigest()}"


def s3_client() -> Any:
    import boto3  # lazy: ~0.3 s
    from botocore.config import Config

    return boto3.client("s3", config=Config(retries={"max_attempts": 5, "mode": "standard"}))


@dataclass(frozen=True)
class Split:
    train: pd.DataFrame
    test: pd.DataFrame
    manifest: dict[str, Any]

    @property
    def features(self) -> list[str]:
        return [c for c in self.train.columns if c != TARGET]


def write_split(
    bucket: str, dag_run_id: str, train: pd.DataFrame, test: pd.DataFrame, meta: dict[str, Any]
) -> dict[str, Any]:
    """Upload both CSVs, then the manifest (last, so a manifest always describes complete data)."""
    client = s3_client()
    prefix = run_prefix(dag_run_id)
    files = {
        "train.csv": train.to_csv(index=False).encode(),
        "test.csv": test.to_csv(index=False).encode(),
    }
    for name, body in files.items():
        client.put_object(Bucket=bucket, Key=prefix + name, Body=body, ContentType="text/csv")
    manifest = {
        **meta,
        "dag_run_id": dag_run_id,
        "files": {name: {"sha256": sha256(body), "bytes": len(body)} for name, body in files.items()},
        "content_hash": content_hash(files),
        "rows": {"train": len(train), "test": len(test)},
    }
    client.put_object(
        Bucket=bucket,
        Key=prefix + "manifest.json",
        Body=json.dumps(manifest, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return manifest


def _get(client: Any, bucket: str, key: str) -> bytes:
    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        raise JobFailed(f"s3://{bucket}/{key} is missing: did preprocess_data run for this run?") from None


def read_split(bucket: str, dag_run_id: str) -> Split:
    """Download the split and check it against its manifest's hashes."""
    import pandas as pd

    client = s3_client()
    prefix = run_prefix(dag_run_id)
    manifest = json.loads(_get(client, bucket, prefix + "manifest.json"))
    files = {name: _get(client, bucket, prefix + name) for name in FILES}
    for name, body in files.items():
        if sha256(body) != manifest["files"][name]["sha256"]:
            raise JobFailed(f"s3://{bucket}/{prefix}{name} does not match the hash in its manifest")
    frames = {name: pd.read_csv(io.BytesIO(body)) for name, body in files.items()}
    return Split(train=frames["train.csv"], test=frames["test.csv"], manifest=manifest)
