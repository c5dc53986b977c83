"""helm lint + helm template of every project-owned chart under production and each overlay; the
assertions are on the rendered objects (pyyaml), not on the values files."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.backends.kind.cluster import NODE_PORTS
from sandbox.paths import CHARTS_DIR
from tests.charts.conftest import OWNED, VALUE_SETS, pod_specs, values_files

Render = Callable[[str, str], list[dict[str, Any]]]
CASES = [(c, v) for c in OWNED for v in VALUE_SETS]
ALLOWED = {i["ref"] for i in yaml.safe_load((CHARTS_DIR / "images.yaml").read_text())["images"]}
SENSITIVE = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|CONNECTION", re.I)


@pytest.mark.parametrize(("chart", "value_set"), CASES)
def test_helm_lint(helm_bin: Path, chart: str, value_set: str) -> None:
    argv = [str(helm_bin), "lint", "--strict", str(CHARTS_DIR / chart)]
    for f in values_files(chart, value_set):
        argv += ["--values", str(f)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(("chart", "value_set"), CASES)
def test_images_pinned_and_allowed(render: Render, chart: str, value_set: str) -> None:
    for where, spec in pod_specs(render(chart, value_set)):
        for c in spec.get("initContainers", []) + spec["containers"]:
            image = c["image"]
            assert ":" in image and not image.endswith(":latest"), f"{where}: {image} is not pinned"
            assert image in ALLOWED, f"{where}: {image} is not in charts/images.yaml"


@pytest.mark.parametrize(("chart", "value_set"), CASES)
def test_no_literal_secrets(render: Render, chart: str, value_set: str) -> None:
    objects = render(chart, value_set)
    assert not [o for o in objects if o["kind"] == "Secret"], "charts must reference pre-created Secrets"
    for where, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for env in c.get("env", []):
                if SENSITIVE.search(env["name"]) and "value" in env:
                    pytest.fail(f"{where}/{c['name']}: {env['name']} is a literal, not a secretKeyRef")
            text = " ".join(c.get("args", []) + c.get("command", []))
            assert not re.search(r"password|://[^/@\s]+:[^/@\s$]+@", text, re.I), f"{where}: secret in args"


@pytest.mark.parametrize(("chart", "value_set"), CASES)
def test_probes_resources_non_root(render: Render, chart: str, value_set: str) -> None:
    for where, spec in pod_specs(render(chart, value_set)):
        pod_sc = spec.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser", 0) > 0, where
        assert spec.get("automountServiceAccountToken") is False, where
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["resources"]["requests"] and c["resources"]["limits"]["memory"], f"{where}/{c['name']}"
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"], where
        if not where.startswith("Job/"):
            for c in spec["containers"]:
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    assert probe in c, f"{where}/{c['name']} has no {probe}"


def _secret_refs(objects: list[dict[str, Any]]) -> set[str]:
    refs = set()
    for _, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    refs.add(f"{ref['name']}/{ref['key']}")
    return refs


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_secrets_referenced(render: Render, value_set: str) -> None:
    assert _secret_refs(render("postgres", value_set)) == {
        "mlops-postgres-credentials/username", "mlops-postgres-credentials/password",
    }  # fmt: skip
    creds = {
        "mlops-platform-credentials/AWS_ACCESS_KEY_ID",
        "mlops-platform-credentials/AWS_SECRET_ACCESS_KEY",
    }
    assert _secret_refs(render("s3", value_set)) == creds
    assert _secret_refs(render("mlflow", value_set)) == creds | {
        "mlops-postgres-credentials/username", "mlops-postgres-credentials/password",
    }  # fmt: skip


def _mlflow_container(render: Render, value_set: str) -> dict[str, Any]:
    (deploy,) = [o for o in render("mlflow", value_set) if o["kind"] == "Deployment"]
    return deploy["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_mlflow_server_contract(render: Render, value_set: str) -> None:
    c = _mlflow_container(render, value_set)
    args = dict(a.removeprefix("--").split("=", 1) for a in c["args"])
    hosts = set(args["allowed-hosts"].split(","))
    for host in ("mlflow", "mlflow.mlops", "mlflow.mlops.svc", "mlflow.mlops.svc.cluster.local", "localhost",
                 "127.0.0.1"):  # fmt: skip
        assert {host, f"{host}:*"} <= hosts, host
    assert args["artifacts-destination"].startswith("s3://")
    assert "default-artifact-root" not in args and "backend-store-uri" not in args
    env = {e["name"]: e for e in c["env"]}
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"]["value"] == "false"
    uri = env["MLFLOW_BACKEND_STORE_URI"]["value"]
    assert uri.startswith("postgresql+psycopg2://$(DB_USER):$(DB_PASSWORD)@")
    names = list(env)
    assert names.index("DB_PASSWORD") < names.index("MLFLOW_BACKEND_STORE_URI"), "$(VAR) needs VAR first"
    assert int(args["workers"]) == (2 if value_set == "production" else 1)


@pytest.mark.parametrize(("chart", "port"), [("s3", NODE_PORTS["s3"]), ("mlflow", NODE_PORTS["mlflow"])])
def test_sandbox_nodeports_match_kind_port_mappings(render: Render, chart: str, port: int) -> None:
    for value_set in ("sandbox", "sandbox-gpu"):
        (svc,) = [o for o in render(chart, value_set) if o["kind"] == "Service"]
        assert svc["spec"]["type"] == "NodePort"
        assert port in [p.get("nodePort") for p in svc["spec"]["ports"]]
    (svc,) = [o for o in render(chart, "production") if o["kind"] == "Service"]
    assert svc["spec"]["type"] == "ClusterIP"


def test_platform_configmap_and_pod_launcher_rbac(render: Render) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render("platform", "production")}
    data = objects[("ConfigMap", "mlops-platform-config")]["data"]
    assert set(data) == {
        "MLFLOW_TRACKING_URI",
        "AWS_ENDPOINT_URL_S3",
        "MLOPS_DATA_BUCKET",
        "AWS_DEFAULT_REGION",
        "MLOPS_CHART_VERSION",
    }
    # Training runs record which platform release they ran on (MLflow tag mlops.chart_version).
    chart = yaml.safe_load((CHARTS_DIR / "platform" / "Chart.yaml").read_text())
    assert data["MLOPS_CHART_VERSION"] == f"platform-{chart['version']}"
    rules = {r["resources"][0]: set(r["verbs"]) for r in objects[("Role", "mlops-pod-launcher")]["rules"]}
    assert {"create", "watch", "delete"} <= rules["pods"] and "create" in rules["pods/exec"]
    subjects = {s["name"] for s in objects[("RoleBinding", "mlops-pod-launcher")]["subjects"]}
    assert "airflow-scheduler" in subjects


def test_s3_bucket_job_creates_the_platform_buckets(render: Render) -> None:
    (job,) = [o for o in render("s3", "sandbox") if o["kind"] == "Job"]
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "for bucket in mlflow-artifacts mlops-data" in script and "s3.bucket.create" in script
    annotations = job["metadata"].get("annotations", {})
    assert "helm.sh/hook" not in annotations, "hooks deadlock `helm --wait`"
