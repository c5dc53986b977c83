"""The job contract: typed reads of the environment with errors that name the variable and the fix."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_XCOM_PATH = "/airflow/xcom/return.json"  # where the KPO xcom sidecar reads it


class ConfigError(Exception):
    """The environment does not satisfy the job contract (a deployment or parameter error)."""


class JobFailed(Exception):
    """The step ran and its outcome is a failure (exit code ``exitcodes.FAILED``: may be retried)."""


class GateFailed(JobFailed):
    """The quality gate rejected the model: deterministic (exit code ``exitcodes.GATE_FAILED``)."""


class Env:
    """Typed access to one environment mapping."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ

    def text(self, name: str, hint: str = "") -> str:
        value = self.environ.get(name, "").strip()
        if not value:
            fix = hint or "the DAG sets it for every step; when running a job by hand, export it"
            raise ConfigError(f"{name} is not set ({fix})")
        return value

    def optional(self, name: str) -> str:
        """A variable that may be unset or empty (then ``""``): an optional DAG param."""
        return self.environ.get(name, "").strip()

    def integer(self, name: str, low: int | None = None) -> int:
        raw = self.text(name)
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not an integer") from None
        if low is not None and value < low:
            raise ConfigError(f"{name}={value} must be >= {low}")
        return value

    def number(self, name: str, low: float, high: float, *, open_low: bool = False) -> float:
        raw = self.text(name)
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number") from None
        too_low = value <= low if open_low else value < low
        if too_low or value > high:
            bracket = "(" if open_low else "["
            raise ConfigError(f"{name}={value} must be in {bracket}{low}, {high}]")
        return value


@dataclass(frozen=True)
class RunContext:
    """Which Airflow task produced this job run (tagged onto MLflow runs)."""

    dag_id: str
    dag_run_id: str
    task_id: str
    try_number: int

    @classmethod
    def from_env(cls, env: Env) -> RunContext:
        return cls(
            dag_id=env.text("MLOPS_DAG_ID"),
            dag_run_id=env.text("MLOPS_DAG_RUN_ID"),
            task_id=env.text("MLOPS_TASK_ID"),
            try_number=env.integer("MLOPS_TRY_NUMBER", low=1),
        )

    def tags(self) -> dict[str, str]:
        return {
            "airflow.dag_id": self.dag_id,
            "airflow.dag_run_id": self.dag_run_id,
            "airflow.task_id": self.task_id,
            "airflow.try_number": str(self.try_number),
        }


def tracking_uri(env: Env) -> str:
    """``MLFLOW_TRACKING_URI``, required: without it MLflow silently writes a local ./mlruns store."""
    uri = env.text(
        "MLFLOW_TRACKING_URI",
        "without it MLflow would log to a throw-away local store; the platform ConfigMap provides it",
    )
    parts = urlsplit(uri)
    if parts.password:
        # A password in a URI leaks into logs, pod specs and the UI; MLflow reads credentials
        # from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD instead.
        raise ConfigError(
            "MLFLOW_TRACKING_URI carries a password; pass it as MLFLOW_TRACKING_PASSWORD (from a Secret)"
        )
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"MLFLOW_TRACKING_URI={uri!r} must be the tracking server's http(s) URL, "
            "so artifacts go through the server's proxy"
        )
    return uri


def data_bucket(env: Env) -> str:
    return env.text("MLOPS_DATA_BUCKET", "the platform ConfigMap provides the data bucket's name")


CONTENT_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
S3_URI_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>.*)$")


def expected_content_hash(env: Env) -> str:
    """``MLOPS_DATA_CONTENT_HASH`` (param ``data_content_hash``): the split must hash to it; "" = no check."""
    value = env.optional("MLOPS_DATA_CONTENT_HASH")
    if value and not CONTENT_HASH_RE.match(value):
        raise ConfigError(
            f"MLOPS_DATA_CONTENT_HASH={value!r} is not a content hash: write 'sha256:' and 64 hex digits "
            "(a manifest's content_hash, or the MLflow param data_content_hash), or leave it empty"
        )
    return value


def data_source(env: Env) -> str:
    """``MLOPS_DATA_SOURCE`` (param ``data_source``): ``s3://bucket/prefix/`` of a saved split, or ""."""
    value = env.optional("MLOPS_DATA_SOURCE")
    if value and not S3_URI_RE.match(value):
        raise ConfigError(
            f"MLOPS_DATA_SOURCE={value!r} must be an s3://<bucket>/<prefix>/ URI of a folder holding "
            "train.csv and test.csv (on the platform's S3), or empty to generate the split"
        )
    if value and not value.endswith("/"):
        value += "/"  # a folder: never let "runs/a" also match "runs/ab/..."
    return value


def write_xcom(result: Mapping[str, Any], env: Env) -> Path | None:
    """Write the step's result for the next step; skipped where no XCom sidecar or path exists."""
    path = Path(env.environ.get("MLOPS_XCOM_PATH") or DEFAULT_XCOM_PATH)
    if "MLOPS_XCOM_PATH" not in env.environ and not path.parent.is_dir():
        return None  # a pod without do_xcom_push has no /airflow/xcom volume
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(result), sort_keys=True))
    return path
