"""The harness's reading of the values (sandbox/platform) against what the real helm renders.

The local backend starts its processes from ``PlatformConfig`` without helm; if a template and that
reading drift apart (a new ConfigMap key, another MLflow flag, a bucket), these fail. The official
Airflow chart cannot be pulled here: its ``config:`` mapping is checked against the values only
(tests/local/test_settings.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.backends.local import mlflow as local_mlflow
from sandbox.paths import CHARTS_DIR
from sandbox.platform.config import NAMESPACE, load_platform_config
from tests.charts.conftest import VALUE_SETS, values_files

Render = Callable[[str, str], list[dict[str, Any]]]
SETS = [*VALUE_SETS, "local"]


def _overlay(value_set: str) -> str | None:
    return None if value_set == "production" else value_set


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (obj,) = [o for o in objects if o["kind"] == kind]
    return obj


def _mlflow_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("value_set", SETS)
def test_configmap_is_what_the_reader_derives(render: Render, value_set: str) -> None:
    pod = load_platform_config(_overlay(value_set)).pod_platform()
    cm = _one(render("platform", value_set), "ConfigMap")
    assert cm["metadata"]["name"] == pod.configmap_name
    assert cm["data"] == pod.configmap
    assert cm["metadata"]["annotations"]["mlops.io/credentials-secret"] == pod.secret_name


@pytest.mark.parametrize("value_set", SETS)
def test_mlflow_flags_are_what_the_reader_derives(render: Render, value_set: str) -> None:
    config = load_platform_config(_overlay(value_set))
    container = _mlflow_container(render("mlflow", value_set))
    assert container["args"] == config.mlflow.server_args(host="0.0.0.0", port=5000, namespace=NAMESPACE)


def test_mlflow_flags_with_the_artifact_proxy_off(helm_bin: Path, tmp_path: Path) -> None:
    """The other branch of ``artifacts.serveArtifacts``, rendered from a scratch copy of the values."""
    values = yaml.safe_load((CHARTS_DIR / "mlflow" / "values.yaml").read_text())
    values["artifacts"]["serveArtifacts"] = False
    charts = tmp_path / "charts"
    for chart in ("postgres", "s3", "mlflow", "platform", "airflow"):
        (charts / chart).mkdir(parents=True)
        for name in ("values.yaml", "Chart.yaml"):  # the airflow folder has no Chart.yaml (upstream chart)
            if (CHARTS_DIR / chart / name).is_file():
                (charts / chart / name).write_text((CHARTS_DIR / chart / name).read_text())
    (charts / "overlay-keys.yaml").write_text((CHARTS_DIR / "overlay-keys.yaml").read_text())
    (charts / "mlflow" / "values.yaml").write_text(yaml.safe_dump(values))
    argv = [str(helm_bin), "template", "mlflow", str(CHARTS_DIR / "mlflow"), "--namespace", NAMESPACE,
            "--values", str(charts / "mlflow" / "values.yaml")]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    container = _mlflow_container([d for d in yaml.safe_load_all(out.stdout) if d])
    config = load_platform_config(None, charts)
    assert "--no-serve-artifacts" in container["args"]
    assert container["args"] == config.mlflow.server_args(host="0.0.0.0", port=5000)


@pytest.mark.parametrize("value_set", SETS)
def test_mlflow_environment_literals_are_what_the_local_backend_sets(render: Render, value_set: str) -> None:
    config = load_platform_config(_overlay(value_set))
    env = {e["name"]: e for e in _mlflow_container(render("mlflow", value_set))["env"]}
    literals = {name: e["value"] for name, e in env.items() if "value" in e}
    assert literals["AWS_DEFAULT_REGION"] == config.platform.region
    for name, value in local_mlflow.TEMPLATE_ENV.items():
        assert literals.get(name) == value, name
    # Container paths, the $(VAR)-assembled store URI and the S3 address are the backend's own
    # (docs/architecture.md); every other literal must be one the local backend repeats.
    own = {"HOME", "MLFLOW_TMP_DIR", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_S3_ENDPOINT_URL"}
    assert set(literals) - own == {"AWS_DEFAULT_REGION", *local_mlflow.TEMPLATE_ENV}
    assert literals["MLFLOW_S3_ENDPOINT_URL"] == config.mlflow.artifacts.s3_endpoint_url
    refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env.items() if "valueFrom" in e}
    art = config.mlflow.artifacts
    assert refs["AWS_ACCESS_KEY_ID"] == {"name": art.existing_secret, "key": art.access_key_key}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": art.existing_secret, "key": art.secret_key_key}


@pytest.mark.parametrize("value_set", SETS)
def test_buckets_and_the_s3_identity_are_what_the_reader_derives(render: Render, value_set: str) -> None:
    config = load_platform_config(_overlay(value_set))
    objects = render("s3", value_set)
    job = _one(objects, "Job")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in job["env"]}["BUCKETS"] == " ".join(config.buckets)
    assert config.artifacts_bucket in config.buckets and config.data_bucket in config.buckets
    init = _one(objects, "StatefulSet")["spec"]["template"]["spec"]["initContainers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in init["env"]}
    pod = config.pod_platform()
    assert refs == {
        "S3_ACCESS_KEY": {"name": pod.secret_name, "key": pod.secret_keys[0]},
        "S3_SECRET_KEY": {"name": pod.secret_name, "key": pod.secret_keys[1]},
    }


def test_every_chart_has_a_local_overlay_that_the_reader_accepts() -> None:
    for chart in ("postgres", "s3", "mlflow", "platform", "airflow"):
        assert values_files(chart, "local")[-1].is_file(), chart
    load_platform_config("local")
