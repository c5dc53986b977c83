"""What every local service module provides, and the facts they share while a stack starts.

A ``Service`` is one supervised process (or a one-shot command such as ``airflow db migrate``): its
command (``spec``), what it needs first (``after``), what to do once it is ready (``provision``),
and its health. The backend's ``up``, ``status`` and ``down`` are loops over the services, so a
later change can start, stop, restart or probe one of them by name.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.runtime import TaskRuntime
from sandbox.backends.local.state import SandboxState, StateModel
from sandbox.platform.config import PlatformConfig
from sandbox.ports import LOOPBACK, http_url

if TYPE_CHECKING:
    from sandbox.backends.local.postgres import PgLayout

# Variables a service may inherit from the harness; everything else (VIRTUAL_ENV, PYTHONPATH, a user's
# MLFLOW_TRACKING_URI, proxies) would leak the caller's setup into the platform.
PASS_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE",
            "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")  # fmt: skip


@dataclass
class StackContext:
    """One sandbox's facts for its services: configuration (from the charts), ports, paths, secrets.

    ``pg``, ``data_dir_note``, ``created_databases`` and ``schema_ready`` are hand-offs within one
    start (Postgres provisions the databases; the migration and the schema cache read what it found).
    """

    state: SandboxState
    model: StateModel
    config: PlatformConfig
    env_dir: Path
    secrets: dict[str, str]
    timeouts: dict[str, float]
    dags_folder: Path
    jobs_folder: Path
    runtime: TaskRuntime = field(default_factory=TaskRuntime)
    warm_jobs: bool = False  # the job-server runs: Airflow hands its jobs to it
    pg: PgLayout | None = None
    data_dir_note: str = ""
    created_databases: set[str] = field(default_factory=set)
    schema_ready: bool = False

    @property
    def ports(self) -> dict[str, int]:
        return self.model.ports

    @property
    def python(self) -> Path:
        return self.env_dir / "bin" / "python"

    def url(self, port_key: str) -> str:
        """The loopback URL of a service (``mlflow``, ``s3``, ``airflow``)."""
        return http_url(self.ports[port_key])

    def address(self, port_key: str) -> str:
        return f"{LOOPBACK}:{self.ports[port_key]}"

    def pristine(self) -> bool:
        """Whether this start created every database (nothing in them but what the start puts)."""
        return self.created_databases >= set(self.config.postgres.databases)

    def process_env(self) -> dict[str, str]:
        """What every service process gets besides its own settings (docs/architecture.md)."""
        env = {k: os.environ[k] for k in PASS_ENV if k in os.environ}
        env["PATH"] = f"{self.env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        env["NO_PROXY"] = env["no_proxy"] = f"{LOOPBACK},localhost"
        env["PYTHONUNBUFFERED"] = "1"
        return env


class Probes(dict[str, Any]):
    """Answers shared by several health checks within one status pass (one Airflow health call)."""

    def once(self, key: str, fetch: Callable[[], Any]) -> Any:
        if key not in self:
            self[key] = fetch()
        return self[key]


class Service:
    """One process of the local stack. Subclasses set ``name`` and implement ``spec``/``health``."""

    name: str = ""
    after: tuple[str, ...] = ()  # services that must be ready before this one starts
    oneshot: bool = False  # a command that must exit 0 (ready = done), not a server
    stop_stage: int = 0  # 0 stops first: dependants before what they depend on
    stop_signal: int = signal.SIGTERM
    stop_grace: float = 10.0  # seconds before the rest of its tree is killed
    port_key: str | None = None  # its key in the sandbox's ports (None: no port of its own)

    def done(self, ctx: StackContext) -> str | None:
        """Why there is nothing to run this time (a one-shot whose work is done), else None."""
        return None

    def prepare(self, ctx: StackContext) -> None:
        """Work before the process starts (files it reads, a data dir)."""

    def spec(self, ctx: StackContext) -> ServiceSpec:
        raise NotImplementedError

    def provision(self, ctx: StackContext) -> str:
        """Work once it is ready (buckets, databases); returns the progress detail."""
        return ""

    def health(self, ctx: StackContext, probes: Probes) -> tuple[bool, str]:
        """(healthy, detail) of the running process; only called while its process is alive."""
        return True, ""

    def timeout(self, ctx: StackContext) -> float:
        return ctx.timeouts[self.name]
