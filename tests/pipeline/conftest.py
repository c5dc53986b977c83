"""The platform as deployed, for the pipeline tests: Postgres, the S3 server and MLflow started by the
local backend's own service modules, from the charts' configuration (MLflow on the Postgres store,
artifacts proxied to the S3 bucket), once per session and always torn down.

``Platform.env()`` is what the platform ConfigMap and Secret give a task pod, as the local backend
writes them for its task runtime.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.backends.local.backend import LocalBackend

ROOT = Path(__file__).resolve().parents[2]
JOBS_DIR = ROOT / "jobs"
DAGS_DIR = ROOT / "dags"


@dataclass(frozen=True)
class Platform:
    backend: LocalBackend
    s3_url: str
    mlflow_url: str
    mlflow_argv: tuple[str, ...]
    data_bucket: str
    artifacts_bucket: str
    configmap: dict[str, str]
    secret: dict[str, str]

    def env(self) -> dict[str, str]:
        """What the platform ConfigMap + Secret give a task pod (docs/architecture.md)."""
        return {**self.configmap, **self.secret}

    def s3(self) -> Any:
        """A boto3 S3 client for the test's own checks."""
        import boto3

        creds = self.backend.credentials
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            aws_access_key_id=creds.s3_access_key,
            aws_secret_access_key=creds.s3_secret_key,
            region_name=self.configmap["AWS_DEFAULT_REGION"],
        )


@contextlib.contextmanager
def running_platform(home: Path) -> Iterator[Platform]:
    """Postgres + S3 + MLflow of a local sandbox (no Airflow), ready to use; stopped on exit."""
    backend = LocalBackend(f"pipeline-{os.getpid()}", services=["mlflow"], state_root=home / "state")
    try:
        ep = backend.up().endpoints
        state = backend.state.load()
        assert state is not None
        configmap, secret = backend.job_platform()
        yield Platform(
            backend=backend,
            s3_url=ep.s3_url,
            mlflow_url=ep.mlflow_url,
            mlflow_argv=tuple(state.services["mlflow"].cmdline),
            data_bucket=ep.data_bucket,
            artifacts_bucket=ep.artifacts_bucket,
            configmap=configmap,
            secret=secret,
        )
    finally:
        backend.down(purge=True)


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
