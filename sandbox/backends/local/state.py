"""A local sandbox's state folder: ``state.json`` and the folders its services use.

Layout of ``.sandbox/NAME/``::

    state.json      ports, recorded processes (pid + create time + cmdline), env used
    secrets.env     generated passwords and keys, mode 0600, never printed (sandbox.secrets)
    logs/SVC.log    one log per service
    airflow/        AIRFLOW_HOME (config-by-env, passwords file, cluster policy, task logs)
    platform/       the platform ConfigMap and Secret for the local task runtime (Secret mode 0600)
    postgres/       the data dir (or a pointer to it when running as root)
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ValidationError

from sandbox import paths
from sandbox.errors import SandboxError
from sandbox.locks import file_lock

STATE_VERSION = 1


class StateError(SandboxError):
    """The state folder of a sandbox cannot be read."""


class ProcessRecord(BaseModel):
    """Enough to find a process again and to be sure it is still the one we started."""

    pid: int
    create_time: float
    cmdline: list[str]
    exe: str = ""
    port: int | None = None
    url: str | None = None


class StateModel(BaseModel):
    version: int = STATE_VERSION
    name: str
    backend: str = "local"
    platform_env: str = ""
    ports: dict[str, int] = {}
    services: dict[str, ProcessRecord] = {}
    postgres_data: str = ""
    # Name of the platform env whose Airflow schema the database holds ("" = not migrated yet).
    schema_env: str = ""
    # Hash of the effective configuration the services were started with: a reused stack must run
    # what the charts say now, so `up` restarts one whose configuration changed.
    config_hash: str = ""
    # The docker task runtime's engine (DOCKER_HOST), "" for the local runtime: where `down` removes job
    # containers that a killed worker left running.
    docker_host: str = ""
    # The scheduler runs the DAGs' own schedules (a `trigger: schedule` scenario, until it ends; `up`
    # turns them off again after an interrupted one).
    schedules: bool = False


class SandboxState:
    """Reads and writes one sandbox's state folder."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = name
        self.dir = (root or paths.state_root()) / name
        self.state_file = self.dir / "state.json"
        self.logs_dir = self.dir / "logs"
        self.airflow_home = self.dir / "airflow"
        self.platform_dir = self.dir / "platform"

    # -- identity ---------------------------------------------------------------------------
    @property
    def marker(self) -> str:
        """Value of MLOPS_SANDBOX_ID in every process of this sandbox (used to reap orphans)."""
        return str(self.dir.resolve())

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def ensure_dirs(self) -> None:
        for folder in (self.dir, self.logs_dir, self.airflow_home):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)

    # -- lock -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Serialise up/down of the same sandbox across processes."""
        with file_lock(self.dir.parent / f".{self.name}.lock"):
            yield

    # -- state.json -------------------------------------------------------------------------
    def _corrupt(self, why: str) -> StateError:
        return StateError(
            f"The state of sandbox {self.name!r} in {self.dir} is unreadable ({why}).",
            f"Run `sandbox down --name {self.name} --purge` to stop whatever it started and delete the "
            f"folder, then `sandbox up --name {self.name}` again (or remove {self.dir} by hand).",
        )

    def load(self) -> StateModel | None:
        """The saved state, None when there is none; StateError when it is corrupt."""
        if self.dir.exists() and not self.dir.is_dir():
            raise self._corrupt("it is not a folder")
        if not self.state_file.exists():
            return None
        try:
            model = StateModel.model_validate_json(self.state_file.read_text())
        except (ValidationError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise self._corrupt(first[:160]) from exc
        if model.version != STATE_VERSION:
            raise self._corrupt(f"state version {model.version}, expected {STATE_VERSION}")
        return model

    def save(self, model: StateModel) -> None:
        """Write atomically (temp file + rename) so a kill never leaves half a JSON file."""
        self.ensure_dirs()
        tmp = self.state_file.with_suffix(".json.tmp")
        tmp.write_text(model.model_dump_json(indent=2))
        tmp.replace(self.state_file)

    # -- purge ------------------------------------------------------------------------------
    def purge(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.dir.parent / f".{self.name}.lock").unlink()
