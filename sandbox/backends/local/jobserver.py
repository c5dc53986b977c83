"""The ``job-server`` service of the ``local`` task runtime: warm jobs (``sandbox/platform/warm_jobs.py``).

It imports the jobs' third-party libraries once and forks each job from there, so a task skips the
interpreter start and the imports (and those it learns the jobs make at run time, e.g. MLflow's
import of skops when it saves a model). Airflow's processes get the client's argv as
``$MLOPS_SANDBOX_JOB_LAUNCHER`` and the sandbox's cluster policy hands it to every ``LocalJobOperator``.
It is started with nothing before it (its imports overlap the other services' starts), and ``up``
waits for it. When it is absent, broken or refuses a job, the job runs as a plain subprocess.
``MLOPS_SANDBOX_WARM_JOBS=0`` (``LocalBackend(warm_jobs=False)``) leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.errors import PreflightError
from sandbox.platform import warm_jobs
from sandbox.platform.airflow_local_settings import JOB_LAUNCHER_ENV

NAME = "job-server"
SCRIPT = Path(warm_jobs.__file__)
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux


def socket_path(ctx: StackContext) -> Path:
    """In the state folder (0700), or a short per-sandbox folder when that path is too long."""
    inside = ctx.state.dir / "jobs.sock"
    if len(os.fsencode(inside)) <= _SOCKET_PATH_MAX:
        return inside
    digest = hashlib.sha256(ctx.state.marker.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"mlops-sandbox-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():
        raise PreflightError(
            f"{folder} (the job server's socket folder) belongs to someone else.",
            "Remove it, or start the sandbox with a shorter state path (MLOPS_SANDBOX_HOME).",
        )
    os.chmod(folder, 0o700)
    return folder / f"{digest}.sock"


def learned_path(ctx: StackContext) -> Path:
    """What the server learned the jobs import at run time: kept with the sandbox's state, so a
    restarted server preloads it from the start."""
    return ctx.state.dir / "job-server-learned.json"


def airflow_env(ctx: StackContext) -> dict[str, str]:
    """What Airflow's processes get so that the policy gives the operators the warm job client."""
    launcher = [str(ctx.python), "-I", "-S", str(SCRIPT), "run", str(socket_path(ctx)), "--"]
    return {JOB_LAUNCHER_ENV: json.dumps(launcher)}


def describe(answer: dict[str, object] | None) -> tuple[bool, str]:
    """(healthy, detail) from the server's ping answer."""
    if answer is None:
        return False, "not answering"
    preloaded = answer.get("preloaded") or []
    if answer.get("warm"):
        return True, f"warm: {len(preloaded)} module(s) preloaded"  # type: ignore[arg-type]
    return True, f"cold ({answer.get('why')}): jobs run as plain processes"


class JobServer(Service):
    name = NAME
    stop_grace = 5.0

    def spec(self, ctx: StackContext) -> ServiceSpec:
        path = socket_path(ctx)
        serve = ["serve", str(path), "--jobs", str(ctx.jobs_folder), "--learned", str(learned_path(ctx))]
        return ServiceSpec(
            name=self.name,
            argv=[str(ctx.python), str(SCRIPT), *serve],
            env={**ctx.process_env(), **warm_jobs.SERVER_ENV},
            log=ctx.state.log_file(self.name),
            ready=lambda: warm_jobs.ping(path) is not None,
            timeout=self.timeout(ctx),
            cwd=ctx.state.dir,
        )

    def provision(self, ctx: StackContext) -> str:
        return describe(warm_jobs.ping(socket_path(ctx)))[1]

    def health(self, ctx: StackContext, probes: Probes) -> tuple[bool, str]:
        return describe(warm_jobs.ping(socket_path(ctx)))
