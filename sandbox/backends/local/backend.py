"""LocalBackend: the whole platform as supervised processes on 127.0.0.1, configured by the charts.

``up`` starts the services (one module each) in dependency order, overlapping what can overlap:
  s3 and postgres -> mlflow and ``airflow db migrate`` -> the four Airflow components,
and returns when all of them are ready. Any failure or Ctrl-C stops everything this call started
(and anything carrying the sandbox's marker), so a failed ``up`` leaves nothing running.
The configuration is read from ``charts/*/values.yaml`` plus ``values-local.yaml`` on every ``up``; a
running stack started with another configuration is restarted, not reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import psutil

from sandbox import paths
from sandbox.backends.local import airflow, jobimage, jobserver, mlflow, objectstore, postgres
from sandbox.backends.local import process as proc_mod
from sandbox.backends.local.process import ServiceFailed, Supervised
from sandbox.backends.local.runtime import RUNTIMES, TaskRuntime, remove_containers
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.backends.local.state import SandboxState, StateError, StateModel
from sandbox.errors import ConfigError, ServiceError
from sandbox.images.engine import present
from sandbox.platform import airflow_local_settings
from sandbox.platform.config import PlatformConfig, load_platform_config
from sandbox.ports import LOOPBACK, ensure_port_free, free_ports
from sandbox.secrets import SecretStore
from sandbox.stack import Capability, Credentials, Endpoints, ServiceControl, ServiceStatus, UpResult

OVERLAY = "local"  # charts/<chart>/values-local.yaml


def all_services() -> list[Service]:
    """Every service of the stack, in start order (``after`` makes the real order); ``job-server`` only
    runs for the local task runtime (with warm jobs), ``job-image`` only for the docker one."""
    return [jobserver.JobServer(), postgres.Postgres(), objectstore.S3(), mlflow.Mlflow(), airflow.Migrate(),
            *airflow.components(), jobimage.JobImage()]  # fmt: skip


SERVICES: tuple[str, ...] = tuple(s.name for s in all_services() if not s.oneshot)
LOG_NAMES: tuple[str, ...] = tuple(s.name for s in all_services())
SCHEDULER = "airflow-scheduler"  # restarted with schedules on by set_schedules()
# Ports a user may pin (LocalBackend(ports={...})); the rest are always picked free.
PORT_KEYS = ("postgres", "s3", "mlflow", "airflow", "airflow-worker-logs", "airflow-trigger-logs")
DEFAULT_TIMEOUTS: dict[str, float] = {
    "postgres": 30, "s3": 30, "mlflow": 120, "airflow-migrate": 240,
    "airflow-api-server": 150, "airflow-scheduler": 150, "airflow-dag-processor": 150,
    "airflow-triggerer": 150, "job-image": 900, "job-server": 120,
}  # fmt: skip

ProgressFn = Callable[[str, str, str], None]
"""``progress(service, event, detail)``; event is starting | ready | reused | stopping | failed."""


def _noop(_service: str, _event: str, _detail: str) -> None:
    return None


def _closure(services: list[Service], wanted: Iterable[str]) -> list[Service]:
    """``wanted`` and everything they need, in start order."""
    by_name = {s.name: s for s in services}
    unknown = set(wanted) - set(by_name)
    if unknown:
        raise ConfigError(
            f"Unknown service(s): {', '.join(sorted(unknown))}.", f"Use some of: {', '.join(by_name)}."
        )
    keep: set[str] = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(by_name[name].after)
    return [s for s in services if s.name in keep]


class LocalBackend:
    """The platform as local processes; state under ``.sandbox/<sandbox_name>/``.

    Options:
        ports: pin ports by key (``postgres``, ``s3``, ``mlflow``, ``airflow``,
            ``airflow-worker-logs``, ``airflow-trigger-logs``); others are picked free.
        timeouts: per-service readiness deadlines in seconds (see DEFAULT_TIMEOUTS).
        dags_folder: the DAG folder Airflow serves (default: the repo's ``dags/``).
        jobs_folder: the job code the local task runtime runs (default: the repo's ``jobs/``).
        charts_dir: where the charts' values files are read (default: the repo's ``charts/``).
        services: start only these services and what they need (e.g. ``["mlflow"]``).
        task_runtime: how Airflow runs the jobs: ``local`` (subprocesses) or ``docker`` (the job image,
            built from ``jobs/Dockerfile`` by the ``job-image`` step, in containers).
        warm_jobs: with the local task runtime, fork each job from the ``job-server`` (the jobs'
            libraries imported once) instead of starting a fresh interpreter (``jobserver``).
        progress: callback ``(service, event, detail)`` for progress displays.
        state_root: where sandboxes keep state (default ``paths.state_root()``).
    """

    name = "local"

    def __init__(
        self,
        sandbox_name: str = "default",
        *,
        ports: Mapping[str, int] | None = None,
        timeouts: Mapping[str, float] | None = None,
        dags_folder: Path | str | None = None,
        jobs_folder: Path | str | None = None,
        charts_dir: Path | str | None = None,
        services: Iterable[str] | None = None,
        progress: ProgressFn | None = None,
        state_root: Path | str | None = None,
        task_runtime: str = "local",
        warm_jobs: bool = True,
    ) -> None:
        if (
            not sandbox_name
            or not all(c.isalnum() or c in "-_." for c in sandbox_name)
            or sandbox_name.startswith(".")
        ):
            raise ConfigError(
                f"Invalid sandbox name {sandbox_name!r}.",
                "Use letters, digits, '-', '_' or '.', not starting with '.' (e.g. --name dev).",
            )
        unknown = set(ports or {}) - set(PORT_KEYS)
        if unknown:
            raise ConfigError(
                f"Unknown port key(s): {', '.join(sorted(unknown))}.", f"Use some of: {', '.join(PORT_KEYS)}."
            )
        unknown = set(timeouts or {}) - set(DEFAULT_TIMEOUTS)
        if unknown:
            raise ConfigError(
                f"Unknown timeout key(s): {', '.join(sorted(unknown))}.",
                f"Use some of: {', '.join(DEFAULT_TIMEOUTS)}.",
            )
        self.sandbox_name = sandbox_name
        self.state = SandboxState(sandbox_name, Path(state_root) if state_root else None)
        self.secrets = SecretStore(self.state.dir)
        self.fixed_ports = dict(ports or {})
        scale = float(os.environ.get("MLOPS_SANDBOX_TIMEOUT_SCALE", "1") or 1)
        self.scale = scale
        self.timeouts = {k: v * scale for k, v in DEFAULT_TIMEOUTS.items()} | dict(timeouts or {})
        self.dags_folder = Path(dags_folder) if dags_folder else paths.DAGS_DIR
        self.jobs_folder = Path(jobs_folder) if jobs_folder else paths.JOBS_DIR
        self.charts_dir = Path(charts_dir) if charts_dir else paths.CHARTS_DIR
        if task_runtime not in RUNTIMES:
            raise ConfigError(
                f"Unknown task runtime {task_runtime!r}.",
                f"Use one of: {', '.join(RUNTIMES)} (--task-runtime, $MLOPS_SANDBOX_TASK_RUNTIME).",
            )
        self.task_runtime = task_runtime
        left_out = {jobimage.NAME} if task_runtime == "local" else {jobserver.NAME}
        if not warm_jobs:
            left_out.add(jobserver.NAME)
        wanted = [s for s in all_services() if s.name not in left_out]
        self.services = wanted if services is None else _closure(wanted, services)
        self.progress: ProgressFn = progress or _noop

    # ---------------------------------------------------------------- public API
    def config(self) -> PlatformConfig:
        """The platform configuration this backend runs: the charts' values plus ``values-local.yaml``."""
        return load_platform_config(OVERLAY, self.charts_dir)

    def up(self) -> UpResult:
        """Start the stack, or reuse it when every service is healthy and runs the current configuration."""
        started_at = time.monotonic()
        config = self.config()  # a bad values file stops here, before anything starts
        runtime = TaskRuntime.resolve(self.task_runtime, self.jobs_folder)  # and a missing Docker engine
        with self.state.locked():
            saved = self.state.load()
            if saved is not None and saved.services:
                # A harness killed during a service fault may have left processes paused (SIGSTOP).
                self._resume(saved)
                if saved.schedules:  # and one killed during a `trigger: schedule` scenario, schedules on
                    self.progress(SCHEDULER, "stopping", "schedules left on by an interrupted scenario")
                    self._stop_scheduler(saved, schedules=False)  # healed below, with schedules off
                services = self._check(saved, config)
                fresh = saved.config_hash == self._config_hash(config, runtime)
                if runtime.image and not present(runtime.docker, runtime.image):
                    fresh = False  # the job image was removed since: build it again
                complete = set(saved.services) >= self._names()
                if fresh and all(s.healthy for s in services) and complete:
                    for s in services:
                        self.progress(s.name, "reused", s.url or "")
                    return UpResult(
                        self._endpoints(saved, config), True, time.monotonic() - started_at, services
                    )
                if fresh and complete and self._heal(saved, config, services):
                    self._put_back_s3_objects()
                    saved = self.state.load() or saved
                    services = self._check(saved, config)
                    return UpResult(
                        self._endpoints(saved, config), False, time.monotonic() - started_at, services
                    )
                if not fresh:
                    self.progress("configuration", "stopping", "values changed since the start: restarting")
                self._stop(saved)  # a partial, stale or reconfigured stack (e.g. after kill -9): start fresh
            self._reap(saved)
            model = self._start(saved, config, runtime)
            self._put_back_s3_objects()
            services = self._check(model, config)
            return UpResult(self._endpoints(model, config), False, time.monotonic() - started_at, services)

    def down(self, *, purge: bool = False) -> None:
        """Stop every process of the sandbox; ``purge`` also deletes its state (and data)."""
        with self.state.locked():
            try:
                saved = self.state.load()
            except StateError:
                if not purge:  # a corrupt state must not block the purge that fixes it
                    raise
                saved = None
            if saved is not None:
                self._stop(saved)
            self._reap(saved)
            if saved is not None and not purge:
                saved.services = {}
                self.state.save(saved)
            if purge:
                if saved is not None:
                    postgres.purge_data(saved.postgres_data)
                self.state.purge()

    def exists(self) -> bool:
        return self.state.dir.is_dir()

    def status(self) -> list[ServiceStatus]:
        saved = self.state.load()
        if saved is None:
            return [ServiceStatus(s.name, False, "not started") for s in self.services if not s.oneshot]
        return self._check(saved, self.config())

    @property
    def endpoints(self) -> Endpoints:
        saved = self.state.load()
        if saved is None or not saved.services:
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} is not running.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        return self._endpoints(saved, self.config())

    @property
    def postgres_address(self) -> tuple[str, int] | None:
        """Host and port of the sandbox's Postgres (None when not started); local backend only."""
        saved = self.state.load()
        return (LOOPBACK, saved.ports["postgres"]) if saved and "postgres" in saved.ports else None

    def job_platform(self) -> tuple[dict[str, str], dict[str, str]]:
        """The platform ConfigMap's and Secret's data a job of this sandbox gets (what its pod would)."""
        saved = self.state.load()
        if saved is None or not saved.ports:
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} is not running.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        return airflow.platform_objects(self._context(saved, self.config(), self.secrets.read_secrets()))

    @property
    def credentials(self) -> Credentials:
        if not self.secrets.secrets_file.exists():
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} has no credentials yet.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        return self.secrets.credentials()

    def capabilities(self) -> frozenset[Capability]:
        # "faults": the sandbox's cluster policy is in AIRFLOW_HOME (airflow.install_cluster_policy);
        # "service_faults": service_control() and revive() below (the process supervisor); "schedules":
        # set_schedules() below.
        caps: set[Capability] = {"faults", "service_faults"}
        if SCHEDULER in self._names():
            caps.add("schedules")
        if self.task_runtime == "local" and _gpu_present():  # the docker runtime passes no GPU yet
            caps.add("gpu")
        return frozenset(caps)

    def diagnostics(self, dest: Path) -> Path:
        """Copy service logs, Airflow task logs and the state under ``dest``, every file redacted
        (by shape when the secrets cannot be read, with a notice saying so)."""
        bundle = Path(dest) / f"{self.sandbox_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        bundle.mkdir(parents=True, exist_ok=True)
        redact = self.secrets.redactor()
        if redact.notice():
            (bundle / "REDACTION-NOTICE.txt").write_text(redact.notice() or "")
        sources = [
            (self.state.logs_dir, bundle / "services"),
            (self.state.airflow_home / "logs", bundle / "airflow-task-logs"),
        ]
        for src, dst in sources:
            if not src.is_dir():
                continue
            for path in src.rglob("*"):
                if path.is_file():
                    target = dst / path.relative_to(src)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(redact(path.read_text(errors="replace")))
        if self.state.state_file.exists():
            (bundle / "state.json").write_text(redact(self.state.state_file.read_text()))
        with contextlib.suppress(Exception):
            lines = [
                f"{s.name}\t{'healthy' if s.healthy else 'UNHEALTHY'}\t{s.detail}" for s in self.status()
            ]
            (bundle / "status.txt").write_text(redact("\n".join(lines) + "\n"))
        return bundle

    # ---------------------------------------------------------------- service faults
    def service_control(self, name: str) -> ServiceControl:
        """Stop, kill, pause or cut off one service, and undo it (``sandbox.backends.local.faults``)."""
        from sandbox.backends.local.faults import LocalServiceControl

        if name not in self._names():
            raise ConfigError(f"Unknown service {name!r}.", f"Use one of: {', '.join(SERVICES)}.")
        return LocalServiceControl(self, name)

    def processes(self, name: str) -> list[psutil.Process]:
        """The live processes of one service: its recorded process, its descendants and every other
        member of its session (workers, job subprocesses); empty when it is not running."""
        saved = self.state.load()
        record = saved.services.get(name) if saved else None
        if record is None:
            return []
        found: dict[int, psutil.Process] = {p.pid: p for p in proc_mod.session_members([record])}
        proc = proc_mod.find(record)
        if proc is not None:
            for member in proc_mod.tree(proc):
                found.setdefault(member.pid, member)
        return list(found.values())

    def stop_service(self, name: str) -> None:
        """Stop one service the way ``down`` does (its stop signal, its grace period, then SIGKILL)."""
        saved = self.state.load()
        if saved is None or name not in saved.services:
            return
        svc = next(s for s in all_services() if s.name == name)
        proc_mod.stop_records(
            {name: saved.services[name]}, [(name,)], {name: svc.stop_signal}, {name: svc.stop_grace}
        )
        leftovers = [p for p in proc_mod.session_members([saved.services[name]]) if p.is_running()]
        if leftovers:
            proc_mod.terminate(leftovers, timeout=2)

    def start_services(self, names: Iterable[str]) -> None:
        """Start ``names`` again (each stopped, killed or crashed) and wait until they are ready; the
        other services must be running. What each provisions once ready is redone (moto's buckets)."""
        with self.state.locked():
            self._restart(set(names), self.config())

    def revive(self, skip: Iterable[str] = ()) -> list[str]:
        """Start again every service whose process exited (not those in ``skip``); returns their names."""
        saved = self.state.load()
        if saved is None:
            return []
        dead = [
            s.name for s in self.services
            if not s.oneshot and s.name not in set(skip) and s.name in saved.services
            and proc_mod.find(saved.services[s.name]) is None
        ]  # fmt: skip
        if dead:
            self.start_services(dead)
        return dead

    # ---------------------------------------------------------------- schedules
    def set_schedules(self, on: bool) -> str:
        """Restart the scheduler with the DAGs' schedules on, or back off (``sandbox.stack.Schedules``)."""
        with self.state.locked():
            saved = self.state.load()
            if saved is None or SCHEDULER not in saved.services:
                raise ServiceError(
                    f"Sandbox {self.sandbox_name!r} is not running.",
                    f"Start it: `sandbox up --name {self.sandbox_name}`.",
                )
            self._stop_scheduler(saved, schedules=on)
            self._restart({SCHEDULER}, self.config())
        return f"scheduler restarted with schedules {'on' if on else 'off'}"

    def _stop_scheduler(self, saved: StateModel, *, schedules: bool) -> None:
        """Stop the scheduler and record whether it starts again with schedules on. Stopped first, then
        the flag saved: a harness killed in between leaves the flag for `up` to see, never a scheduler
        whose schedules the state does not know about."""
        self.stop_service(SCHEDULER)
        saved.schedules = schedules
        self.state.save(saved)

    def mlflow_database(self) -> str:
        """The database MLflow's tracking and registry store lives in (charts/mlflow ``backendStore``)."""
        return self.config().mlflow.backend_store.database

    def sql_session(self, database: str) -> postgres.SqlSession:
        """A psql session on one of the sandbox's databases (the ``registered`` fault point holds a row
        lock through it); the caller closes it."""
        saved = self.state.load()
        if saved is None or "postgres" not in saved.ports:
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} is not running.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        ctx = self._context(saved, self.config(), self.secrets.read_secrets())
        lay = postgres.layout(self.state, ctx.env_dir, saved.postgres_data)
        user, password = ctx.secrets["POSTGRES_USER"], ctx.secrets["POSTGRES_PASSWORD"]
        return postgres.SqlSession(lay, saved.ports["postgres"], user, password, database)

    def logs_path(self, service: str) -> Path:
        """The log file of ``service``; ConfigError naming the valid ones for a typo."""
        if service not in LOG_NAMES:
            raise ConfigError(f"Unknown service {service!r}.", f"Use one of: {', '.join(LOG_NAMES)}.")
        return self.state.log_file(service)

    # ---------------------------------------------------------------- start
    def _names(self) -> set[str]:
        return {s.name for s in self.services if not s.oneshot}

    def _context(
        self,
        model: StateModel,
        config: PlatformConfig,
        secrets: dict[str, str],
        runtime: TaskRuntime | None = None,
    ) -> StackContext:
        from sandbox.envs import platform_env_dir

        env_dir = Path(model.platform_env) if model.platform_env else platform_env_dir()
        return StackContext(
            state=self.state, model=model, config=config, env_dir=env_dir, secrets=secrets,
            timeouts=self.timeouts, dags_folder=self.dags_folder, jobs_folder=self.jobs_folder,
            runtime=runtime or TaskRuntime(), warm_jobs=any(s.name == jobserver.NAME for s in self.services),
        )  # fmt: skip

    def _config_hash(self, config: PlatformConfig, runtime: TaskRuntime) -> str:
        """What the services run, apart from ports and secrets: the configuration, the folders and the
        task runtime (for docker: the job image's tag, so a job edit restarts Airflow with the new one)."""
        from sandbox.envs import platform_env_dir

        facts = {
            "config": config.model_dump(mode="json", exclude={"charts_dir"}),
            "dags": str(self.dags_folder),
            "jobs": str(self.jobs_folder),
            "services": sorted(s.name for s in self.services),
            "runtime": [runtime.name, runtime.image, runtime.docker_host],
            # The cluster policy is copied in at start and the job server runs the harness's copy of its
            # script: a stack running older ones is restarted, as is one on another platform env.
            "policy": hashlib.sha256(Path(airflow_local_settings.__file__).read_bytes()).hexdigest(),
            "job_server": hashlib.sha256(jobserver.SCRIPT.read_bytes()).hexdigest(),
            "env": platform_env_dir().name,
        }
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]

    def _start(self, saved: StateModel | None, config: PlatformConfig, runtime: TaskRuntime) -> StateModel:
        from sandbox.envs import ensure_platform_env

        self.state.ensure_dirs()
        self.progress("environment", "starting", "platform Python environment")
        env_dir = ensure_platform_env()
        self.progress("environment", "ready", str(env_dir))
        model = StateModel(
            name=self.sandbox_name,
            platform_env=str(env_dir),
            ports=self._allocate_ports(),
            postgres_data=saved.postgres_data if saved else "",
            schema_env=saved.schema_env if saved else "",
            config_hash=self._config_hash(config, runtime),
            docker_host=runtime.docker_host,
        )
        self.state.save(model)
        ctx = self._context(model, config, self.secrets.load_or_create_secrets(), runtime)
        try:
            ready = self._launch(ctx, self.services, set())
            if "airflow-migrate" in ready:  # the Airflow schema is this env's now
                model.schema_env = env_dir.name
            self.state.save(model)
        except BaseException as exc:  # includes KeyboardInterrupt: never leave a half stack behind
            failed = exc.service if isinstance(exc, ServiceFailed) else "sandbox"
            self.progress(failed, "failed", getattr(exc, "what", type(exc).__name__))
            self._rollback(model)
            raise
        return model

    def _launch(self, ctx: StackContext, services: list[Service], ready: set[str]) -> set[str]:
        """Start ``services`` in dependency order (``ready``: names already running) and wait until each
        is ready; every spawn is recorded in the state at once. Returns the names now ready."""
        model = ctx.model
        ready = set(ready)
        running: dict[str, Supervised] = {}
        wanted = {s.name for s in services}
        while not wanted <= ready:
            for svc in services:
                if svc.name in ready or svc.name in running or not set(svc.after) <= ready:
                    continue
                reason = svc.done(ctx)
                if reason is not None:
                    ready.add(svc.name)
                    self.progress(svc.name, "ready", reason)
                    continue
                self.progress(svc.name, "starting", "")
                svc.prepare(ctx)
                sup = proc_mod.spawn(svc.spec(ctx), self.state.marker)
                running[svc.name] = sup
                model.services[svc.name] = sup.record
                self.state.save(model)  # recorded at once, so a kill -9 of the harness can be reaped
            for svc in services:
                if svc.name in running and svc.name not in ready and proc_mod.check(running[svc.name]):
                    detail = svc.provision(ctx)
                    ready.add(svc.name)
                    self.progress(svc.name, "ready", detail)
            time.sleep(0.25)
        return ready

    def _rollback(self, model: StateModel) -> None:
        # Ctrl-C pressed again during cleanup must not abandon the processes.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            self._stop(model)
            self._reap(model)
            model.services = {}
            with contextlib.suppress(OSError):
                self.state.save(model)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _restart(self, names: set[str], config: PlatformConfig) -> None:
        saved = self.state.load()
        if saved is None:
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} is not running.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        runtime = TaskRuntime.resolve(self.task_runtime, self.jobs_folder)
        ctx = self._context(saved, config, self.secrets.read_secrets(), runtime)
        wanted = [s for s in self.services if s.name in names]
        ready = {s.name for s in self.services} - names
        self._launch(ctx, wanted, ready)
        self.state.save(saved)

    def _put_back_s3_objects(self) -> None:
        """Objects an interrupted ``unavailable`` fault kept aside go back into the fresh S3 server."""
        from sandbox.backends.local.faults import restore_s3_snapshot

        count = restore_s3_snapshot(self)
        if count:
            self.progress("s3", "ready", f"{count} object(s) put back (kept aside by an interrupted fault)")

    def _resume(self, model: StateModel) -> None:
        """SIGCONT every process of the sandbox (a no-op for those not stopped)."""
        procs = {p.pid: p for p in proc_mod.session_members(model.services.values())}
        for record in model.services.values():
            proc = proc_mod.find(record)
            if proc is not None:
                procs.update({p.pid: p for p in proc_mod.tree(proc)})
        for proc in procs.values():
            with contextlib.suppress(psutil.Error):
                if proc.status() == psutil.STATUS_STOPPED:
                    proc.resume()
                    self.progress("faults", "stopping", f"resumed paused process {proc.pid}")

    def _heal(self, model: StateModel, config: PlatformConfig, services: list[ServiceStatus]) -> bool:
        """Start again the services a fault (or a crash) left stopped, when everything else is there; True
        when the stack is healthy afterwards. Anything else is left to a full restart."""
        dead = {s.name for s in services if s.detail == "not running"}
        if not dead or len(dead) == len(services):  # nothing to heal, or nothing left to heal around
            return False
        try:
            self._restart(dead, config)
        except ServiceError:
            return False
        model = self.state.load() or model  # the restarted services' new records
        deadline = time.monotonic() + 30 * self.scale
        while time.monotonic() < deadline:
            if all(s.healthy for s in self._check(model, config)):
                for name in sorted(dead):
                    self.progress(name, "ready", "started again (it was stopped)")
                return True
            time.sleep(1)
        return False

    # ---------------------------------------------------------------- stop / reap
    def _stop(self, model: StateModel) -> None:
        """Stop dependants first (stage by stage, each stage in parallel) so nothing logs connection
        errors against an already-stopped database."""
        services = all_services()
        stages = [
            tuple(s.name for s in services if s.stop_stage == stage)
            for stage in sorted({s.stop_stage for s in services})
        ]
        for stage in stages:
            for name in stage:
                if name in model.services:
                    self.progress(name, "stopping", "")
        proc_mod.stop_records(
            model.services,
            stages,
            {s.name: s.stop_signal for s in services},
            {s.name: s.stop_grace for s in services},
        )

    def _reap(self, model: StateModel | None) -> None:
        """Kill what the records' sessions or the sandbox marker still show (kill -9 leftovers), and remove
        the job containers the docker runtime's workers left (labelled with the marker)."""
        leftovers = {p.pid: p for p in proc_mod.marked_processes(self.state.marker)}
        if model is not None:
            leftovers.update({p.pid: p for p in proc_mod.session_members(model.services.values())})
        if leftovers:
            proc_mod.terminate(list(leftovers.values()), timeout=5)
        if model is not None and model.docker_host:
            removed = remove_containers(model.docker_host, self.state.marker)
            if removed:
                self.progress("job containers", "stopping", f"removed {removed} left running")

    # ---------------------------------------------------------------- health
    def _check(self, model: StateModel, config: PlatformConfig) -> list[ServiceStatus]:
        ctx = self._context(model, config, {})
        probes = Probes()
        results: list[ServiceStatus] = []
        for svc in self.services:
            if svc.oneshot:
                continue
            record = model.services.get(svc.name)
            if record is None:
                results.append(ServiceStatus(svc.name, False, "not started"))
                continue
            if proc_mod.find(record) is None:
                results.append(ServiceStatus(svc.name, False, "not running", record.pid, record.url))
                continue
            try:
                healthy, detail = svc.health(ctx, probes)
            except Exception as exc:
                healthy, detail = False, f"health check failed: {type(exc).__name__}"
            results.append(ServiceStatus(svc.name, healthy, detail, record.pid, record.url))
        return results

    # ---------------------------------------------------------------- helpers
    def _allocate_ports(self) -> dict[str, int]:
        for key, port in self.fixed_ports.items():
            ensure_port_free(port, key)
        auto = [k for k in PORT_KEYS if k not in self.fixed_ports]
        return {**dict(zip(auto, free_ports(len(auto)), strict=True)), **self.fixed_ports}

    def _endpoints(self, model: StateModel, config: PlatformConfig) -> Endpoints:
        ctx = self._context(model, config, {})
        return Endpoints(
            airflow_url=ctx.url("airflow"),
            mlflow_url=ctx.url("mlflow"),
            s3_url=ctx.url("s3"),
            data_bucket=config.data_bucket,
            artifacts_destination=config.mlflow.artifacts.destination,
            credentials_file=self.secrets.secrets_file,
            state_dir=self.state.dir,
        )


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _gpu_present() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount() > 0
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVMLError_LibraryNotFound without a driver; no module without nvidia-ml-py
        return False
