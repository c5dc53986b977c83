"""A local job gets exactly what its pod gets: per step, the key set of the local runtime's job
environment equals the pod's (env, secretKeyRefs, the envFrom ConfigMap's keys), plus only the
documented process variables.

Both sides are real code: the local backend derives the Airflow worker's environment and writes the
platform ConfigMap/Secret files from the charts (``sandbox.backends.local.airflow``), the production DAG
is parsed by Airflow under each runtime, ``LocalJobOperator.job_env`` builds the job's environment, and
``KubernetesPodOperator.build_pod_request_obj()`` builds the pod. The ConfigMap's keys come from the
values reader, which tests/charts/test_platform_config.py checks against the helm render.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox import paths
from sandbox.backends.local import airflow
from sandbox.backends.local.backend import PORT_KEYS
from sandbox.backends.local.service import StackContext
from sandbox.backends.local.state import SandboxState, StateModel
from sandbox.platform.config import load_platform_config
from sandbox.secrets import generate

PROBE = Path(__file__).with_name("env_probe.py")
STEPS = ("preprocess_data", "train_model", "evaluate_and_register")


def _probe(
    tmp: Path, name: str, deployment: dict[str, str], worker: dict[str, str] | None = None
) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW", "MLFLOW_", "AWS_"))}
    env = {
        **base,
        **deployment,
        "AIRFLOW_HOME": str(tmp / f"home-{name}"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    out, worker_file = tmp / f"{name}.json", tmp / f"{name}-worker.json"
    worker_file.write_text(json.dumps(worker or {}))
    proc = subprocess.run(
        [sys.executable, str(PROBE), str(paths.DAGS_DIR), str(out), str(worker_file)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("env-parity")
    ctx = StackContext(
        state=SandboxState("parity", tmp), model=StateModel(name="parity", ports={k: 21000 + i for i, k in
        enumerate(PORT_KEYS)}), config=load_platform_config("local"), env_dir=tmp / "env", secrets=generate(),
        timeouts={}, dags_folder=paths.DAGS_DIR, jobs_folder=paths.JOBS_DIR,
    )  # fmt: skip
    airflow.write_platform_objects(ctx)
    worker = airflow.environment(ctx, "scheduler")  # LocalExecutor runs the tasks there
    deployment = {k: v for k, v in worker.items() if k.startswith("MLOPS_")}
    local = _probe(tmp, "local", deployment, worker)
    production = load_platform_config(None).airflow.deployment_env()
    assert production["MLOPS_TASK_RUNTIME"] == "kubernetes"
    pods = _probe(tmp, "kubernetes", production)
    return local, pods


def _pod_keys(task: dict[str, Any]) -> set[str]:
    pod = load_platform_config(None).pod_platform()
    assert task["other_env_from"] == []
    assert task["configmaps"] == [pod.configmap_name], "the pod takes another ConfigMap than the chart's"
    return set(task["env"]) | set(pod.configmap)


@pytest.mark.parametrize("step", STEPS)
def test_local_job_env_keys_equal_the_pods(sides: tuple[dict[str, Any], dict[str, Any]], step: str) -> None:
    local, pods = sides
    process = set(local["process_env"]) | {local["xcom_env"]}
    job = set(local["tasks"][step]["job_env"])
    pod = _pod_keys(pods["tasks"][step])
    assert job - process == pod, (
        f"only local: {sorted(job - process - pod)}; only in the pod: {sorted(pod - job)}"
    )
    assert "MLFLOW_S3_ENDPOINT_URL" not in job
    assert not {k for k in job if k.startswith(("AIRFLOW", "MLOPS_SANDBOX"))}


@pytest.mark.parametrize("step", STEPS)
def test_pod_secret_refs_are_the_platform_secret(
    sides: tuple[dict[str, Any], dict[str, Any]], step: str
) -> None:
    _, pods = sides
    pod = load_platform_config(None).pod_platform()
    refs = pods["tasks"][step]["secret_refs"]
    assert refs == sorted([pod.secret_name, key] for key in pod.secret_keys)


def test_process_variables_are_few_and_documented(sides: tuple[dict[str, Any], dict[str, Any]]) -> None:
    local, _ = sides
    doc = (paths.PROJECT_ROOT / "docs" / "architecture.md").read_text()
    for name in [*local["process_env"], local["xcom_env"]]:
        assert f"`{name}`" in doc, name
    assert len(local["process_env"]) <= 8
