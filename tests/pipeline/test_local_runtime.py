"""The local runtime end to end: ``dag.test()`` runs the production DAG's LocalJobOperators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from .conftest import DAGS_DIR, JOBS_DIR, Platform

DAGS = DAGS_DIR
sys.path.insert(0, str(DAGS_DIR))
from mlops_pipeline.faults import armed_fault  # noqa: E402 - the DAG folder is not a package
from mlops_pipeline.jobenv import local_job_env  # noqa: E402


def _write(path: Path, faults: list[dict]) -> str:
    path.write_text(json.dumps({"faults": faults}))
    return str(path)


def test_armed_fault_matches_run_task_and_try(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "faults.json",
        [{"dag_run_id": "r1", "task_id": "train_model", "tries": [1], "message": "node lost"}],
    )
    assert armed_fault(path, "r1", "train_model", 1) == "node lost"
    assert armed_fault(path, "r1", "train_model", 2) is None
    assert armed_fault(path, "r2", "train_model", 1) is None
    assert armed_fault(path, "r1", "preprocess_data", 1) is None


def test_no_faults_file_means_no_fault(tmp_path: Path) -> None:
    assert armed_fault(None, "r1", "train_model", 1) is None
    assert armed_fault(str(tmp_path / "missing.json"), "r1", "train_model", 1) is None
    assert armed_fault(_write(tmp_path / "empty.json", []), "r1", "train_model", 1) is None


def test_local_jobs_get_the_step_env_but_not_airflows_secrets() -> None:
    worker = {
        "PATH": "/bin",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:pw@127.0.0.1/airflow",
        "AIRFLOW__API_AUTH__JWT_SECRET": "jwt",
        "AIRFLOW_CONN_S3": "aws://key:secret@",
        "MLOPS_MODEL_NAME": "from-the-worker",
    }
    env = local_job_env(worker, {"MLOPS_MODEL_NAME": "m", "MLOPS_SEED": 42}, "/tmp/x.json")
    assert env == {
        "PATH": "/bin",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "MLOPS_MODEL_NAME": "m",
        "MLOPS_SEED": "42",
        "MLOPS_XCOM_PATH": "/tmp/x.json",
    }


@pytest.mark.slow
def test_dag_runs_end_to_end_on_the_local_runtime(platform: Platform, tmp_path: Path) -> None:
    """Real Airflow (sqlite) + MLflow + S3; train's first try is failed by an armed fault."""
    home = tmp_path / "airflow"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW", "MLFLOW_", "AWS_"))},
        **platform.env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "MLOPS_TASK_RUNTIME": "local",
        "MLOPS_RETRY_DELAY_SECONDS": "1",
        "MLOPS_FAULTS_FILE": str(tmp_path / "faults.json"),
        "PYTHONPATH": str(JOBS_DIR),
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]

    conf = {
        "experiment_name": f"exp-local-{tmp_path.name}",
        "model_name": f"model-local-{tmp_path.name}",
        "n_estimators": 10,
        "dataset": "iris",
    }
    fault = {"task_id": "train_model", "tries": [1], "message": "simulated node loss"}
    out = tmp_path / "result.json"
    driver = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dag_test_driver.py")), str(DAGS_DIR), str(out),
         json.dumps(conf), json.dumps(fault)],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    log = driver.stdout + driver.stderr
    assert driver.returncode == 0 and out.exists(), log[-5000:]
    result = json.loads(out.read_text())

    assert result["run_id"] == result["expected_run_id"]
    assert result["state"] == "success", log[-5000:]
    assert result["tasks"] == {
        "preprocess_data": {"state": "success", "try_number": 1},
        "train_model": {"state": "success", "try_number": 2},
        "evaluate_and_register": {"state": "success", "try_number": 1},
    }
    assert "injected fault: simulated node loss" in log
    assert "quality gate passed" in log  # the job's output streams into the task log

    # evaluate succeeded, so train's XCom reached it; find train's run by its Airflow tags.
    client = MlflowClient(tracking_uri=platform.mlflow_url, registry_uri=platform.mlflow_url)
    (version,) = client.search_model_versions(f"name = '{conf['model_name']}'")
    run = client.get_run(version.run_id)
    assert run.data.tags["airflow.dag_run_id"] == result["run_id"]
    assert run.data.tags["airflow.try_number"] == "2"
    assert run.data.params["dataset"] == "iris"
    assert version.tags["quality_gate"] == "passed"
    assert client.get_registered_model(conf["model_name"]).aliases == {"champion": version.version}
