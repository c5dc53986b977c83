"""Values files offline: overlays change only documented keys, the allow-list, the upstream Airflow chart."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.paths import CHARTS_DIR
from sandbox.platform import values

OVERLAY_KEYS: dict[str, dict[str, list[str]]] = yaml.safe_load((CHARTS_DIR / "overlay-keys.yaml").read_text())
UPSTREAM = yaml.safe_load((CHARTS_DIR / "upstream.yaml").read_text())["charts"]
IMAGES = yaml.safe_load((CHARTS_DIR / "images.yaml").read_text())["images"]


def _load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text()) or {}


@pytest.mark.parametrize(("chart", "overlay"), [(c, o) for c in OVERLAY_KEYS for o in OVERLAY_KEYS[c]])
def test_overlay_differs_only_in_documented_keys(chart: str, overlay: str) -> None:
    base = _load(CHARTS_DIR / chart / "values.yaml")
    # The reader's own merge (Helm's coalescing: null removes a key) and diff: one home for both.
    overlaid = values.merge(base, _load(CHARTS_DIR / chart / f"values-{overlay}.yaml"))
    allowed = OVERLAY_KEYS[chart][overlay]
    undocumented = {k for k in values.changed_keys(base, overlaid) if not values.covered(k, allowed)}
    assert not undocumented, f"{chart} {overlay} changes undocumented keys: {sorted(undocumented)}"


def test_every_chart_has_both_overlays() -> None:
    for chart in OVERLAY_KEYS:
        for overlay in ("sandbox", "sandbox-gpu"):
            assert (CHARTS_DIR / chart / f"values-{overlay}.yaml").is_file(), (chart, overlay)


def test_image_allow_list_is_pinned_and_maintained() -> None:
    for image in IMAGES:
        ref = image["ref"]
        name, _, tag = ref.split("@", 1)[0].rpartition(":")
        assert name and tag and tag != "latest", ref
        assert "bitnami" not in ref, ref  # frozen in bitnamilegacy since Aug 2025
        assert image.get("why"), f"{ref}: say why this image"
        assert image.get("user") is None or image["user"] > 0, ref
    frozen = {i["ref"] for i in IMAGES if "minio" in i["ref"] or "localstack" in i["ref"]}
    for ref in frozen:  # the S3 flavours whose upstream stopped: pinned exactly, reason recorded
        why = next(i["why"] for i in IMAGES if i["ref"] == ref)
        assert "@sha256:" in ref or ref.endswith(":4.14.0"), ref
        assert "UNMAINTAINED" in why or "frozen" in why, ref


def test_xcom_sidecar_image_is_the_providers_pinned_default() -> None:
    """The provider adds its own sidecar image; a provider upgrade that changes it must update the list."""
    from airflow.providers.cncf.kubernetes.utils.xcom_sidecar import XCOM_SIDECAR_IMAGE

    assert XCOM_SIDECAR_IMAGE in {i["ref"] for i in IMAGES}


# -- the upstream Airflow chart (apache-airflow/airflow), validated offline -------------------------
AIRFLOW = _load(CHARTS_DIR / "airflow" / "values.yaml")
# Top-level keys of the official chart 1.22 values.yaml that these values use (webserver.* is gone).
AIRFLOW_KNOWN_TOP = {
    "defaultAirflowRepository", "defaultAirflowTag", "airflowVersion", "executor", "allowPodLaunching",
    "postgresql", "redis", "pgbouncer", "statsd", "data", "fernetKeySecretName", "apiSecretKeySecretName",
    "jwtSecretName", "migrateDatabaseJob", "createUserJob", "config", "securityContexts", "dags",
    "apiServer", "scheduler", "dagProcessor", "triggerer", "env",
}  # fmt: skip


def test_airflow_chart_pinned_to_1_22() -> None:
    assert UPSTREAM["airflow"]["repo"] == "https://airflow.apache.org"
    assert UPSTREAM["airflow"]["version"].startswith("1.22.")


@pytest.mark.parametrize(
    "name", ["values.yaml", "values-sandbox.yaml", "values-sandbox-gpu.yaml", "values-local.yaml"]
)
def test_airflow_values_use_known_keys(name: str) -> None:
    values = _load(CHARTS_DIR / "airflow" / name)
    assert set(values) <= AIRFLOW_KNOWN_TOP, set(values) - AIRFLOW_KNOWN_TOP
    assert "webserver" not in values


def test_airflow_production_values() -> None:
    assert AIRFLOW["postgresql"]["enabled"] is False
    assert AIRFLOW["data"]["metadataSecretName"] == "mlops-airflow-secrets"
    for key in ("fernetKeySecretName", "apiSecretKeySecretName", "jwtSecretName"):
        assert AIRFLOW[key] == "mlops-airflow-secrets"
    assert AIRFLOW["migrateDatabaseJob"]["useHelmHooks"] is False
    assert AIRFLOW["createUserJob"]["useHelmHooks"] is False
    assert AIRFLOW["allowPodLaunching"] is True
    image = f"{AIRFLOW['defaultAirflowRepository']}:{AIRFLOW['defaultAirflowTag']}"
    assert image in {i["ref"] for i in IMAGES}
    assert AIRFLOW["airflowVersion"] == AIRFLOW["defaultAirflowTag"].split("-")[0]
    text = (CHARTS_DIR / "airflow" / "values.yaml").read_text().lower()
    assert "password:" not in text and "defaultuser" not in text


@pytest.mark.parametrize(("overlay", "gpu", "runtime_class"), [
    ("values.yaml", "false", ""), ("values-sandbox.yaml", "false", ""),
    ("values-sandbox-gpu.yaml", "true", "nvidia"),
])  # fmt: skip
def test_airflow_dag_deployment_config(overlay: str, gpu: str, runtime_class: str) -> None:
    values = _load(CHARTS_DIR / "airflow" / overlay)
    assert "env" not in values and "volumes" not in values, "global env/volumes reach the migration Job"
    lists = [values[c]["env"] for c in ("dagProcessor", "scheduler", "triggerer")]
    assert lists[0] == lists[1] == lists[2], "every component that parses the DAG gets the same config"
    env = {e["name"]: e["value"] for e in lists[0]}
    assert env["MLOPS_TASK_RUNTIME"] == "kubernetes"
    assert env["MLOPS_TRAIN_GPU"] == gpu
    assert env["MLOPS_GPU_RUNTIME_CLASS"] == runtime_class
    assert env["MLOPS_K8S_NAMESPACE"] == "mlops"
    assert env["MLOPS_PLATFORM_SECRET"] == "mlops-platform-credentials"
    assert env["MLOPS_PLATFORM_CONFIGMAP"] == "mlops-platform-config"
    assert set(json.loads(env["MLOPS_STEP_RESOURCES"])) == {"preprocess", "train", "evaluate"}


def test_airflow_sandbox_mounts_the_kind_dags_folder() -> None:
    from sandbox.backends.kind.cluster import DAGS_NODE_PATH, NODE_PORTS

    sandbox = _load(CHARTS_DIR / "airflow" / "values-sandbox.yaml")
    assert sandbox["dags"]["gitSync"]["enabled"] is False
    for component in ("dagProcessor", "scheduler", "triggerer"):
        assert sandbox[component]["extraVolumes"][0]["hostPath"]["path"] == DAGS_NODE_PATH
        assert sandbox[component]["extraVolumeMounts"][0]["mountPath"] == "/opt/airflow/dags"
    assert sandbox["apiServer"]["service"]["ports"][0]["nodePort"] == NODE_PORTS["airflow"]


def test_airflow_render_needs_the_upstream_chart() -> None:
    chart = os.environ.get("MLOPS_AIRFLOW_CHART")
    if not chart:
        pytest.skip(
            "the official chart apache-airflow/airflow 1.22.0 cannot be pulled here (no chart registry). To "
            "run this: helm pull airflow --repo https://airflow.apache.org --version 1.22.0 --untar -d "
            "/tmp/charts && MLOPS_AIRFLOW_CHART=/tmp/charts/airflow pytest tests/charts"
        )
    import subprocess

    from sandbox.tools import find_tool

    helm = find_tool("helm")
    assert helm is not None, "helm is not installed: run `bash .ci/install-helm`"
    for overlay in ("values-sandbox.yaml", "values-sandbox-gpu.yaml"):
        argv = [str(helm), "template", "airflow", chart, "--namespace", "mlops",
                "--values", str(CHARTS_DIR / "airflow" / "values.yaml"),
                "--values", str(CHARTS_DIR / "airflow" / overlay)]  # fmt: skip
        out = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        assert out.returncode == 0, out.stderr
        assert "helm.sh/hook" not in out.stdout.split("run-airflow-migrations")[0][-2000:]


@pytest.mark.parametrize("overlay", ["local", "sandbox", "sandbox-gpu"])
def test_no_sandbox_runs_the_daily_schedule_and_production_does(overlay: str) -> None:
    """The first unpause of the daily DAG (catchup=False) would add a run nobody asked for, which a
    scenario's run then waits behind; production keeps Airflow's default (the schedule runs)."""
    base = _load(CHARTS_DIR / "airflow" / "values.yaml")
    overlaid = values.merge(base, _load(CHARTS_DIR / "airflow" / f"values-{overlay}.yaml"))
    assert "use_job_schedule" not in base.get("config", {}).get("scheduler", {})
    assert overlaid["config"]["scheduler"]["use_job_schedule"] is False
    # What the scheduler parses the DAG with: the global env, then its own (the chart's order).
    env = overlaid.get("env", []) + overlaid.get("scheduler", {}).get("env", [])
    deployment = {e["name"]: e["value"] for e in env}
    assert deployment.get("MLOPS_MAX_ACTIVE_RUNS") == "4", "scenarios side by side need more than one run"
