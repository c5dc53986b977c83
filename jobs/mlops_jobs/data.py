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


def split_files(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, bytes]:
    """The split as the bytes stored on S3 (and hashed): CSV with a header, no index."""
    return {"train.csv": train.to_csv(index=False).encode(), "test.csv": test.to_csv(index=False).encode()}


def write_split(
    bucket: str, dag_run_id: str, files: dict[str, bytes], meta: dict[str, Any]
) -> dict[str, Any]:
    """Upload both CSVs, then the manifest (last, so a manifest always describes complete data)."""
    client = s3_client()
    prefix = run_prefix(dag_run_id)
    for name in FILES:
        client.put_object(Bucket=bucket, Key=prefix + name, Body=files[name], ContentType="text/csv")
    manifest = {
        **meta,
        "dag_run_id": dag_run_id,
        "files": {name: {"sha256": sha256(files[name]), "bytes": len(files[name])} for name in FILES},
        "content_hash": content_hash({name: files[name] for name in FILES}),
        "rows": {name.removesuffix(".csv"): csv_rows(files[name]) for name in FILES},
    }
    client.put_object(
        Bucket=bucket,
        Key=prefix + "manifest.json",
        Body=json.dumps(manifest, indent=1, sort_keys=True).encode(),
        ContentType="application/json",
    )
    return manifest


def csv_rows(csv: bytes) -> int:
    """Data rows of a CSV with a header line (the split's CSVs hold no quoted newlines)."""
    return max(csv.count(b"\n") - 1, 0) if csv.endswith(b"\n") else csv.count(b"\n")


def verify_content_hash(expected: str, actual: str, what: str, fix: str) -> None:
    """Fail unless ``actual`` is the ``expected`` hash (an empty ``expected`` checks nothing)."""
    if expected and actual != expected:
        raise JobFailed(
            f"data content hash mismatch: {what} hashes to {actual}, but this run expects {expected} "
            f"(DAG param data_content_hash); refusing to run on different bytes. {fix}"
        )


def read_source(uri: str) -> tuple[dict[str, bytes], dict[str, Any] | None]:
    """The split's files under ``s3://bucket/prefix/`` (on the platform's S3) and its manifest if it has one.

    With a manifest, every file must match the hash it records.
    """
    bucket, prefix = parse_s3_uri(uri)
    client = s3_client()
    files = {name: _get(client, bucket, prefix + name, _SOURCE_HINT) for name in FILES}
    manifest = None
    try:
        manifest = json.loads(client.get_object(Bucket=bucket, Key=prefix + "manifest.json")["Body"].read())
    except client.exceptions.NoSuchKey:
        pass
    except ValueError:
        raise JobFailed(f"{uri}manifest.json is not JSON: remove it or copy the data again") from None
    if manifest is not None:
        _check_files(files, manifest, uri)
    return files, manifest


def parse_s3_uri(uri: str) -> tuple[str, str]:
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


_SOURCE_HINT = (
    "data_source must name a folder holding train.csv and test.csv "
    "(`sandbox reproduce --copy-data` writes one)"
)


def _get(client: Any, bucket: str, key: str, hint: str = "did preprocess_data run for this run?") -> bytes:
    from botocore.exceptions import ClientError

    try:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except client.exceptions.NoSuchKey:
        raise JobFailed(f"s3://{bucket}/{key} is missing: {hint}") from None
    except client.exceptions.NoSuchBucket:
        raise JobFailed(f"bucket {bucket!r} does not exist (reading s3://{bucket}/{key})") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        raise JobFailed(f"cannot read s3://{bucket}/{key}: {code or exc}") from None


def _check_files(files: dict[str, bytes], manifest: dict[str, Any], where: str) -> None:
    """Each file against its manifest entry, and the manifest's content hash against the bytes."""
    for name, body in files.items():
        if sha256(body) != manifest.get("files", {}).get(name, {}).get("sha256"):
            raise JobFailed(f"{where}{name} does not match the hash in its manifest")
    if manifest.get("content_hash") != content_hash(files):
        raise JobFailed(f"{where}manifest.json's content_hash does not describe the files next to it")


def read_split(bucket: str, dag_run_id: str) -> Split:
    """Download the split and check it against its manifest's hashes."""
    import pandas as pd

    client = s3_client()
    prefix = run_prefix(dag_run_id)
    manifest = json.loads(_get(client, bucket, prefix + "manifest.json"))
    files = {name: _get(client, bucket, prefix + name) for name in FILES}
    _check_files(files, manifest, f"s3://{bucket}/{prefix}")
    frames = {name: pd.read_csv(io.BytesIO(body)) for name, body in files.items()}
    return Split(train=frames["train.csv"], test=frames["test.csv"], manifest=manifest)
