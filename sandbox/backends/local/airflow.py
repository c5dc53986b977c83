"""Airflow 3 as ``charts/airflow`` configures it: ``db migrate``, then api-server, scheduler,
dag-processor and triggerer, all with one environment.

That environment is the chart's ``config:`` (as ``AIRFLOW__SECTION__KEY``), ``executor`` and ``env:``
(the DAG's deployment config), plus what only this backend can know: hosts, ports, paths, the
generated secrets and the task runtime (``environment``; the list is in docs/architecture.md).
The sandbox's cluster policy (``sandbox/platform/airflow_local_settings.py``) is installed in
``$AIRFLOW_HOME/config``, and the platform ConfigMap and Secret the local task runtime hands to the
jobs are written under the state folder (``write_platform_objects``).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

from sandbox.backends.local import jobserver, postgres, schemas
from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.errors import ConfigError
from sandbox.platform import airflow_local_settings
from sandbox.platform.config import service_url
from sandbox.ports import LOOPBACK
from sandbox.stack import USE_JOB_SCHEDULE_ENV

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# monitor/health names each component differently from its CLI command.
_HEALTH_KEYS = {"api-server": "metadatabase", "scheduler": "scheduler", "dag-processor": "dag_processor",
                "triggerer": "triggerer"}  # fmt: skip
AIRFLOW_DATABASE = "airflow"  # the database in the connection Secret both backends generate
LOCAL_PLATFORM_DIR_ENV = "MLOPS_LOCAL_PLATFORM_DIR"


def health(url: str) -> dict[str, dict[str, object]]:
    """``GET /api/v2/monitor/health`` (no token needed)."""
    with urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=3) as resp:
        return json.loads(resp.read())


def parsed(url: str, username: str, password: str) -> tuple[list[str], int] | None:
    """The DAG ids the REST API serves and the count of import errors, once the dag-processor has
    registered at least one DAG or import error; None before. The call logs in as the harness does."""
    body = json.dumps({"username": username, "password": password}).encode()
    login = urllib.request.Request(f"{url}/auth/token", data=body, method="POST",
                                   headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(login, timeout=3) as resp:
        auth = {"Authorization": f"Bearer {json.loads(resp.read())['access_token']}"}
    out = []
    for path in ("dags?limit=100", "importErrors?limit=1"):
        req = urllib.request.Request(f"{url}/api/v2/{path}", headers=auth)
        with urllib.request.urlopen(req, timeout=3) as resp:
            out.append(json.loads(resp.read()))
    dags, errors = [d["dag_id"] for d in out[0]["dags"]], int(out[1]["total_entries"])
    return (dags, errors) if dags or errors else None


def component_status(report: dict[str, dict[str, object]], component: str) -> tuple[bool, str]:
    key = _HEALTH_KEYS[component]
    status = (report.get(key) or {}).get("status")
    return status == "healthy", f"{key}: {status}"


def passwords_file(ctx: StackContext) -> Path:
    return ctx.state.airflow_home / "simple_auth_manager_passwords.json"


def write_passwords_file(ctx: StackContext) -> Path:
    """The simple auth manager's passwords for the chart's users (the sandbox's generated one)."""
    user = ctx.secrets["AIRFLOW_USERNAME"]
    users = ctx.config.airflow.users()
    if user not in users:
        raise ConfigError(
            f"{ctx.config.charts_dir / 'airflow' / 'values.yaml'} `config.core.simple_auth_manager_users` "
            f"({', '.join(users) or 'empty'}) lacks {user!r}, the user both sandbox backends log in as.",
            f"Keep `{user}:admin` in that list (the password is generated per sandbox).",
        )
    path = passwords_file(ctx)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({user: ctx.secrets["AIRFLOW_PASSWORD"]}, handle)
    return path


def install_cluster_policy(ctx: StackContext) -> Path:
    """``$AIRFLOW_HOME/config/airflow_local_settings.py``: where Airflow looks for a cluster policy."""
    target = ctx.state.airflow_home / "config" / "airflow_local_settings.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(airflow_local_settings.__file__, target)
    return target


def platform_objects(ctx: StackContext) -> tuple[dict[str, str], dict[str, str]]:
    """The platform ConfigMap's data (service URLs pointed at this sandbox) and the credentials
    Secret's data, as a pipeline pod gets them."""
    pod = ctx.config.pod_platform()
    configmap = dict(pod.configmap)
    configmap["MLFLOW_TRACKING_URI"] = service_url(configmap["MLFLOW_TRACKING_URI"], ctx.address("mlflow"))
    configmap["AWS_ENDPOINT_URL_S3"] = service_url(configmap["AWS_ENDPOINT_URL_S3"], ctx.address("s3"))
    access_key, secret_key = pod.secret_keys
    secret = {access_key: ctx.secrets["AWS_ACCESS_KEY_ID"], secret_key: ctx.secrets["AWS_SECRET_ACCESS_KEY"]}
    return configmap, secret


def write_platform_objects(ctx: StackContext) -> None:
    """``<platform dir>/configmaps/<name>.json`` and ``secrets/<name>.json`` (0600): the local task
    runtime's stand-in for the Kubernetes API (dags/mlops_pipeline/jobenv.py reads them)."""
    pod = ctx.config.pod_platform()
    configmap, secret = platform_objects(ctx)
    root = ctx.state.platform_dir
    for folder, name, data, mode in (
        ("configmaps", pod.configmap_name, configmap, 0o644),
        ("secrets", pod.secret_name, secret, 0o600),
    ):
        (root / folder).mkdir(parents=True, exist_ok=True)
        tmp = root / folder / f".{name}.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        tmp.replace(root / folder / f"{name}.json")
    os.chmod(root / "secrets", 0o700)


def environment(ctx: StackContext, component: str | None = None) -> dict[str, str]:
    """An Airflow process's environment: the chart's settings (``config:`` for all; the custom ``env``
    for a ``component``, none for the migration, as ``migrateDatabaseJob.applyCustomEnv: false``
    deploys it), then what this backend sets."""
    api = ctx.url("airflow")
    s = ctx.secrets
    return {
        **ctx.process_env(),
        **ctx.config.airflow.config_env(),
        **(ctx.config.airflow.component_env(component) if component else {}),
        # --- set by the local backend (docs/architecture.md, "Set by the local backend") ---
        # The task runtime (MLOPS_TASK_RUNTIME, and what it needs), and the platform ConfigMap and Secret
        # that stand in for the Kubernetes API in both runtimes.
        **ctx.runtime.airflow_env(ctx.jobs_folder, ctx.state.marker),
        **(jobserver.airflow_env(ctx) if ctx.warm_jobs else {}),
        LOCAL_PLATFORM_DIR_ENV: str(ctx.state.platform_dir),
        "AIRFLOW_HOME": str(ctx.state.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ctx.dags_folder),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(ctx)),
        "AIRFLOW__CORE__FERNET_KEY": s["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__API__SECRET_KEY": s["AIRFLOW_API_SECRET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": s["AIRFLOW_JWT_SECRET"],
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.database_url(ctx, AIRFLOW_DATABASE),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(ctx.ports["airflow"]),
        "AIRFLOW__API__BASE_URL": api,
        # Fixed defaults (8793/8794) would collide between two sandboxes.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ctx.ports["airflow-worker-logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ctx.ports["airflow-trigger-logs"]),
        # Its health server binds every interface on a fixed port (8974): two sandboxes would collide.
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # A scenario with `trigger: schedule` runs the scheduler with the DAGs' schedules on for a while.
        **({USE_JOB_SCHEDULE_ENV: "True"} if component == "scheduler" and ctx.model.schedules else {}),
    }


def _prepare_home(ctx: StackContext) -> None:
    ctx.state.airflow_home.mkdir(parents=True, exist_ok=True)
    write_passwords_file(ctx)
    install_cluster_policy(ctx)
    write_platform_objects(ctx)


def _secret_values(ctx: StackContext) -> list[str]:
    return [ctx.secrets[k] for k in ("POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET",
                                     "AIRFLOW_API_SECRET_KEY", "AIRFLOW_PASSWORD")]  # fmt: skip


class Migrate(Service):
    """``airflow db migrate``: skipped when the schema is there (a restart, or the schema cache)."""

    name = "airflow-migrate"
    after = ("postgres",)
    oneshot = True

    def done(self, ctx: StackContext) -> str | None:
        return "schema already migrated" if ctx.schema_ready else None

    def prepare(self, ctx: StackContext) -> None:
        _prepare_home(ctx)

    def spec(self, ctx: StackContext) -> ServiceSpec:
        return ServiceSpec(
            name=self.name,
            argv=[str(ctx.python), "-m", "airflow", "db", "migrate"],
            env=environment(ctx),
            log=ctx.state.log_file(self.name),
            timeout=self.timeout(ctx),
            cwd=ctx.state.airflow_home,
            secrets=_secret_values(ctx),
            oneshot=True,
        )

    def provision(self, ctx: StackContext) -> str:
        schemas.save_if_pristine(ctx, AIRFLOW_DATABASE)
        return "done"


class Component(Service):
    """One long-running Airflow component."""

    after = ("airflow-migrate",)

    def __init__(self, component: str) -> None:
        self.component = component
        self.name = f"airflow-{component}"
        self.port_key = "airflow" if component == "api-server" else None
        # Last of Airflow: the other components talk to its execution API while they shut down.
        self.stop_stage = 1 if component == "api-server" else 0
        # The triggerer's runner subprocess lingers ~10 s after SIGTERM; a sandbox has nothing to
        # lose by cutting that short.
        self.stop_grace = {"triggerer": 2.0, "api-server": 3.0}.get(component, 5.0)

    def prepare(self, ctx: StackContext) -> None:
        _prepare_home(ctx)

    def spec(self, ctx: StackContext) -> ServiceSpec:
        argv = [str(ctx.python), "-m", "airflow", self.component]
        if self.component in ("scheduler", "triggerer"):
            # Their log servers bind every interface (hard-coded in airflow.utils.serve_logs) and are
            # only needed across machines: here the api-server reads task logs from the shared folder.
            argv.append("--skip-serve-logs")
        url = ctx.url("airflow")
        api = self.component == "api-server"
        return ServiceSpec(
            name=self.name,
            argv=argv,
            env=environment(ctx, self.component),
            log=ctx.state.log_file(self.name),
            ready=lambda: component_status(health(url), self.component)[0] and self._ready_for_work(ctx),
            timeout=self.timeout(ctx),
            cwd=ctx.state.airflow_home,
            port=ctx.ports["airflow"] if api else None,
            url=url if api else None,
            secrets=_secret_values(ctx),
        )

    def _ready_for_work(self, ctx: StackContext) -> bool:
        """Ready for work: the api-server once its execution API has built its routes (a task's first
        call does not wait for them), the dag-processor once the DAG folder's first parse is registered
        (a scenario triggered right after ``up`` finds its DAG; an import error is the scenario's to
        show). The scheduler's health is its heartbeat; the triggerer needs nothing more."""
        if self.component == "api-server":
            from sandbox.clients.airflow import execution_api_ready  # the REST client: not for every command

            return execution_api_ready(ctx.url("airflow"))
        if self.component != "dag-processor" or not any(ctx.dags_folder.glob("*.py")):
            return True
        user, password = ctx.secrets["AIRFLOW_USERNAME"], ctx.secrets["AIRFLOW_PASSWORD"]
        return parsed(ctx.url("airflow"), user, password) is not None

    def provision(self, ctx: StackContext) -> str:
        if self.component != "dag-processor" or not any(ctx.dags_folder.glob("*.py")):
            return ""
        found = parsed(ctx.url("airflow"), ctx.secrets["AIRFLOW_USERNAME"], ctx.secrets["AIRFLOW_PASSWORD"])
        dags, errors = found or ([], 0)
        detail = f"DAG(s) registered: {', '.join(dags) or 'none'}"
        return detail + (f"; {errors} import error(s): the first scenario shows them" if errors else "")

    def health(self, ctx: StackContext, probes: Probes) -> tuple[bool, str]:
        report = probes.once("airflow-health", lambda: health(ctx.url("airflow")))
        return component_status(report, self.component)


def components() -> list[Component]:
    return [Component(c) for c in COMPONENTS]
