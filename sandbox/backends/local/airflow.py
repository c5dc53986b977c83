"""Airflow 3: ``db migrate``, then api-server, scheduler, dag-processor and triggerer.

All four components share one environment (config by ``AIRFLOW__*`` variables): the same JWT
secret, API secret key, fernet key and execution API URL, the sandbox's own log-server ports,
and the platform settings the DAG's local runtime hands to the jobs.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

from sandbox import paths
from sandbox.backends.local import objectstore
from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.state import SandboxState
from sandbox.ports import LOOPBACK

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
# monitor/health names each component differently from its CLI command.
_HEALTH_KEYS = {"scheduler": "scheduler", "dag-processor": "dag_processor", "triggerer": "triggerer"}


def url(port: int) -> str:
    return f"http://{LOOPBACK}:{port}"


def health(port: int) -> dict[str, dict[str, object]]:
    """``GET /api/v2/monitor/health`` (no token needed)."""
    with urllib.request.urlopen(f"{url(port)}/api/v2/monitor/health", timeout=3) as resp:
        return json.loads(resp.read())


def component_healthy(component: str, port: int) -> bool:
    report = health(port)
    if component == "api-server":
        return report.get("metadatabase", {}).get("status") == "healthy"
    entry = report.get(_HEALTH_KEYS[component]) or {}
    return entry.get("status") == "healthy"


def token(port: int, username: str, password: str) -> str:
    """A JWT for the REST API from ``POST /auth/token``."""
    body = json.dumps({"username": username, "password": password}).encode()
    request = urllib.request.Request(
        f"{url(port)}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["access_token"]


def write_passwords_file(state: SandboxState, secrets: dict[str, str]) -> Path:
    path = state.airflow_home / "simple_auth_manager_passwords.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({secrets["AIRFLOW_USERNAME"]: secrets["AIRFLOW_PASSWORD"]}, handle)
    return path


def platform_env(
    state: SandboxState, env_dir: Path, ports: dict[str, int], secrets: dict[str, str]
) -> dict[str, str]:
    """What the DAG's local runtime and the jobs read (docs/architecture.md)."""
    pythonpath = [str(paths.JOBS_DIR)]
    return {
        "MLOPS_TASK_RUNTIME": "local",
        "MLOPS_SANDBOX_NAME": state.name,
        "MLOPS_FAULTS_FILE": str(state.faults_file),
        "MLOPS_RETRY_DELAY_SECONDS": "2",
        "MLOPS_PLATFORM_PYTHON": str(env_dir / "bin" / "python"),
        "MLFLOW_TRACKING_URI": f"http://{LOOPBACK}:{ports['mlflow']}",
        "AWS_ENDPOINT_URL_S3": objectstore.url(ports["s3"]),
        "MLFLOW_S3_ENDPOINT_URL": objectstore.url(ports["s3"]),
        "AWS_ACCESS_KEY_ID": secrets["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": secrets["AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": objectstore.REGION,
        "MLOPS_DATA_BUCKET": objectstore.DATA_BUCKET,
        "PYTHONPATH": os.pathsep.join(pythonpath),
    }


def airflow_env(
    state: SandboxState,
    env_dir: Path,
    ports: dict[str, int],
    secrets: dict[str, str],
    db_url: str,
    base_env: dict[str, str],
    *,
    parallelism: int = 4,
    dags_folder: Path | None = None,
) -> dict[str, str]:
    api = url(ports["airflow"])
    env = {
        **base_env,
        **platform_env(state, env_dir, ports, secrets),
        "AIRFLOW_HOME": str(state.airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or paths.DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # LocalExecutor pre-forks `parallelism` workers: keep it small on a laptop / CI box.
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__FERNET_KEY": secrets["AIRFLOW_FERNET_KEY"],
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{secrets['AIRFLOW_USERNAME']}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(
            state.airflow_home / "simple_auth_manager_passwords.json"
        ),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(ports["airflow"]),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": secrets["AIRFLOW_API_SECRET_KEY"],
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets["AIRFLOW_JWT_SECRET"],
        # Fixed defaults (8793/8794) would collide between two sandboxes.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["airflow-worker-logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["airflow-trigger-logs"]),
        # See DAG edits within seconds instead of the 5-minute production default.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{base_env.get('PATH', '/usr/bin:/bin')}",
    }
    return env


def migrate_spec(
    python: Path, state: SandboxState, env: dict[str, str], timeout: float, secrets: list[str]
) -> ServiceSpec:
    return ServiceSpec(
        name="airflow-migrate",
        argv=[str(python), "-m", "airflow", "db", "migrate"],
        env=env,
        log=state.log_file("airflow-migrate"),
        timeout=timeout,
        cwd=state.airflow_home,
        secrets=secrets,
    )


def component_spec(
    component: str,
    python: Path,
    state: SandboxState,
    env: dict[str, str],
    port: int,
    timeout: float,
    secrets: list[str],
) -> ServiceSpec:
    name = f"airflow-{component}"
    argv = [str(python), "-m", "airflow", component]
    if component in ("scheduler", "triggerer"):
        # Their log servers bind every interface (hard-coded in airflow.utils.serve_logs) and are
        # only needed across machines: here the api-server reads task logs from the shared folder.
        argv.append("--skip-serve-logs")
    return ServiceSpec(
        name=name,
        argv=argv,
        env=env,
        log=state.log_file(name),
        ready=lambda: component_healthy(component, port),
        timeout=timeout,
        cwd=state.airflow_home,
        port=port if component == "api-server" else None,
        url=url(port) if component == "api-server" else None,
        secrets=secrets,
    )
