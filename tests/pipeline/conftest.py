"""Real platform servers for the pipeline tests: a moto S3 server and an MLflow tracking server.

Started once per session on loopback ports and always torn down. MLflow proxies artifacts to the
S3 bucket (``--artifacts-destination``), exactly as the charts and the local backend deploy it;
swapping these for the local backend's service modules only needs ``platform`` to keep its shape.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.ports import LOOPBACK, free_ports

ROOT = Path(__file__).resolve().parents[2]
JOBS_DIR = ROOT / "jobs"
DAGS_DIR = ROOT / "dags"
BIN = Path(sys.executable).parent
ARTIFACTS_BUCKET = "mlflow-artifacts"
DATA_BUCKET = "mlops-data"
# moto accepts any keys; they are still passed the production way (environment, never in a URI).
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "sandbox-test-key",
    "AWS_SECRET_ACCESS_KEY": "sandbox-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Platform:
    s3_url: str
    mlflow_url: str
    data_bucket: str = DATA_BUCKET
    artifacts_bucket: str = ARTIFACTS_BUCKET

    def env(self) -> dict[str, str]:
        """What the platform ConfigMap + Secret give a task pod (docs/architecture.md)."""
        return {
            **CREDENTIALS,
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            "MLOPS_DATA_BUCKET": self.data_bucket,
        }

    def s3(self) -> Any:
        """A boto3 S3 client for the test's own checks."""
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_url, **_boto_credentials())


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def _wait(ready: Callable[[], bool], proc: subprocess.Popen, log: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.status == 200


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (``mlflow server`` runs uvicorn as a child)."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def running_platform(home: Path) -> Iterator[Platform]:
    """moto S3 + MLflow (sqlite store, artifacts proxied to S3), ready to use; stopped on exit."""
    s3_port, mlflow_port = free_ports(2)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    procs: list[subprocess.Popen] = []
    try:
        s3_log = home / "s3.log"
        s3_url = f"http://{LOOPBACK}:{s3_port}"
        with open(s3_log, "w") as out:
            procs.append(
                subprocess.Popen(
                    [str(BIN / "moto_server"), "-H", LOOPBACK, "-p", str(s3_port)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=base_env,
                    start_new_session=True,
                )
            )
        _wait(lambda: _http_ok(s3_url + "/"), procs[-1], s3_log, "moto", 30)
        import boto3

        s3 = boto3.client("s3", endpoint_url=s3_url, **_boto_credentials())
        for bucket in (ARTIFACTS_BUCKET, DATA_BUCKET):
            s3.create_bucket(Bucket=bucket)

        mlflow_url = f"http://{LOOPBACK}:{mlflow_port}"
        argv = (
            str(BIN / "mlflow"), "server",
            "--host", LOOPBACK, "--port", str(mlflow_port),
            "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}",
            # Proxied artifacts: clients never talk to the bucket for models (recipe bug:
            # --default-artifact-root s3://... made every client need S3 access).
            "--artifacts-destination", f"s3://{ARTIFACTS_BUCKET}",
            "--workers", "1",
        )  # fmt: skip
        mlflow_env = {
            **base_env,
            **CREDENTIALS,
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        mlflow_log = home / "mlflow.log"
        with open(mlflow_log, "w") as out:
            procs.append(
                subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=mlflow_env,
                    cwd=home,
                    start_new_session=True,
                )
            )
        probe = f"{mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
        _wait(lambda: _http_ok(probe), procs[-1], mlflow_log, "mlflow server", 120)
        yield Platform(s3_url=s3_url, mlflow_url=mlflow_url)
    finally:
        for proc in reversed(procs):
            _stop(proc)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(tmp_path_factory.mktemp("platform")) as servers:
        yield servers


@dataclass(frozen=True)
class JobRun:
    returncode: int
    output: str
    result: dict | None
    seconds: float


@dataclass(frozen=True)
class PipelineRun:
    """The job-contract environment of one DAG run, as the DAG's steps would set it."""

    platform: Platform
    dag_run_id: str
    experiment_name: str
    model_name: str
    params: dict[str, str]

    def env(self, step: str, task_id: str, **extra: str) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "MLOPS_"))},
            **self.platform.env(),
            "PYTHONPATH": str(JOBS_DIR),
            "MLOPS_DAG_ID": "train_model_pipeline",
            "MLOPS_DAG_RUN_ID": self.dag_run_id,
            "MLOPS_TASK_ID": task_id,
            "MLOPS_TRY_NUMBER": "1",
            "MLOPS_EXPERIMENT_NAME": self.experiment_name,
            "MLOPS_MODEL_NAME": self.model_name,
            **self.params,
            **extra,
        }

    def job(self, step: str, tmp: Path, _drop: str | None = None, **extra: str) -> JobRun:
        """``python -m mlops_jobs <step>`` as a subprocess, like LocalJobOperator and the pods run it.

        Runs in ``tmp`` (so a stray local MLflow store would show up there); ``_drop`` removes one
        variable from the contract.
        """
        task_id = {"preprocess": "preprocess_data", "train": "train_model"}.get(step, "evaluate_and_register")
        xcom = tmp / f"{self.dag_run_id}-{step}-{uuid.uuid4().hex[:6]}.json"
        env = self.env(step, task_id, MLOPS_XCOM_PATH=str(xcom), **extra)
        if _drop:
            env.pop(_drop)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "mlops_jobs", step],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=300,
        )
        result = json.loads(xcom.read_text()) if xcom.exists() else None
        return JobRun(proc.returncode, proc.stdout + proc.stderr, result, time.monotonic() - started)


DEFAULT_PARAMS = {
    "MLOPS_DATASET": "breast_cancer",
    "MLOPS_LABEL_NOISE": "0.0",
    "MLOPS_SEED": "42",
    "MLOPS_TEST_SIZE": "0.2",
    "MLOPS_N_ESTIMATORS": "20",
    "MLOPS_MAX_DEPTH": "6",
    "MLOPS_MIN_ACCURACY": "0.85",
}


def new_pipeline_run(platform: Platform, test: str, run: str, suffix: str, **params: str) -> PipelineRun:
    """A DAG run whose experiment and model names are unique to ``test`` + ``suffix``."""
    name = test.replace("[", "-").replace("]", "")[:40]
    return PipelineRun(
        platform=platform,
        dag_run_id=f"manual__{name}-{run}-{suffix}",
        experiment_name=f"exp-{name}-{suffix}",
        model_name=f"model-{name}-{suffix}",
        params={**DEFAULT_PARAMS, **params},
    )


@pytest.fixture
def pipeline(platform: Platform, request: pytest.FixtureRequest) -> Callable[..., PipelineRun]:
    """Factory of DAG runs sharing this test's own experiment and model (tests stay independent)."""
    suffix = uuid.uuid4().hex[:8]

    def make(run: str = "run1", **params: str) -> PipelineRun:
        return new_pipeline_run(platform, request.node.name, run, suffix, **params)

    return make
