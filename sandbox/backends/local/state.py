"""A local sandbox's state folder: ``state.json``, ``secrets.env`` (0600) and ``logs/``.

Layout of ``.sandbox/NAME/``::

    state.json      ports, recorded processes (pid + create time + cmdline), env used
    secrets.env     generated passwords and keys, mode 0600, never printed
    logs/SVC.log    one log per service
    airflow/        AIRFLOW_HOME (config-by-env, passwords file, task logs)
    postgres/       the data dir (or a pointer to it when running as root)
    faults.json     written by the scenario runner (see docs/architecture.md)
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
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


_SECRET_KEYS = (
    "AIRFLOW_USERNAME",
    "AIRFLOW_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "AIRFLOW_JWT_SECRET",
    "AIRFLOW_API_SECRET_KEY",
    "AIRFLOW_FERNET_KEY",
)


def _token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def generate_secrets() -> dict[str, str]:
    return {
        "AIRFLOW_USERNAME": "admin",
        "AIRFLOW_PASSWORD": _token(),
        # moto accepts any credentials; generating them anyway keeps the wiring honest.
        "AWS_ACCESS_KEY_ID": "AK" + secrets.token_hex(9).upper(),
        "AWS_SECRET_ACCESS_KEY": _token(30),
        "POSTGRES_USER": "sandbox",
        "POSTGRES_PASSWORD": secrets.token_hex(16),  # hex: safe inside a URL without quoting
        "AIRFLOW_JWT_SECRET": _token(32),
        "AIRFLOW_API_SECRET_KEY": _token(32),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }


class SandboxState:
    """Reads and writes one sandbox's state folder."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = name
        self.dir = (root or paths.state_root()) / name
        self.state_file = self.dir / "state.json"
        self.secrets_file = self.dir / "secrets.env"
        self.logs_dir = self.dir / "logs"
        self.airflow_home = self.dir / "airflow"
        self.faults_file = self.dir / "faults.json"

    # -- identity ---------------------------------------------------------------------------
    @property
    def marker(self) -> str:
        """Value of MLOPS_SANDBOX_ID in every process of this sandbox (used to reap orphans)."""
        return str(self.dir.resolve())

    def log_file(self, service: str) -> Path:
        return self.logs_dir / f"{service}.log"

    def exists(self) -> bool:
        return self.state_file.exists()

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

    # -- secrets.env ------------------------------------------------------------------------
    def load_or_create_secrets(self) -> dict[str, str]:
        self.ensure_dirs()
        if self.secrets_file.exists():
            values = self.read_secrets()
            if all(k in values for k in _SECRET_KEYS):
                return values
            values = {**generate_secrets(), **values}
        else:
            values = generate_secrets()
        tmp = self.secrets_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Generated by mlops-sandbox. Keep private.\n")
            handle.writelines(f"{k}={values[k]}\n" for k in _SECRET_KEYS)
        os.chmod(tmp, 0o600)
        tmp.replace(self.secrets_file)
        return values

    def read_secrets(self) -> dict[str, str]:
        values: dict[str, str] = {}
        try:
            text = self.secrets_file.read_text()
        except OSError as exc:
            raise self._corrupt(f"cannot read secrets.env: {exc.strerror}") from exc
        for line in text.splitlines():
            if line.strip() and not line.startswith("#"):
                key, sep, value = line.partition("=")
                if not sep:
                    raise self._corrupt("secrets.env has a line without '='")
                values[key.strip()] = value.strip()
        return values

    # -- purge ------------------------------------------------------------------------------
    def purge(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.dir.parent / f".{self.name}.lock").unlink()
