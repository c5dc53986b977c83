"""Charts in dependency order with ``helm upgrade --install --wait``, and the pre-created Secrets.

Each release gets its chart's ``values.yaml`` plus the sandbox overlay (``values-sandbox.yaml`` or
``values-sandbox-gpu.yaml``), and for Airflow a generated values file with the job image tag (and, on an
existing cluster, the DAG ConfigMap delivery of ``dags.py``). Upstream charts may carry ``sets`` from
``charts/upstream.yaml``. A release whose inputs (chart files, values files, sets, chart version) hash the
same as at its last successful install is skipped on a warm re-run.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.backends.kind import dags
from sandbox.errors import ConfigError
from sandbox.paths import CHARTS_DIR
from sandbox.secrets import SECRET_KEYS

NAMESPACE = "mlops"
REDACTED = "<redacted>"


@dataclass(frozen=True)
class Release:
    """One ``helm upgrade --install``: a local chart folder or an upstream chart (``repo`` + ``version``)."""

    name: str
    chart: str
    values: tuple[Path, ...]
    namespace: str = NAMESPACE
    repo: str | None = None
    version: str | None = None
    timeout: str = "10m"
    wait_for_jobs: bool = True
    sets: tuple[str, ...] = field(default=())

    def local_chart(self) -> Path | None:
        return None if self.repo else Path(self.chart)


def upstream() -> dict[str, dict[str, Any]]:
    """Pinned upstream charts (``charts/upstream.yaml``)."""
    return yaml.safe_load((CHARTS_DIR / "upstream.yaml").read_text())["charts"]


def overlay_name(gpu: bool) -> str:
    return "sandbox-gpu" if gpu else "sandbox"


def airflow_generated_values(
    overlay: Path, job_image: str, *, dags_dir: Path | None = None
) -> dict[str, Any]:
    """What the harness adds to the Airflow values: the overlay's DAG deployment config with
    ``MLOPS_JOB_IMAGE`` set to the loaded tag, on every component that parses DAGs (lists replace, so all
    of it); with ``dags_dir`` (an existing cluster) also the ConfigMap DAG delivery (``dags.py``)."""
    values = yaml.safe_load(overlay.read_text())
    env = values["dagProcessor"]["env"]
    out_env = [
        dict(item, value=job_image) if item.get("name") == "MLOPS_JOB_IMAGE" else dict(item) for item in env
    ]
    if not any(item.get("name") == "MLOPS_JOB_IMAGE" for item in out_env):
        out_env.append({"name": "MLOPS_JOB_IMAGE", "value": job_image})
    out: dict[str, Any] = {c: {"env": [dict(i) for i in out_env]} for c in dags.COMPONENTS}  # no YAML anchors
    out["airflowLocalSettings"] = cluster_policy()
    if dags_dir is not None:
        for component, extra in dags.airflow_values(dags_dir, airflow_image()).items():
            out[component].update(extra)
    return out


def cluster_policy() -> str:
    """The sandbox's cluster policy (armed task faults, holds) as the chart's ``airflowLocalSettings``.

    The official chart renders that value through ``tpl``: a ``{{`` in the Python text would be read as a
    template, so it is refused here rather than mangled in the cluster."""
    from sandbox.platform import airflow_local_settings

    text = Path(airflow_local_settings.__file__).read_text()
    if "{{" in text:
        raise ConfigError(
            f"{airflow_local_settings.__file__} contains '{{{{', which the Airflow chart's tpl would render.",
            "Write it without '{{' (e.g. build the string from two parts).",
        )
    return text


def airflow_image(charts_dir: Path = CHARTS_DIR) -> str:
    """The Airflow image the production values pin (``defaultAirflowRepository:defaultAirflowTag``)."""
    values = yaml.safe_load((charts_dir / "airflow" / "values.yaml").read_text())
    return f"{values['defaultAirflowRepository']}:{values['defaultAirflowTag']}"


def releases(*, gpu: bool, generated_airflow_values: Path, charts_dir: Path = CHARTS_DIR) -> list[Release]:
    """Releases in dependency order: [device plugin], postgres, s3, mlflow, platform, airflow."""
    suffix = overlay_name(gpu)
    up = upstream()
    out: list[Release] = []
    if gpu:
        dp = up["nvidia-device-plugin"]
        out.append(Release("nvidia-device-plugin", dp["chart"], (), namespace="nvidia", repo=dp["repo"],
                           version=dp["version"], timeout="5m", wait_for_jobs=False,
                           sets=tuple(dp.get("sets", ()))))  # fmt: skip
    for name in ("postgres", "s3", "mlflow", "platform"):
        chart = charts_dir / name
        out.append(Release(name, str(chart), (chart / "values.yaml", chart / f"values-{suffix}.yaml")))
    af = up["airflow"]
    values = (charts_dir / "airflow" / "values.yaml", charts_dir / "airflow" / f"values-{suffix}.yaml",
              generated_airflow_values)  # fmt: skip
    out.append(Release("airflow", af["chart"], values, repo=af["repo"], version=af["version"], timeout="15m"))
    return out


def upgrade_argv(helm_bin: str, release: Release, kube_context: str) -> list[str]:
    """``helm upgrade --install`` with readiness wait and a deadline."""
    argv = [helm_bin, "upgrade", "--install", release.name, release.chart]
    if release.repo:
        argv += ["--repo", release.repo, "--version", str(release.version)]
    argv += ["--namespace", release.namespace, "--create-namespace", "--kube-context", kube_context]
    for values in release.values:
        argv += ["--values", str(values)]
    for item in release.sets:
        argv += ["--set", item]
    argv += ["--wait", "--timeout", release.timeout]
    if release.wait_for_jobs:
        argv.append("--wait-for-jobs")
    return argv


def inputs_hash(release: Release) -> str:
    """sha256 over the chart's files (local charts), the values files and the chart version."""
    digest = hashlib.sha256(f"{release.chart}\0{release.repo}\0{release.version}\0".encode())
    chart = release.local_chart()
    files = sorted(p for p in chart.rglob("*") if p.is_file()) if chart else []
    for path in (*files, *release.values):
        digest.update(str(path).encode() + b"\0" + Path(path).read_bytes() + b"\0")
    for item in release.sets:
        digest.update(item.encode() + b"\0")
    return digest.hexdigest()


def namespace_manifest(names: Sequence[str] = (NAMESPACE,)) -> str:
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in names]
    return yaml.safe_dump_all(docs, sort_keys=False)


def secret_values(secrets: Mapping[str, str], *, namespace: str = NAMESPACE) -> dict[str, dict[str, str]]:
    """The Secrets the charts reference (``existingSecret`` names), from the sandbox's generated secrets."""
    user, password = secrets["POSTGRES_USER"], secrets["POSTGRES_PASSWORD"]
    return {
        "mlops-postgres-credentials": {"username": user, "password": password},
        "mlops-platform-credentials": {
            "AWS_ACCESS_KEY_ID": secrets["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
        },
        "mlops-airflow-secrets": {
            "connection": f"postgresql+psycopg2://{user}:{password}@postgres.{namespace}.svc.cluster.local:5432/airflow",
            "fernet-key": secrets["AIRFLOW_FERNET_KEY"],
            "api-secret-key": secrets["AIRFLOW_API_SECRET_KEY"],
            "jwt-secret": secrets["AIRFLOW_JWT_SECRET"],
        },
        "mlops-airflow-users": {
            "passwords.json": json.dumps({secrets["AIRFLOW_USERNAME"]: secrets["AIRFLOW_PASSWORD"]}),
        },
    }


def secrets_manifest(secrets: Mapping[str, str] | None, *, namespace: str = NAMESPACE) -> str:
    """Secret manifests (``data``, base64); ``secrets=None`` shows every value as ``<redacted>`` (plans)."""
    if secrets is None:
        keys = secret_values({k: "x" for k in _SECRET_INPUTS}, namespace=namespace)
        values = {name: dict.fromkeys(data, REDACTED) for name, data in keys.items()}
        field_name, encode = "stringData", (lambda v: v)
    else:
        values = secret_values(secrets, namespace=namespace)
        field_name, encode = "data", (lambda v: base64.b64encode(v.encode()).decode())
    labels = {"app.kubernetes.io/part-of": "mlops-platform"}
    docs = [
        {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
         "metadata": {"name": name, "namespace": namespace, "labels": labels},
         field_name: {k: encode(v) for k, v in data.items()}}
        for name, data in values.items()
    ]  # fmt: skip
    return yaml.safe_dump_all(docs, sort_keys=False)


_SECRET_INPUTS = SECRET_KEYS  # what secret_values reads (sandbox.secrets generates them)
