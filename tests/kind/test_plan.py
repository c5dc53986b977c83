"""The kind plan: ordered steps, exact argv, manifests and generated files (nothing is executed)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml

from sandbox import paths
from sandbox.backends.kind.plan import Step, format_plan, plan, state_dir
from sandbox.images.tag import image_tag

CHARTS = paths.CHARTS_DIR


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))


def _by_key(steps: list[Step]) -> dict[str, Step]:
    return {s.key: s for s in steps}


def test_cpu_plan_order() -> None:
    keys = [s.key for s in plan("dev")]
    assert keys == [
        "cluster",
        "image-build",
        "image-load",
        "namespace",
        "secrets",
        "helm:postgres",
        "helm:s3",
        "helm:mlflow",
        "helm:platform",
        "helm:airflow",
    ]


def test_gpu_plan_adds_node_setup_and_device_plugin_first() -> None:
    keys = [s.key for s in plan("dev", gpu=True)]
    assert keys[:4] == ["cluster", "gpu-node-0", "gpu-node-1", "gpu-node-2"]
    assert keys.index("runtime-class") < keys.index("helm:nvidia-device-plugin") < keys.index("helm:postgres")
    steps = _by_key(plan("dev", gpu=True))
    assert steps["gpu-node-0"].argv[:4] == ("docker", "exec", "mlops-dev-control-plane", "bash")
    assert "apt-get install -y nvidia-container-toolkit" in steps["gpu-node-0"].argv[-1]


def test_gpu_node_follows_nvkind_runtime_class_recipe() -> None:
    """nvkind (2026-06): `--config-source=file` (`command` writes an invalid drop-in under containerd 2.x with
    a version-2 config), no default-runtime switch, an `nvidia` RuntimeClass the GPU pods name."""
    steps = _by_key(plan("dev", gpu=True))
    configure = steps["gpu-node-1"].argv[-1]
    assert "nvidia-ctk runtime configure --runtime=containerd --config-source=file" in configure
    assert "--config-source=command" not in configure and "--set-as-default" not in configure
    assert "systemctl restart containerd" in configure
    (rc,) = yaml.safe_load_all(steps["runtime-class"].stdin or "")
    assert rc == {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"},
                  "handler": "nvidia"}  # fmt: skip
    dp = steps["helm:nvidia-device-plugin"].argv
    assert dp[dp.index("--set") + 1] == "runtimeClassName=nvidia"
    gpu_env = _env(steps["helm:airflow"])
    assert gpu_env["MLOPS_GPU_RUNTIME_CLASS"] == rc["metadata"]["name"]
    assert "runtime-class" not in _by_key(plan("dev"))


def test_cluster_and_image_argv() -> None:
    steps = _by_key(plan("dev"))
    tag = image_tag(paths.JOBS_DIR)
    config = state_dir("dev") / "kind-config.yaml"
    assert steps["cluster"].argv == (
        "kind",
        "create",
        "cluster",
        "--name",
        "mlops-dev",
        "--config",
        str(config),
        "--wait",
        "180s",
    )
    assert yaml.safe_load(steps["cluster"].files[str(config)])["name"] == "mlops-dev"
    assert steps["image-build"].argv == (
        "docker",
        "build",
        "--tag",
        tag,
        "--file",
        str(paths.JOBS_DIR / "Dockerfile"),
        str(paths.JOBS_DIR),
    )
    assert steps["image-load"].argv == ("kind", "load", "docker-image", tag, "--name", "mlops-dev")


def test_helm_argv_local_and_upstream_charts() -> None:
    steps = _by_key(plan("dev", binaries={"helm": "/opt/helm"}))
    assert steps["helm:mlflow"].argv == (
        "/opt/helm",
        "upgrade",
        "--install",
        "mlflow",
        str(CHARTS / "mlflow"),
        "--namespace",
        "mlops",
        "--create-namespace",
        "--kube-context",
        "kind-mlops-dev",
        "--values",
        str(CHARTS / "mlflow" / "values.yaml"),
        "--values",
        str(CHARTS / "mlflow" / "values-sandbox.yaml"),
        "--wait",
        "--timeout",
        "10m",
        "--wait-for-jobs",
    )
    airflow = steps["helm:airflow"].argv
    assert airflow[3:5] == ("airflow", "airflow")
    assert airflow[airflow.index("--repo") + 1] == "https://airflow.apache.org"
    assert airflow[airflow.index("--version") + 1] == "1.22.0"
    values = [airflow[i + 1] for i, a in enumerate(airflow) if a == "--values"]
    generated = str(state_dir("dev") / "airflow-values.generated.yaml")
    assert values == [
        str(CHARTS / "airflow" / "values.yaml"),
        str(CHARTS / "airflow" / "values-sandbox.yaml"),
        generated,
    ]


def _env(step: Step, component: str = "scheduler") -> dict[str, str]:
    (content,) = step.files.values()
    generated = yaml.safe_load(content)
    assert "env" not in generated, "the global env reaches the migration Job"
    return {e["name"]: e["value"] for e in generated[component]["env"]}


@pytest.mark.parametrize(("gpu", "train_gpu"), [(False, "false"), (True, "true")])
def test_generated_airflow_values_set_the_loaded_image(gpu: bool, train_gpu: str) -> None:
    step = _by_key(plan("dev", gpu=gpu))["helm:airflow"]
    envs = [_env(step, c) for c in ("dagProcessor", "scheduler", "triggerer")]
    assert envs[0] == envs[1] == envs[2]
    env = envs[0]
    assert env["MLOPS_JOB_IMAGE"] == image_tag(paths.JOBS_DIR)
    assert env["MLOPS_TRAIN_GPU"] == train_gpu
    assert env["MLOPS_TASK_RUNTIME"] == "kubernetes"
    overlay = "values-sandbox-gpu.yaml" if gpu else "values-sandbox.yaml"
    assert str(CHARTS / "airflow" / overlay) in step.argv


def test_secrets_redacted_in_printed_plan_and_real_when_applied() -> None:
    printed = _by_key(plan("dev"))["secrets"]
    assert printed.argv == ("kubectl", "--context", "kind-mlops-dev", "--namespace", "mlops", "apply")
    docs = list(yaml.safe_load_all(printed.stdin or ""))
    assert {d["metadata"]["name"] for d in docs} == {
        "mlops-postgres-credentials",
        "mlops-platform-credentials",
        "mlops-airflow-secrets",
        "mlops-airflow-users",
    }
    assert all(v == "<redacted>" for d in docs for v in d["stringData"].values())
    secrets = {
        "POSTGRES_USER": "u",
        "POSTGRES_PASSWORD": "p4ss",
        "AWS_ACCESS_KEY_ID": "AK",
        "AWS_SECRET_ACCESS_KEY": "sk",
        "AIRFLOW_FERNET_KEY": "f",
        "AIRFLOW_API_SECRET_KEY": "a",
        "AIRFLOW_JWT_SECRET": "j",
        "AIRFLOW_USERNAME": "admin",
        "AIRFLOW_PASSWORD": "pw",
    }
    applied = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all(_by_key(plan("dev", secrets=secrets))["secrets"].stdin or "")
    }
    conn = base64.b64decode(applied["mlops-airflow-secrets"]["data"]["connection"]).decode()
    assert conn == "postgresql+psycopg2://u:p4ss@postgres.mlops.svc.cluster.local:5432/airflow"
    users = base64.b64decode(applied["mlops-airflow-users"]["data"]["passwords.json"]).decode()
    assert users == '{"admin": "pw"}'
    assert "p4ss" not in format_plan(plan("dev"))


def test_existing_context_skips_cluster_image_and_device_plugin() -> None:
    steps = plan("dev", gpu=True, kube_context="prod-like", job_image="registry.example/mlops-jobs:1")
    keys = [s.key for s in steps]
    assert keys[0] == "namespace" and "cluster" not in keys and "image-load" not in keys
    assert "helm:nvidia-device-plugin" not in keys
    for step in steps:
        if step.key.startswith("helm:"):
            assert step.argv[step.argv.index("--kube-context") + 1] == "prod-like"
    assert "runtime-class" not in keys, "an existing cluster brings its own (GPU operator: `nvidia`)"
    assert _env(_by_key(steps)["helm:airflow"])["MLOPS_JOB_IMAGE"] == "registry.example/mlops-jobs:1"


def test_format_plan_shows_every_command_and_manifest() -> None:
    text = format_plan(plan("dev", gpu=True))
    assert "kind create cluster --name mlops-dev" in text
    assert "/var/run/nvidia-container-devices/all" in text
    assert "kubectl --context kind-mlops-dev apply -f - <<EOF" in text
    assert text.count("helm upgrade --install") == 6
    assert "--config-source=file" in text and "kind: RuntimeClass" in text
