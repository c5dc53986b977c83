"""The same data: copy a production run's split into a sandbox's S3, byte for byte, and pin its hash.

The source is the prefix the run's ``preprocess_data`` wrote (``runs/<dag_run_id>/`` in production's
data bucket), another ``s3://bucket/prefix/`` on production's S3, or a local folder. The copy lands
under ``reproductions/<run>/`` in the sandbox's data bucket, where the DAG param ``data_source`` points
``preprocess_data``; the content hash is checked against what production's MLflow run recorded
before anything is written, and again on the copy.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import ConfigError, ServiceError
from sandbox.reproduce.access import Production

# The split's layout (jobs/mlops_jobs/data.py: FILES, run_prefix, manifest.json).
SPLIT_FILES = ("train.csv", "test.csv")
MANIFEST = "manifest.json"
REPRODUCTIONS_PREFIX = "reproductions/"


def run_prefix(dag_run_id: str) -> str:
    return f"runs/{dag_run_id}/"


def content_hash(files: dict[str, bytes]) -> str:
    """The split's content hash, computed as the jobs compute it (``mlops_jobs.data.content_hash``)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    return f"sha256:{digest.hexdigest()}"


@dataclass(frozen=True)
class Split:
    """A split read from somewhere: its files and, when it had one, its manifest's bytes."""

    files: dict[str, bytes]
    manifest: bytes | None
    origin: str

    @property
    def content_hash(self) -> str:
        return content_hash(self.files)

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values()) + len(self.manifest or b"")


@dataclass(frozen=True)
class Copied:
    uri: str  # s3://<sandbox data bucket>/reproductions/<run>/ : the scenario's data_source
    content_hash: str
    objects: list[str]
    origin: str
    bytes: int


def s3_client(endpoint: str | None, access_key: str, secret_key: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint or None,
        aws_access_key_id=access_key or None,
        aws_secret_access_key=secret_key or None,
        region_name=region or "us-east-1",
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2}),
    )


def production_client(production: Production) -> Any:
    """Production's S3: ``--s3-url`` and ``MLOPS_REPRO_S3_*``, else boto3's own chain (profile, role)."""
    c = production.credentials
    return s3_client(
        production.s3_url,
        c.get("MLOPS_REPRO_S3_ACCESS_KEY_ID"),
        c.get("MLOPS_REPRO_S3_SECRET_ACCESS_KEY"),
        c.get("MLOPS_REPRO_S3_REGION"),
    )


