"""DAG integrity under both runtimes, and the pod specs built offline (no cluster needed)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import DAGS_DIR

PROBE = Path(__file__).with_name("dag_probe.py")
DAG_FILE = DAGS_DIR / "train_model_pipeline.py"
JOBS = {"preprocess_data": "preprocess", "train_model": "train", "evaluate_and_register": "evaluate"}
TASKS = list(JOBS)
# Deployment configs parsed by the probe (one fresh interpreter each).
CONFIGS: dict[str, dict[str, str]] = {
    "kubernetes": {},
    "kubernetes-gpu": {
        "MLOPS_TRAIN_GPU": "true",
        "MLOPS_GPU_RUNTIME_CLASS": "nvidia",
        "MLOPS_JOB_IMAGE": "registry.example/mlops-jobs:1.2.3",
        "MLOPS_K8S_NAMESPACE": "ml-prod",
        "MLOPS_STEP_RESOURCES": '{"train": {"requests": {"cpu": "1", "memory": "2Gi"}, '
                                '"limits": {"cpu": "2", "memory": "4Gi"}}}',
    },
    "local": {"MLOPS_TASK_RUNTIME": "local", "MLOPS_RETRY_DELAY_SECONDS": "2", "MLOPS_MAX_ACTIVE_RUNS": "4"},
}
# Run confs checked against the DAG's Params: (conf, accepted?).
CONFS: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    ({"min_accuracy": 0.999, "dataset": "wine", "label_noise": 0.5, "n_estimators": 5}, True),
    ({"dataset": "no_such_dataset"}, True),  # accepted here, rejected by the preprocess job
    ({"min_accuracy": 1.5}, False),
    ({"min_accuracy": -0.1}, False),
    ({"label_noise": 0.6}, False),
    ({"n_estimators": 0}, False),
    ({"max_depth": "deep"}, False),
    ({"test_size": 0}, False),
    ({"experiment_name": ""}, False),
    ({"data_content_hash": "sha256:" + "0" * 64, "data_source": "s3://mlops-data/reproductions/r/"}, True),
    ({"data_content_hash": "0" * 64}, False),  # no "sha256:" prefix
    ({"data_content_hash": "sha256:abc"}, False),
    ({"data_source": "runs/r/"}, False),  # not an s3:// URI
]
RUN_ENV = {
    "MLOPS_DAG_ID", "MLOPS_DAG_RUN_ID", "MLOPS_TASK_ID", "MLOPS_TRY_NUMBER", "MLOPS_DATASET",
    "MLOPS_LABEL_NOISE", "MLOPS_SEED", "MLOPS_TEST_SIZE", "MLOPS_N_ESTIMATORS", "MLOPS_MAX_DEPTH",
    "MLOPS_EXPERIMENT_NAME", "MLOPS_MODEL_NAME", "MLOPS_MIN_ACCURACY", "MLOPS_DATA_CONTENT_HASH",
    "MLOPS_DATA_SOURCE", "MLOPS_JOB_IMAGE",
}  # fmt: skip
SECRETS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


@pytest.fixture(scope="session")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Probe results per deployment config; the parses run side by side (about 10 s each)."""
    root = tmp_path_factory.mktemp("dag-probe")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "AIRFLOW"))}
    procs = {}
    for name, config in CONFIGS.items():
        env = {**base, **config, "AIRFLOW_HOME": str(root / name), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        out = root / f"{name}.json"
        confs = json.dumps([conf for conf, _ in CONFS])
        procs[name] = (
            subprocess.Popen(
                [sys.executable, str(PROBE), str(DAGS_DIR), str(out), confs],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ),
            out,
        )
    results = {}
    for name, (proc, out) in procs.items():
        output, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"DAG probe ({name}) failed:\n{output[-4000:]}"
        results[name] = json.loads(out.read_text())
    return results


def _container(task: dict[str, Any]) -> dict[str, Any]:
    """The job's container (train also has the KPO xcom sidecar)."""
    (container,) = [c for c in task["pod"]["spec"]["containers"] if c["name"] == "base"]
    return container


@pytest.mark.parametrize("config", list(CONFIGS))
def test_dag_parses_under_every_deployment_config(parsed: dict, config: str) -> None:
    result = parsed[config]
    assert result["import_errors"] == {}
    assert result["dag_ids"] == ["train_model_pipeline"]
    # .airflowignore keeps the helper package out of DAG parsing.
    assert [Path(f).name for f in result["files"]] == ["train_model_pipeline.py"]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_tasks_order_and_run_policy(parsed: dict, config: str) -> None:
    result = parsed[config]
    assert result["order"] == TASKS
    tasks = result["tasks"]
    assert tasks["preprocess_data"]["downstream"] == ["train_model"]
    assert tasks["train_model"]["downstream"] == ["evaluate_and_register"]
    assert tasks["evaluate_and_register"]["downstream"] == []
    assert result["schedule"] == "0 2 * * *"
    assert result["catchup"] is False
    # Production never overlaps runs; the sandbox raises it (deployment config, values-local.yaml).
    assert result["max_active_runs"] == (4 if config == "local" else 1)
    expected_delay = 2.0 if config == "local" else 300.0
    assert {t["retries"] for t in tasks.values()} == {1}
    assert {t["retry_delay"] for t in tasks.values()} == {expected_delay}
    assert [t for t in TASKS if tasks[t]["do_xcom_push"]] == ["train_model"]
    if config != "local":
        sidecars = {t: [c["name"] for c in tasks[t]["pod"]["spec"]["containers"]] for t in TASKS}
        assert sidecars == {
            t: ["base", "airflow-xcom-sidecar"] if t == "train_model" else ["base"] for t in TASKS
        }
    # JobPodOperator: the KubernetesPodOperator that fails a rejected gate without a retry
    expected_type = "LocalJobOperator" if config == "local" else "JobPodOperator"
    assert {t["type"] for t in tasks.values()} == {expected_type}


def test_dag_uses_airflow3_schedule_argument() -> None:
    """Recipe bug: ``schedule_interval`` (removed in Airflow 3)."""
    tree = ast.parse(DAG_FILE.read_text())
    keywords = {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords}
    assert "schedule" in keywords
    assert "schedule_interval" not in keywords


def test_params_defaults_and_validation(parsed: dict) -> None:
    result = parsed["kubernetes"]
    assert result["params"] == {
        "experiment_name": "train_model_pipeline",
        "model_name": "production-classifier",
        "min_accuracy": 0.85,
        "n_estimators": 100,
        "max_depth": 10,
        "dataset": "breast_cancer",
        "label_noise": 0.0,
        "seed": 42,
        "test_size": 0.2,
        "data_content_hash": "",
        "data_source": "",
    }
    # dataset stays a free string so the job can fail with the list of valid names.
    assert "enum" not in result["param_schema"]["dataset"]
    for (conf, accepted), error in zip(CONFS, result["param_errors"], strict=True):
        assert (error is None) == accepted, f"conf {conf}: {error}"


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize("config", ["kubernetes", "kubernetes-gpu"])
def test_pod_env_is_complete_and_secrets_come_from_kubernetes(parsed: dict, config: str) -> None:
    for task_id, task in parsed[config]["tasks"].items():
        container = _container(task)
        env = _env(container)
        expected = RUN_ENV | SECRETS
        if task_id == "evaluate_and_register":
            expected |= {"MLOPS_TRAIN_RESULT"}
        # Recipe bug: the evaluate pod lacked EXPERIMENT_NAME / MLFLOW_TRACKING_URI.
        assert set(env) == expected, task_id
        for name in SECRETS:
            ref = env[name]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "mlops-platform-credentials", "key": name}
            assert "value" not in env[name]
        # MLFLOW_TRACKING_URI, AWS_ENDPOINT_URL_S3, bucket, region: from the platform ConfigMap.
        assert container["envFrom"] == [{"configMapRef": {"name": "mlops-platform-config"}}]
        assert container["command"] == ["python"]
        assert container["args"] == ["-m", "mlops_jobs", JOBS[task_id]]
        assert task["on_finish_action"] == "delete_pod"
        assert task["get_logs"] is True
    evaluate = _env(_container(parsed[config]["tasks"]["evaluate_and_register"]))
    assert evaluate["MLOPS_TRAIN_RESULT"]["value"] == "{{ ti.xcom_pull(task_ids='train_model') | tojson }}"


