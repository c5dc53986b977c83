"""The local runtime: a job's environment is its pod's, and ``dag.test()`` runs the production DAG's
LocalJobOperators end to end with a fault injected by the sandbox's cluster policy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from sandbox.platform import airflow_local_settings
from sandbox.platform.config import load_platform_config

from .conftest import DAGS_DIR, JOBS_DIR, Platform

sys.path.insert(0, str(DAGS_DIR))
from mlops_pipeline.jobenv import (
    PROCESS_ENV,
    PlatformObjectError,
    local_job_env,
    read_platform_objects,
)

CONFIGMAP = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "MLOPS_DATA_BUCKET": "data"}
SECRET = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "UNREFERENCED": "x"}


def test_local_jobs_get_the_pods_env_and_nothing_else_of_the_worker() -> None:
    worker = {
        "PATH": "/bin",
        "HOME": "/home/u",
        "PYTHONPATH": "/repo/jobs",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://airflow:pw@127.0.0.1/airflow",
        "AIRFLOW_HOME": "/state/airflow",
        "MLFLOW_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
        "MLOPS_TASK_RUNTIME": "local",
        "NO_PROXY": "127.0.0.1",
        "MLOPS_MODEL_NAME": "from-the-worker",
    }
    env = local_job_env(
        worker,
        {"MLOPS_MODEL_NAME": "m", "MLOPS_SEED": 42, "MLFLOW_TRACKING_URI": "http://step"},
        "/tmp/x.json",
        configmap=CONFIGMAP,
        secret=SECRET,
        secret_keys=["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
    )
    assert env == {
        "PATH": "/bin",
        "HOME": "/home/u",
        "PYTHONPATH": "/repo/jobs",
        "MLFLOW_TRACKING_URI": "http://step",  # a pod's env wins over its envFrom
        "MLOPS_DATA_BUCKET": "data",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "MLOPS_MODEL_NAME": "m",
        "MLOPS_SEED": "42",
        "MLOPS_XCOM_PATH": "/tmp/x.json",
    }
    assert set(PROCESS_ENV) >= {"PATH", "HOME", "PYTHONPATH"}


def test_a_missing_platform_object_or_key_fails_like_a_pod_would(tmp_path: Path) -> None:
    with pytest.raises(PlatformObjectError, match="MLOPS_LOCAL_PLATFORM_DIR is not set"):
        read_platform_objects(None, "cm", "sec")
    with pytest.raises(PlatformObjectError, match="cannot read the platform ConfigMap"):
        read_platform_objects(str(tmp_path), "cm", "sec")
    with pytest.raises(PlatformObjectError, match="no key 'AWS_ACCESS_KEY_ID'"):
        local_job_env({}, {}, "/x", configmap={}, secret={}, secret_keys=["AWS_ACCESS_KEY_ID"])


def _write_platform_objects(folder: Path, platform: Platform) -> None:
    """The layout the local backend writes (docs/architecture.md)."""
    pod = load_platform_config("local").pod_platform()
    (folder / "configmaps").mkdir(parents=True)
    (folder / "secrets").mkdir()
    (folder / "configmaps" / f"{pod.configmap_name}.json").write_text(json.dumps(platform.configmap))
    (folder / "secrets" / f"{pod.secret_name}.json").write_text(json.dumps(platform.secret))


@pytest.mark.slow
def test_dag_runs_end_to_end_with_a_fault_from_the_cluster_policy(platform: Platform, tmp_path: Path) -> None:
    """Real Airflow (sqlite) + MLflow + S3; train's first try is failed by the sandbox's cluster policy
    (installed in AIRFLOW_HOME/config, armed as a Variable), and retried."""
    home = tmp_path / "airflow"
    (home / "config").mkdir(parents=True)
    shutil.copyfile(airflow_local_settings.__file__, home / "config" / "airflow_local_settings.py")
    _write_platform_objects(tmp_path / "platform", platform)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW", "MLFLOW_", "AWS_"))},
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "MLOPS_TASK_RUNTIME": "local",
        "MLOPS_RETRY_DELAY_SECONDS": "1",
        "MLOPS_LOCAL_PLATFORM_DIR": str(tmp_path / "platform"),
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
    faults = [{"task_id": "train_model", "tries": [1], "message": "simulated node loss"}]
    out = tmp_path / "result.json"
    driver = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("dag_test_driver.py")), str(DAGS_DIR), str(out),
         json.dumps(conf), json.dumps(faults)],
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
