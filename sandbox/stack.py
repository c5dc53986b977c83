"""The backend contract: what every way of running the platform must offer.

The pytest plugin, the scenario runner and the CLI only talk to this protocol, so the same
scenarios run unchanged on the local backend and on kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, get_args, runtime_checkable

from sandbox.errors import ConfigError

# What a backend offers scenarios beyond the basics: armed task faults (the sandbox's cluster
# policy is loaded), service faults (``ServiceFaults`` below), an NVIDIA GPU for the train step, task
# pods on a real Kubernetes API, the DAGs' own schedules for a while (``Schedules`` below).
Capability = Literal["faults", "service_faults", "gpu", "kubernetes", "schedules"]

# The platform's services by the names both backends use (the local backend's processes; on kind the
# workload each maps to). Scenario files name them in service faults.
ServiceName = Literal[
    "postgres", "s3", "mlflow",
    "airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
]  # fmt: skip
SERVICE_NAMES: tuple[str, ...] = get_args(ServiceName)
# stop: orderly shutdown (stop signal, grace period); kill: SIGKILL, no shutdown; pause: SIGSTOP (the
# port still accepts connections, nothing answers); unavailable: connections refused, the service's data
# kept. Every fault is undone by ``start`` (stop, kill, unavailable) or ``resume`` (pause).
FaultAction = Literal["stop", "kill", "pause", "unavailable"]
FAULT_ACTIONS: tuple[str, ...] = get_args(FaultAction)


@dataclass(frozen=True)
class Credentials:
    """Secrets generated per sandbox (``sandbox.secrets``). Never printed: see ``secrets()``."""

    airflow_username: str
    airflow_password: str
    s3_access_key: str
    s3_secret_key: str
    postgres_user: str = "sandbox"
    postgres_password: str = ""
    # Every generated value output must mask (passwords, keys, JWT/API/fernet secrets).
    redacted: tuple[str, ...] = ()

    def secrets(self) -> list[str]:
        """Values a report or log must never show."""
        values = {*self.redacted, self.airflow_password, self.s3_secret_key, self.postgres_password}
        return sorted(v for v in values if v)


@dataclass(frozen=True)
class Endpoints:
    """How the harness reaches a running platform: what every backend provides (loopback URLs)."""

    airflow_url: str
    mlflow_url: str
    s3_url: str
    data_bucket: str
    # MLflow's ``--artifacts-destination`` (``s3://bucket[/prefix]``): where proxied artifacts land.
    artifacts_destination: str
    credentials_file: Path | None = None
    # The sandbox's state folder (logs, generated secrets); None when a backend keeps none.
    state_dir: Path | None = None

    @property
    def artifacts_bucket(self) -> str:
        return self.artifacts_destination.removeprefix("s3://").split("/", 1)[0]

    @property
    def artifacts_prefix(self) -> str:
        """The key prefix under the bucket ('' or ending in '/')."""
        rest = self.artifacts_destination.removeprefix("s3://").partition("/")[2].strip("/")
        return f"{rest}/" if rest else ""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    healthy: bool
    detail: str = ""
    pid: int | None = None
    url: str | None = None


@dataclass
class UpResult:
    endpoints: Endpoints
    reused: bool
    seconds: float
    services: list[ServiceStatus] = field(default_factory=list)


@runtime_checkable
class Backend(Protocol):
    """One way of running the platform: up, down, status, endpoints, diagnostics."""

    name: str
    sandbox_name: str

    def up(self) -> UpResult:
        """Start everything (or reuse a healthy stack) and return its endpoints."""
        ...

    def down(self, *, purge: bool = False) -> None:
        """Stop everything this sandbox started; ``purge`` also deletes its state."""
        ...

    def status(self) -> list[ServiceStatus]: ...

    def exists(self) -> bool:
        """Whether this sandbox was ever created and not purged (its state folder is there)."""
        ...

    @property
    def endpoints(self) -> Endpoints:
        """Endpoints of the running stack; raises ServiceError when it is not up."""
        ...

    @property
    def credentials(self) -> Credentials: ...

    def capabilities(self) -> frozenset[Capability]:
        """What scenarios may need from this backend, e.g. ``{"faults", "gpu"}``."""
        ...

    def diagnostics(self, dest: Path) -> Path:
        """Write service logs and platform state under ``dest``; return the bundle folder."""
        ...


class ServiceControl(Protocol):
    """One platform service under a fault: what a scenario may do to it, and how it is undone."""

    name: str
    # The actions this backend can inject on this service (kind cannot SIGSTOP a container).
    actions: frozenset[str]

    def inject(self, action: str) -> str:
        """Apply ``action`` (one of ``actions``); returns what was done, for the timeline."""
        ...

    def restore(self, action: str) -> str:
        """Undo ``action``: resume a paused service, start a stopped one and wait until it is healthy."""
        ...


@runtime_checkable
class ServiceFaults(Protocol):
    """The optional capability ``service_faults``: stop, kill, pause or cut off a platform service."""

    def service_control(self, name: str) -> ServiceControl:
        """The control of one service (``SERVICE_NAMES``); ConfigError for an unknown name."""
        ...

    def revive(self, skip: Iterable[str] = ()) -> list[str]:
        """Start again every service (but those in ``skip``: under a fault) whose process exited, as a
        Kubernetes restart policy would; returns their names (none on kind: the kubelet does it)."""
        ...


# Airflow's setting that Schedules turns on for the scheduler alone, as an environment variable (it
# overrides the overlay's airflow.cfg value in both backends).
USE_JOB_SCHEDULE_ENV = "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE"


@runtime_checkable
class Schedules(Protocol):
    """The optional capability ``schedules``: the scheduler runs the DAGs' own schedules (as production
    does) for a scenario with ``trigger: schedule``. A sandbox keeps them off otherwise (``[scheduler]
    use_job_schedule: false`` in the Airflow values overlay): it runs only what is triggered."""

    def set_schedules(self, on: bool) -> str:
        """Restart the scheduler with schedules on (or back off) and wait until it is ready; returns
        what was done, for the timeline. Only between DAG runs: a restart ends the tasks it runs."""
        ...


BackendFactory = Callable[..., Backend]
_BACKENDS: dict[str, str] = {
    "local": "sandbox.backends.local.backend:LocalBackend",
    "kind": "sandbox.backends.kind.backend:KindBackend",
}


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def get_backend(kind: str, sandbox_name: str = "default", **options: object) -> Backend:
    """Instantiate a backend by name (``local`` or ``kind``)."""
    if kind not in _BACKENDS:
        raise ConfigError(
            f"Unknown backend {kind!r}.", f"Use one of: {', '.join(backend_names())} (--backend NAME)."
        )
    module_name, _, attr = _BACKENDS[kind].partition(":")
    import importlib

    factory: BackendFactory = getattr(importlib.import_module(module_name), attr)
    return factory(sandbox_name=sandbox_name, **options)