_URI_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@", re.IGNORECASE)


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize("config", list(CONFIGS))
def test_no_credentials_in_task_definitions(parsed: dict, config: str) -> None:
    """Recipe bug: passwords in URIs / literal credentials in pod env."""
    for task_id, task in parsed[config]["tasks"].items():
        strings = _strings(task)
        assert not [s for s in strings if _URI_PASSWORD.search(s)], task_id
        literal = task["env"] if config == "local" else {
            e["name"]: e.get("value") for e in _container(task)["env"]
        }  # fmt: skip
        secretish = [k for k, v in literal.items() if re.search("PASSWORD|SECRET|KEY_ID|TOKEN", k) and v]
        assert secretish == [], task_id


def test_pod_resources_per_step(parsed: dict) -> None:
    tasks = parsed["kubernetes"]["tasks"]
    small = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "1Gi"}}
    assert _container(tasks["preprocess_data"])["resources"] == small
    assert _container(tasks["evaluate_and_register"])["resources"] == small
    assert _container(tasks["train_model"])["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"cpu": "4", "memory": "16Gi"},
    }


def test_step_resources_are_deployment_config(parsed: dict) -> None:
    """MLOPS_STEP_RESOURCES overrides the steps it names; the others keep production's sizes."""
    tasks = parsed["kubernetes-gpu"]["tasks"]
    assert _container(tasks["train_model"])["resources"] == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
    }
    assert _container(tasks["preprocess_data"])["resources"]["requests"] == {"cpu": "250m", "memory": "512Mi"}


