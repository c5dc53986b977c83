"""helm lint + helm template of every project-owned chart under production and each overlay; the
assertions are on the rendered objects (pyyaml), not on the values files."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.backends.kind.cluster import NODE_PORTS
from sandbox.paths import CHARTS_DIR, PROJECT_ROOT
from tests.charts.conftest import CASES, S3_FLAVOURS, VALUE_SETS, Render, case_id, pod_specs, values_files

SENSITIVE = re.compile(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|CONNECTION", re.I)
Case = tuple[str, str, tuple[str, ...]]


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_helm_lint(helm_bin: Path, case: Case) -> None:
    chart, value_set, sets = case
    argv = [str(helm_bin), "lint", "--strict", str(CHARTS_DIR / chart)]
    for f in values_files(chart, value_set):
        argv += ["--values", str(f)]
    for item in sets:
        argv += ["--set", item]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


# The workloads each chart must render: the per-workload checks below loop over them, so a chart
# that rendered none would pass them all without checking anything.
WORKLOADS = {
    "postgres": ["StatefulSet/postgres"],
    "s3": ["Job/s3-buckets-", "StatefulSet/s3"],  # the Job's name ends in a hash of its spec
    "mlflow": ["Deployment/mlflow"],
    "platform": [],
}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_chart_renders_its_workloads(render: Render, case: Case) -> None:
    chart, value_set, sets = case
    rendered = sorted(where for where, _ in pod_specs(render(chart, value_set, sets)))
    assert len(rendered) == len(WORKLOADS[chart]), rendered
    assert all(got.startswith(want) for got, want in zip(rendered, WORKLOADS[chart], strict=True)), rendered


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_no_literal_secrets(render: Render, case: Case) -> None:
    chart, value_set, sets = case
    objects = render(chart, value_set, sets)
    assert not [o for o in objects if o["kind"] == "Secret"], "charts must reference pre-created Secrets"
    for where, spec in pod_specs(objects):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for env in c.get("env", []):
                if SENSITIVE.search(env["name"]) and "value" in env:
                    pytest.fail(f"{where}/{c['name']}: {env['name']} is a literal, not a secretKeyRef")
            text = " ".join(c.get("args", []) + c.get("command", []))
            assert not re.search(r"password|://[^/@\s]+:[^/@\s$]+@", text, re.I), f"{where}: secret in args"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_probes_resources_non_root(render: Render, case: Case) -> None:
    chart, value_set, sets = case
    for where, spec in pod_specs(render(chart, value_set, sets)):
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
    for flavour in S3_FLAVOURS:  # every S3 flavour takes its identity from the same Secret
        assert _secret_refs(render("s3", value_set, (f"flavour={flavour}",))) == creds, flavour
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


# SeaweedFS's master, filer, volume server and their gRPC ports: no authentication.
SEAWEEDFS_ADMIN_PORTS = {9333, 19333, 8888, 18888, 8080, 18080}


@pytest.mark.parametrize("case", [c for c in CASES if c[0] == "s3"], ids=case_id)
def test_s3_services_expose_only_the_s3_api(render: Render, case: Case) -> None:
    """The sandbox's NodePort must not publish SeaweedFS's unauthenticated admin ports (nor any Service)."""
    chart, value_set, sets = case
    objects = render(chart, value_set, sets)
    for svc in (o for o in objects if o["kind"] == "Service"):
        ports = {p["port"] for p in svc["spec"]["ports"]} | {p["targetPort"] for p in svc["spec"]["ports"]}
        assert not ports & SEAWEEDFS_ADMIN_PORTS, f"Service/{svc['metadata']['name']} exposes {ports}"
        assert [p["name"] for p in svc["spec"]["ports"]] == ["s3"]


@pytest.mark.parametrize("flavour", S3_FLAVOURS)
def test_s3_flavour_wiring(render: Render, flavour: str) -> None:
    """Endpoint (the Service's named port s3), a health probe on it, and the bucket Job on the Service."""
    objects = render("s3", "sandbox", (f"flavour={flavour}",))
    (sts,) = [o for o in objects if o["kind"] == "StatefulSet"]
    (main,) = sts["spec"]["template"]["spec"]["containers"]
    assert main["name"] == flavour and [p["name"] for p in main["ports"]] == ["s3"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert main[probe]["httpGet"]["port"] == "s3", probe
    (job,) = [o for o in objects if o["kind"] == "Job"]
    env = {e["name"]: e.get("value") for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["S3_ENDPOINT"] == "http://s3:8333" and env["BUCKETS"] == "mlflow-artifacts mlops-data"
    assert "helm.sh/hook" not in (job["metadata"].get("annotations") or {}), "hooks deadlock `helm --wait`"


def test_s3_unknown_flavour_is_a_clear_error(helm_bin: Path) -> None:
    argv = [str(helm_bin), "template", "s3", str(CHARTS_DIR / "s3"), "--set", "flavour=ceph"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode != 0 and 'flavour="ceph" is not one of seaweedfs, localstack, minio' in out.stderr


def test_platform_configmap_and_pod_launcher_rbac(render: Render) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in render("platform", "production")}
    data = objects[("ConfigMap", "mlops-platform-config")]["data"]
    assert set(data) == {
        "MLFLOW_TRACKING_URI",
        "AWS_ENDPOINT_URL_S3",
        "MLOPS_DATA_BUCKET",
        "AWS_DEFAULT_REGION",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
        "MLFLOW_HTTP_REQUEST_TIMEOUT",
        "MLOPS_CHART_VERSION",
    }
    # The jobs ride out about 30 s of an unreachable MLflow, then fail and leave it to Airflow's retry.
    assert (data["MLFLOW_HTTP_REQUEST_MAX_RETRIES"], data["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"]) == ("5", "1")
    # Training runs record which platform release they ran on (MLflow tag mlops.chart_version).
    chart = yaml.safe_load((CHARTS_DIR / "platform" / "Chart.yaml").read_text())
    assert data["MLOPS_CHART_VERSION"] == f"platform-{chart['version']}"
    rules = {r["resources"][0]: set(r["verbs"]) for r in objects[("Role", "mlops-pod-launcher")]["rules"]}
    assert {"create", "watch", "delete"} <= rules["pods"] and "create" in rules["pods/exec"]
    subjects = {s["name"] for s in objects[("RoleBinding", "mlops-pod-launcher")]["subjects"]}
    assert "airflow-scheduler" in subjects


def test_s3_bucket_job_creates_the_buckets_against_a_real_s3(render: Render, tmp_path: Path) -> None:
    """The bucket Job's own script, run against a real S3 server (moto), twice (idempotent)."""
    import boto3

    from sandbox.ports import LOOPBACK, free_ports

    (job,) = [o for o in render("s3", "sandbox") if o["kind"] == "Job"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-c"]
    (port,) = free_ports(1)
    url = f"http://{LOOPBACK}:{port}"
    moto_server = str(Path(sys.executable).parent / "moto_server")
    moto = subprocess.Popen([moto_server, "-H", LOOPBACK, "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        literal = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        env = {**os.environ, **literal, "S3_ENDPOINT": url, "S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s",
               "HOME": str(tmp_path)}  # fmt: skip
        for _ in range(2):
            out = subprocess.run([sys.executable, "-c", container["args"][0]], env=env, capture_output=True,
                                 text=True, timeout=120, check=False)  # fmt: skip
            assert out.returncode == 0, out.stdout + out.stderr
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="k", aws_secret_access_key="s",
                          region_name="us-east-1")  # fmt: skip
        assert {b["Name"] for b in s3.list_buckets()["Buckets"]} == {"mlflow-artifacts", "mlops-data"}
        assert "bucket mlops-data exists" in out.stdout
    finally:
        moto.terminate()
        moto.wait(timeout=30)


def test_chart_files_name_only_existing_tests() -> None:
    """Comments in charts/*.yaml that point at a test file must point at one that exists."""
    missing = []
    for path in CHARTS_DIR.glob("*.yaml"):
        for ref in re.findall(r"tests/[\w/]+\.py", path.read_text()):
            if not (PROJECT_ROOT / ref).is_file():
                missing.append(f"{path.name}: {ref}")
    assert missing == []


@pytest.mark.parametrize("chart", ["postgres", "s3", "mlflow"])
def test_kind_service_faults_scale_the_workloads_the_charts_render(render: Render, chart: str) -> None:
    """A service fault on kind scales `<kind>/<name>` (kind/faults.py): the chart renders that workload."""
    from sandbox.backends.kind.faults import WORKLOADS

    kind, name = WORKLOADS[chart]
    rendered = {(o["kind"].lower(), o["metadata"]["name"]) for o in render(chart, "sandbox")}
    assert (kind, name) in rendered, sorted(rendered)
