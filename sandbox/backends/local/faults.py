"""Service faults on the local backend, through its process supervisor.

| action        | inject                                             | restore                               |
|---------------|----------------------------------------------------|---------------------------------------|
| `stop`        | the service's stop signal, its grace, then SIGKILL | start it again, wait until ready      |
| `kill`        | SIGKILL to every process of the service            | start it again, wait until ready      |
| `pause`       | SIGSTOP to every process of the service            | SIGCONT                               |
| `unavailable` | stopped like `stop`, its data kept                 | start it again, with its data         |

"Every process" is the recorded process, its descendants and the rest of its session (LocalExecutor
workers, the task runners and their jobs for the scheduler; Postgres backends; uvicorn workers).
Postgres keeps its data on disk and MLflow keeps nothing itself, so for them `unavailable` and `stop`
differ only in name; moto (S3) holds its objects in memory: after `stop` or `kill` it comes back
empty (its buckets created again, as the S3 chart's bucket Job would), after `unavailable` with every
object it held (snapshotted before the stop, uploaded again after the start).
"""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

from sandbox.backends.local import objectstore
from sandbox.errors import ConfigError, ServiceError
from sandbox.stack import FAULT_ACTIONS

if TYPE_CHECKING:
    from sandbox.backends.local.backend import LocalBackend


def s3_snapshot_dir(backend: LocalBackend) -> Path:
    """Where moto's objects wait while S3 is unavailable (``up`` uploads them again after a killed run)."""
    return backend.state.dir / "faults" / "s3-snapshot"


class LocalServiceControl:
    """One service of a local sandbox under a fault (``sandbox.stack.ServiceControl``)."""

    actions = frozenset(FAULT_ACTIONS)

    def __init__(self, backend: LocalBackend, name: str) -> None:
        self.backend = backend
        self.name = name

    def inject(self, action: str) -> str:
        started = time.monotonic()
        if action == "pause":
            done = self._signal(signal.SIGSTOP)
            return f"{done} process(es) stopped with SIGSTOP"
        if action == "kill":
            procs = self.backend.processes(self.name)
            done = self._signal(signal.SIGKILL)
            psutil.wait_procs(procs, timeout=10)
            return f"{done} process(es) killed with SIGKILL"
        if action == "unavailable" and self.name == "s3":
            count = self._snapshot_s3()
            self.backend.stop_service(self.name)
            return f"stopped in {time.monotonic() - started:.1f}s, {count} object(s) kept aside"
        if action in ("stop", "unavailable"):
            self.backend.stop_service(self.name)
            return f"stopped in {time.monotonic() - started:.1f}s"
        raise ConfigError(f"Unknown fault action {action!r}.", f"Use one of: {', '.join(FAULT_ACTIONS)}.")

    def restore(self, action: str) -> str:
        started = time.monotonic()
        if action == "pause":
            done = self._signal(signal.SIGCONT)
            return f"{done} process(es) continued with SIGCONT"
        self.backend.start_services([self.name])
        detail = f"started again, ready in {time.monotonic() - started:.1f}s"
        if action == "unavailable" and self.name == "s3":
            detail += f", {restore_s3_snapshot(self.backend)} object(s) put back"
        return detail

    # ------------------------------------------------------------------------------------------
    def _signal(self, sig: int) -> int:
        procs = self.backend.processes(self.name)
        if not procs and sig != signal.SIGCONT:
            raise ServiceError(
                f"{self.name} is not running: there is nothing to {signal.Signals(sig).name} .",
                f"Check `sandbox status --name {self.backend.sandbox_name}`.",
            )
        done = 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
                done += 1
        return done

    def _snapshot_s3(self) -> int:
        creds = self.backend.credentials
        ep = self.backend.endpoints
        return objectstore.snapshot(
            ep.s3_url, creds.s3_access_key, creds.s3_secret_key, self.backend.config().platform.region,
            s3_snapshot_dir(self.backend),
        )  # fmt: skip


def restore_s3_snapshot(backend: LocalBackend) -> int:
    """Upload what ``unavailable`` kept aside into the (restarted, empty) S3 server; 0 when nothing is."""
    folder = s3_snapshot_dir(backend)
    if not folder.is_dir():
        return 0
    creds = backend.credentials
    return objectstore.restore(
        backend.endpoints.s3_url, creds.s3_access_key, creds.s3_secret_key, backend.config().platform.region,
        folder,
    )  # fmt: skip