def test_gpu_only_when_the_deployment_enables_it(parsed: dict) -> None:
    for config in ("kubernetes", "kubernetes-gpu"):
        for task_id, task in parsed[config]["tasks"].items():
            spec = task["pod"]["spec"]
            resources = _container(task)["resources"]
            gpu = config == "kubernetes-gpu" and task_id == "train_model"
            assert ("nvidia.com/gpu" in resources["limits"]) is gpu, (config, task_id)
            assert ("nvidia.com/gpu" in resources.get("requests", {})) is False
            assert spec.get("runtimeClassName") == ("nvidia" if gpu else None), (config, task_id)
            if gpu:
                assert resources["limits"]["nvidia.com/gpu"] == "1"
                assert spec["tolerations"] == [
                    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                ]
                assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            else:
                assert spec["tolerations"] == []
                assert spec["nodeSelector"] == {}


def test_deployment_config_reaches_the_pods(parsed: dict) -> None:
    for config, image, namespace in (
        ("kubernetes", "mlops-jobs:0.1.0", "mlops"),
        ("kubernetes-gpu", "registry.example/mlops-jobs:1.2.3", "ml-prod"),
    ):
        for task in parsed[config]["tasks"].values():
            assert _container(task)["image"] == image
            # The job records its image (MLflow tag mlops.job_image): a pod cannot see it otherwise.
            assert _env(_container(task))["MLOPS_JOB_IMAGE"]["value"] == image
            assert task["pod"]["metadata"]["namespace"] == namespace
            assert task["pod"]["spec"]["securityContext"] == {
                "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            }  # fmt: skip


def test_local_runtime_runs_the_pod_command_with_the_pod_env(parsed: dict) -> None:
    pods, local = parsed["kubernetes"]["tasks"], parsed["local"]["tasks"]
    for task_id in TASKS:
        container = _container(pods[task_id])
        assert ["python", *local[task_id]["args"]] == container["command"] + container["args"]
        literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        assert local[task_id]["env"] == literal


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_max_active_runs_must_be_a_whole_number(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DAGS_DIR))
    from mlops_pipeline.steps import Deployment

    with pytest.raises(ValueError, match=f"MLOPS_MAX_ACTIVE_RUNS={value!r}"):
        Deployment.from_env({"MLOPS_MAX_ACTIVE_RUNS": value})
    assert Deployment.from_env({}).max_active_runs == 1
    assert Deployment.from_env({"MLOPS_MAX_ACTIVE_RUNS": " 4 "}).max_active_runs == 4
