"""What the local backend runs comes from the charts' values, except a documented list.

No processes: the settings are derived with the backend's own code for a made-up sandbox (ports,
paths, generated secrets), then every setting is either equal to what the values files say or named
in docs/architecture.md, "Set by the local backend".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandbox import paths
from sandbox.backends.local import airflow, mlflow
from sandbox.backends.local.backend import PORT_KEYS
from sandbox.backends.local.runtime import TaskRuntime
from sandbox.backends.local.service import StackContext
from sandbox.backends.local.state import SandboxState, StateModel
from sandbox.platform.config import PlatformConfig, load_platform_config
from sandbox.secrets import generate

DOC = paths.PROJECT_ROOT / "docs" / "architecture.md"


def documented(where: str = "") -> set[str]:
    """Names in the table under "### Set by the local backend" whose `where` column names ``where``
    (or "all"); every name when ``where`` is empty."""
    text = DOC.read_text()
    section = text.split("### Set by the local backend", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \|", section, re.M)
    assert rows, "the documented list is missing from docs/architecture.md"
    return {name for name, places in rows if not where or where in places or places.strip() == "all"}


# Both task runtimes of the local backend; docker's engine is made up (nothing here talks to it).
RUNTIMES = {
    "local": TaskRuntime(),
    "docker": TaskRuntime("docker", "mlops-jobs:0123456789ab", "/usr/bin/docker", "unix:///run/docker.sock"),
}


def _ctx(tmp_path: Path, runtime: TaskRuntime) -> StackContext:
    config = load_platform_config("local")
    ports = {k: 20000 + i for i, k in enumerate(PORT_KEYS)}
    state = SandboxState("settings", tmp_path)
    return StackContext(
        state=state, model=StateModel(name="settings", ports=ports), config=config, env_dir=tmp_path / "env",
        secrets=generate(), timeouts={}, dags_folder=paths.DAGS_DIR, jobs_folder=paths.JOBS_DIR,
        runtime=runtime, warm_jobs=runtime.name == "local",  # as the backend has it by default
    )  # fmt: skip


@pytest.fixture(params=list(RUNTIMES))
def ctx(tmp_path: Path, request: pytest.FixtureRequest) -> StackContext:
    return _ctx(tmp_path, RUNTIMES[request.param])


def undocumented(settings: dict[str, str], from_values: dict[str, str], where: str) -> dict[str, str]:
    """Settings that differ from (or are absent in) the values and are not documented for ``where``."""
    allowed = documented(where)
    return {k: v for k, v in settings.items() if from_values.get(k) != v and k not in allowed}


@pytest.mark.parametrize("component", airflow.COMPONENTS)
def test_airflow_environment_is_the_charts_config_and_env_plus_the_documented_list(
    ctx: StackContext, component: str
) -> None:
    a = ctx.config.airflow
    from_values = {**a.config_env(), **a.component_env(component)}
    env = airflow.environment(ctx, component)
    assert undocumented(env, from_values, "Airflow") == {}
    # Every value setting reaches the processes, unless the backend overrides it on purpose (documented).
    dropped = {k for k in from_values if k not in env}
    overridden = {k for k in from_values if k in env and env[k] != from_values[k]}
    assert dropped == set()
    assert overridden <= documented("Airflow"), overridden
    expected = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"}
    if "MLOPS_TASK_RUNTIME" in from_values:  # the components that parse the DAG carry the runtime
        expected.add("MLOPS_TASK_RUNTIME")
        if ctx.runtime.name == "docker":  # the job image's content-hash tag
            expected.add("MLOPS_JOB_IMAGE")
    assert overridden == expected


def test_the_components_that_parse_the_dag_share_one_deployment_config() -> None:
    """The dag-processor parses the DAG, the scheduler's LocalExecutor runs its tasks: with different
    deployment configs they would build different tasks (the chart sets one list on both)."""
    for overlay in (None, "local"):
        a = load_platform_config(overlay).airflow
        assert a.component_env("dag-processor") == a.component_env("scheduler"), overlay
        assert a.component_env("scheduler")["MLOPS_TASK_RUNTIME"] == "kubernetes", overlay


def _flags(args: list[str]) -> dict[str, str]:
    return dict(tuple(a.split("=", 1)) if "=" in a else (a, "") for a in args)


def test_mlflow_server_runs_the_charts_flags_except_host_and_port(ctx: StackContext) -> None:
    chart = _flags(ctx.config.mlflow.server_args(host="0.0.0.0", port=5000))  # what the Deployment passes
    local = _flags(mlflow.server_args(ctx))
    assert set(local) == set(chart)
    assert undocumented(local, chart, "MLflow") == {}
    assert {k for k in local if local[k] != chart[k]} == {"--host", "--port"}


def test_mlflow_server_environment_is_documented_or_from_values(ctx: StackContext) -> None:
    from_values = {"AWS_DEFAULT_REGION": ctx.config.platform.region, **mlflow.TEMPLATE_ENV}
    assert undocumented(mlflow.server_env(ctx), from_values, "MLflow") == {}


def test_jobs_platform_configmap_and_secret(ctx: StackContext) -> None:
    pod = ctx.config.pod_platform()
    configmap, secret = airflow.platform_objects(ctx)
    assert set(configmap) == set(pod.configmap)
    assert undocumented(configmap, pod.configmap, "jobs' ConfigMap") == {}
    assert configmap["MLFLOW_TRACKING_URI"] == ctx.url("mlflow")
    assert configmap["AWS_ENDPOINT_URL_S3"] == ctx.url("s3")
    assert set(secret) == set(pod.secret_keys)
    assert undocumented(secret, {}, "jobs' Secret") == {}  # generated values only


def test_documented_list_has_no_stale_entries(tmp_path: Path) -> None:
    """Each documented name is really set by the backend somewhere (the list stays honest)."""
    ctx = _ctx(tmp_path, RUNTIMES["local"])
    configmap, secret = airflow.platform_objects(ctx)
    airflow_env = {k for r in RUNTIMES.values() for c in airflow.COMPONENTS
                   for k in airflow.environment(_ctx(tmp_path, r), c)}  # fmt: skip
    set_anywhere = {*airflow_env, *_flags(mlflow.server_args(ctx)), *mlflow.server_env(ctx),
                    *configmap, *secret}  # fmt: skip
    passed_through = {"HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE",
                      "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"}  # fmt: skip
    assert documented() - set_anywhere <= passed_through


def test_local_overlay_keeps_every_production_deployment_setting() -> None:
    """values-local.yaml only adds to production's deployment config (its global `env` comes first, each
    component's own list after it), never drops or changes an entry."""
    production = load_platform_config(None).airflow.deployment_env()
    local = load_platform_config("local").airflow.deployment_env()
    missing = {k: v for k, v in production.items() if local.get(k) != v}
    assert missing == {}, (
        f"charts/airflow/values-local.yaml lost or changed production's deployment config: {missing}"
    )


def test_local_config_is_production_plus_the_overlay() -> None:
    production, local = load_platform_config(None), load_platform_config("local")
    assert isinstance(local, PlatformConfig)
    assert local.pod_platform() == production.pod_platform()
    assert local.buckets == production.buckets
    assert local.mlflow.artifacts == production.mlflow.artifacts
    assert local.mlflow.workers == 1 and production.mlflow.workers == 2
