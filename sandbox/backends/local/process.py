"""Supervision of local service processes: spawn, wait until ready, stop the whole tree.

Every process is started in its own session (so Ctrl-C in the terminal does not reach it and
its tree can be found again), with ``MLOPS_SANDBOX_ID`` in its environment (so children that
outlive a ``kill -9`` of the harness can still be found and reaped), and recorded with its
create time and command line (so a reused pid is never mistaken for ours).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from sandbox.backends.local.state import ProcessRecord
from sandbox.errors import ServiceError
from sandbox.redaction import redact

MARKER_ENV = "MLOPS_SANDBOX_ID"


def log_tail(path: Path, lines: int = 25, secrets: Iterable[str] = ()) -> str:
    """The last ``lines`` lines of a log, with secrets masked."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    tail = "\n".join(data.splitlines()[-lines:])
    return redact(tail, secrets) or f"(log {path} is empty)"


@dataclass
class ServiceSpec:
    """How to run one service and how to tell that it is ready (a ``oneshot`` is ready once it has
    exited 0, e.g. ``airflow db migrate``)."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log: Path
    ready: Callable[[], bool] | None = None
    timeout: float = 60.0
    oneshot: bool = False
    cwd: Path | None = None
    user: int | None = None
    group: int | None = None
    stop_signal: int = signal.SIGTERM
    port: int | None = None
    url: str | None = None
    secrets: list[str] = field(default_factory=list)


@dataclass
class Supervised:
    spec: ServiceSpec
    popen: subprocess.Popen[bytes]
    record: ProcessRecord
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        """Readiness deadline (time.monotonic), counted from the spawn."""
        return self.started + self.spec.timeout


def spawn(spec: ServiceSpec, marker: str) -> Supervised:
    """Start ``spec`` detached in its own session, logging stdout+stderr to ``spec.log``."""
    if not Path(spec.argv[0]).exists() and os.sep in spec.argv[0]:
        raise ServiceError(
            f"Cannot start {spec.name}: the program {spec.argv[0]} does not exist.",
            "The platform environment may be damaged: delete it (see `sandbox status` for its path) "
            "and run `sandbox up` again to rebuild it.",
        )
    spec.log.parent.mkdir(parents=True, exist_ok=True)
    env = {**spec.env, MARKER_ENV: marker}
    with open(spec.log, "ab") as log:
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n".encode())
        log.flush()
        if spec.user is not None:
            os.chown(spec.log, spec.user, spec.group if spec.group is not None else -1)
        try:
            popen = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=spec.cwd,
                start_new_session=True,
                user=spec.user,
                group=spec.group,
                extra_groups=[] if spec.user is not None else None,
                close_fds=True,
            )
        except OSError as exc:
            raise ServiceError(
                f"Cannot start {spec.name}: {exc.strerror} ({spec.argv[0]}).",
                "Check that the platform environment is complete; deleting it makes `sandbox up` rebuild it.",
            ) from exc
    try:
        create_time = psutil.Process(popen.pid).create_time()
    except psutil.Error:
        create_time = 0.0
    record = ProcessRecord(
        pid=popen.pid,
        create_time=create_time,
        cmdline=spec.argv,
        exe=os.path.realpath(spec.argv[0]),
        port=spec.port,
        url=spec.url,
    )
    return Supervised(spec=spec, popen=popen, record=record)


class ServiceFailed(ServiceError):
    """A service exited or missed its readiness deadline; ``service`` names it."""

    def __init__(self, service: str, what: str, fix: str = "", *, detail: str = "") -> None:
        self.service = service
        super().__init__(what, fix, detail=detail)


def check(proc: Supervised) -> bool:
    """One readiness poll: True when ready; ServiceFailed (with the log tail) when the process has
    exited (a oneshot: with a non-zero code) or its deadline has passed."""
    spec = proc.spec
    code = proc.popen.poll()
    if spec.oneshot and code == 0:
        return True
    if code is not None:
        raise ServiceFailed(
            spec.name,
            f"{spec.name} {'failed' if spec.oneshot else 'exited'} with exit code {code}"
            + ("." if spec.oneshot else " while starting."),
            f"Read its log ({spec.log}) below; `sandbox logs {spec.name}` shows all of it; a damaged "
            "database is reset by `sandbox down --purge`.",
            detail=_tail_detail(spec),
        )
    if not spec.oneshot and (spec.ready is None or _safe(spec.ready)):
        return True
    if time.monotonic() > proc.deadline:
        verb = "did not finish" if spec.oneshot else "did not become healthy"
        raise ServiceFailed(
            spec.name,
            f"{spec.name} {verb} within {spec.timeout:.3g}s.",
            f"Read its log ({spec.log}) below; on a slow machine raise the deadline with "
            "MLOPS_SANDBOX_TIMEOUT_SCALE=2 (or LocalBackend(timeouts={...})).",
            detail=_tail_detail(spec),
        )
    return False


def _tail_detail(spec: ServiceSpec) -> str:
    return f"--- last lines of {spec.log.name} ---\n" + log_tail(spec.log, secrets=spec.secrets)


def _safe(check: Callable[[], bool]) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def find(record: ProcessRecord) -> psutil.Process | None:
    """The live process for ``record``, or None when it is gone or the pid was reused.

    The fingerprint is the create time plus either the recorded argv or the executable: Airflow
    and Postgres rewrite their process titles (setproctitle), so argv alone is not stable.
    """
    try:
        proc = psutil.Process(record.pid)
        if record.create_time and abs(proc.create_time() - record.create_time) > 0.05:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        if record.cmdline and proc.cmdline()[: len(record.cmdline)] == record.cmdline:
            return proc
        if record.exe and os.path.realpath(proc.exe()) == record.exe:
            return proc
        return None
    except (psutil.Error, OSError):
        return None


def session_members(records: Iterable[ProcessRecord]) -> list[psutil.Process]:
    """Live processes in the sessions the recorded services led, even when the leader is gone.

    Each service starts its own session, and its workers (LocalExecutor, uvicorn, Postgres
    backends, job subprocesses) stay in it; a member must be younger than its leader, so a
    recycled pid is never matched.
    """
    born = {r.pid: r.create_time for r in records}
    if not born:
        return []
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["create_time"]):
        try:
            sid = os.getsid(proc.pid)
        except OSError:
            continue
        if sid in born and proc.info["create_time"] + 0.05 >= born[sid] and proc.pid != os.getpid():
            found.append(proc)
    return found


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """``proc`` and its live descendants."""
    found = [proc]
    with contextlib.suppress(psutil.Error):
        found.extend(proc.children(recursive=True))
    return found


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose environment still shows ``MLOPS_SANDBOX_ID=marker``.

    A second net next to ``session_members``: it catches a process spawned just before a
    ``kill -9`` of the harness, before its record was saved (processes that rewrite their title
    may hide their environment, which is why sessions are the first net).
    """
    me = os.getpid()
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error):
            if proc.environ().get(MARKER_ENV) == marker and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def terminate(
    procs: Iterable[psutil.Process], *, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> list[psutil.Process]:
    """Signal every process (with its descendants), wait, then SIGKILL what is left.

    Returns the processes that could not be killed (normally none).
    """
    roots = list(procs)
    everything: dict[int, psutil.Process] = {}
    for proc in roots:
        for member in tree(proc):
            everything[member.pid] = member
    if not everything:
        return []
    for proc in roots:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
    _, alive = psutil.wait_procs(list(everything.values()), timeout=timeout * 0.7)
    # Descendants that ignored their parent's shutdown get the signal directly, then SIGKILL.
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(alive, timeout=timeout * 0.3)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _, alive = psutil.wait_procs(alive, timeout=3)
    return alive


def stop_records(
    records: Mapping[str, ProcessRecord],
    stages: Iterable[Iterable[str]],
    signals: Mapping[str, int],
    grace: Mapping[str, float],
    default_grace: float = 10.0,
) -> None:
    """Stop recorded services stage by stage (dependants first). Services within a stage stop in
    parallel, each with its own stop signal; whatever of a service's tree outlives its grace
    period gets SIGTERM directly, then SIGKILL."""
    for stage in stages:
        trees: dict[str, list[psutil.Process]] = {}
        for name in stage:
            proc = find(records[name]) if name in records else None
            if proc is None:
                continue
            trees[name] = tree(proc)
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signals.get(name, signal.SIGTERM))
        start = time.monotonic()
        while trees:
            everything = [p for tree in trees.values() for p in tree]
            _, alive = psutil.wait_procs(everything, timeout=0.2)
            alive_pids = {p.pid for p in alive}
            for name in list(trees):
                trees[name] = [p for p in trees[name] if p.pid in alive_pids]
                if not trees[name]:
                    del trees[name]
                elif time.monotonic() - start > grace.get(name, default_grace):
                    terminate(trees.pop(name), timeout=2)