def _s3_error(exc: Exception, where: str, uri: str, fix_missing: str) -> Exception:
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, EndpointConnectionError | ReadTimeoutError):
        return ServiceError(
            f"{where} is unreachable reading {uri}: {exc}.",
            "Check the S3 endpoint (--s3-url for production) and that this machine can reach it.",
        )
    if isinstance(exc, NoCredentialsError):
        return ConfigError(
            f"No S3 credentials for {where} (reading {uri}).",
            "Set MLOPS_REPRO_S3_ACCESS_KEY_ID and MLOPS_REPRO_S3_SECRET_ACCESS_KEY (read-only keys "
            "are enough), in the environment or a --credentials file.",
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket"):
            return ConfigError(f"{uri} does not exist on {where} ({code}).", fix_missing)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"):
            return ConfigError(
                f"{where} refused the credentials reading {uri} ({code}).",
                "Check MLOPS_REPRO_S3_ACCESS_KEY_ID / MLOPS_REPRO_S3_SECRET_ACCESS_KEY: they need read "
                "access to the data bucket.",
            )
        return ServiceError(f"{where} failed reading {uri}: {code or exc}.", "See the S3 server's log.")
    return exc


def read_s3_split(client: Any, bucket: str, prefix: str, where: str, fix_missing: str) -> Split:
    """``train.csv`` and ``test.csv`` (required) and ``manifest.json`` (if present) under a prefix."""
    from botocore.exceptions import BotoCoreError, ClientError

    def get(name: str, required: bool) -> bytes | None:
        uri = f"s3://{bucket}/{prefix}{name}"
        try:
            return client.get_object(Bucket=bucket, Key=prefix + name)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if not required and code in ("NoSuchKey", "404", "NotFound"):
                return None
            raise _s3_error(exc, where, uri, fix_missing) from None

    files = {name: get(name, True) or b"" for name in SPLIT_FILES}
    return Split(files, get(MANIFEST, False), f"s3://{bucket}/{prefix} on {where}")


def read_dir_split(folder: Path) -> Split:
    """A split saved in a local folder (``train.csv``, ``test.csv``, optionally ``manifest.json``)."""
    missing = [name for name in SPLIT_FILES if not (folder / name).is_file()]
    if missing:
        raise ConfigError(
            f"{folder} has no {' or '.join(missing)}.",
            f"--data-from FOLDER must hold {', '.join(SPLIT_FILES)} (and optionally {MANIFEST}).",
        )
    manifest = folder / MANIFEST
    return Split(
        {name: (folder / name).read_bytes() for name in SPLIT_FILES},
        manifest.read_bytes() if manifest.is_file() else None,
        str(folder),
    )


def read_production_split(production: Production, dag_run_id: str, data_from: str | None) -> Split:
    """The run's split from production S3 (its own prefix, or ``data_from``), or from a local folder."""
    if data_from and not data_from.startswith("s3://"):
        return read_dir_split(Path(data_from))
    if data_from:
        bucket, _, prefix = data_from.removeprefix("s3://").partition("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
    else:
        bucket, prefix = production.data_bucket, run_prefix(dag_run_id)
    where = f"production S3 ({production.s3_url or 'AWS'})"
    fix = (
        "Check --data-bucket (production's data bucket) and whether a lifecycle rule removed the run's "
        "split; a saved copy can be given with --data-from s3://bucket/prefix/ or --data-from FOLDER."
    )
    return read_s3_split(production_client(production), bucket, prefix, where, fix)


def copy_key(dag_run_id: str) -> str:
    """Where a run's split goes in the sandbox: readable, and safe as an S3 key and in a URI."""
    return REPRODUCTIONS_PREFIX + re.sub(r"[^A-Za-z0-9._-]+", "_", dag_run_id).strip("_") + "/"


def copy_split(
    split: Split,
    expected_hash: str | None,
    client: Any,
    bucket: str,
    prefix: str,
    where: str,
    on_step: Callable[[str], None] | None = None,
) -> Copied:
    """Write ``split`` under ``s3://bucket/prefix`` after checking its hash; read it back and check again."""
    from botocore.exceptions import BotoCoreError, ClientError

    actual = split.content_hash
    if expected_hash and actual != expected_hash:
        raise ConfigError(
            f"The data at {split.origin} hashes to {actual}, but production's MLflow run recorded "
            f"data_content_hash {expected_hash}: it is not the data that run trained on.",
            "Point --data-from at the split that run used (production keeps it under "
            "runs/<dag_run_id>/ in the data bucket), or reproduce without --copy-data to regenerate it.",
        )
    uri = f"s3://{bucket}/{prefix}"
    objects = list(SPLIT_FILES) + ([MANIFEST] if split.manifest is not None else [])
    bodies = {**split.files, **({MANIFEST: split.manifest} if split.manifest is not None else {})}
    try:
        for name in objects:  # the manifest last, as preprocess_data writes it
            client.put_object(Bucket=bucket, Key=prefix + name, Body=bodies[name])
            if on_step:
                on_step(f"copied {name} ({len(bodies[name])} bytes) to {uri}{name}")
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(
            exc, where, uri, f"Start the sandbox (`sandbox up`): its data bucket {bucket!r} must exist."
        ) from None
    copy = read_s3_split(client, bucket, prefix, where, "The copy vanished while being checked: run again.")
    if copy.content_hash != actual:
        raise ServiceError(
            f"The copy at {uri} hashes to {copy.content_hash}, not {actual}.",
            "Run `sandbox reproduce` again.",
        )
    return Copied(uri, actual, objects, split.origin, split.size)
