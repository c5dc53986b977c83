"""The MLflow tracking server: Postgres backend store, artifacts proxied to the S3 bucket."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from sandbox.backends.local import objectstore
from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.state import SandboxState
from sandbox.ports import LOOPBACK


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def healthy(port: int) -> bool:
    """``/health`` answers even when the API would refuse the Host header, so probe the API too."""
    base = url(port)
    with urllib.request.urlopen(f"{base}/health", timeout=2) as resp:
        if resp.status != 200:
            return False
    probe = f"{base}/api/2.0/mlflow/experiments/search?max_results=1"
    with urllib.request.urlopen(probe, timeout=3) as resp:
        return resp.status == 200 and isinstance(json.loads(resp.read() or b"{}"), dict)


def spec(
    python: Path,
    state: SandboxState,
    port: int,
    db_url: str,
    s3_port: int,
    secrets: dict[str, str],
    base_env: dict[str, str],
    timeout: float,
) -> ServiceSpec:
    argv = [
        str(python), "-m", "mlflow", "server",
        "--host", LOOPBACK, "--port", str(port),
        # --artifacts-destination (not --default-artifact-root): clients upload through the
        # server's proxy, so they need no S3 credentials of their own.
        "--artifacts-destination", f"s3://{objectstore.ARTIFACTS_BUCKET}",
        "--workers", "1",
    ]  # fmt: skip
    env = {
        **base_env,
        "MLFLOW_S3_ENDPOINT_URL": objectstore.url(s3_port),
        "AWS_ENDPOINT_URL_S3": objectstore.url(s3_port),
        "AWS_ACCESS_KEY_ID": secrets["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": objectstore.REGION,
        # The job runner forks extra workers (~1 GB); the sandbox never uses MLflow jobs.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        # In the environment, not argv: a command line (with its DB password) is visible to every
        # user via ps, and ends up in state.json.
        "MLFLOW_BACKEND_STORE_URI": db_url,
    }
    return ServiceSpec(
        name="mlflow",
        argv=argv,
        env=env,
        log=state.log_file("mlflow"),
        ready=lambda: healthy(port),
        timeout=timeout,
        port=port,
        url=url(port),
        secrets=[secrets["POSTGRES_PASSWORD"], secrets["AWS_SECRET_ACCESS_KEY"]],
    )
