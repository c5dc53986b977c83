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

from sandbox import paths
from sandbox.backends.local import airflow, jobimage, mlflow, objectstore, postgres
from sandbox.backends.local import process as proc_mod
from sandbox.backends.local.process import ServiceFailed, Supervised
from sandbox.backends.local.runtime import RUNTIMES, TaskRuntime, remove_containers
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.backends.local.state import SandboxState, StateError, StateModel
from sandbox.errors import ConfigError, ServiceError
from sandbox.images.engine import present
from sandbox.platform.config import PlatformConfig, load_platform_config
from sandbox.ports import LOOPBACK, ensure_port_free, free_ports
from sandbox.secrets import SecretStore
from sandbox.stack import Capability, Credentials, Endpoints, ServiceStatus, UpResult

OVERLAY = "local"  # charts/<chart>/values-local.yaml


def all_services() -> list[Service]:
    """Every service of the stack, in start order (``after`` makes the real order); ``job-image`` only
    runs for the docker task runtime."""
    return [postgres.Postgres(), objectstore.S3(), mlflow.Mlflow(), airflow.Migrate(), *airflow.components(),
            jobimage.JobImage()]  # fmt: skip


SERVICES: tuple[str, ...] = tuple(s.name for s in all_services() if not s.oneshot)
LOG_NAMES: tuple[str, ...] = tuple(s.name for s in all_services())
# Ports a user may pin (LocalBackend(ports={...})); the rest are always picked free.
PORT_KEYS = ("postgres", "s3", "mlflow", "airflow", "airflow-worker-logs", "airflow-trigger-logs")
DEFAULT_TIMEOUTS: dict[str, float] = {
    "postgres": 30, "s3": 30, "mlflow": 120, "airflow-migrate": 240,
    "airflow-api-server": 150, "airflow-scheduler": 150, "airflow-dag-processor": 150,
    "airflow-triggerer": 150, "job-image": 900,
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
        wanted = all_services() if task_runtime == "docker" else [
            s for s in all_services() if s.name != jobimage.NAME]  # fmt: skip
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
                services = self._check(saved, config)
                fresh = saved.config_hash == self._config_hash(config, runtime)
                if runtime.image and not present(runtime.docker, runtime.image):
                    fresh = False  # the job image was removed since: build it again
                if fresh and all(s.healthy for s in services) and set(saved.services) >= self._names():
                    for s in services:
                        self.progress(s.name, "reused", s.url or "")
                    return UpResult(
                        self._endpoints(saved, config), True, time.monotonic() - started_at, services
                    )
                if not fresh:
                    self.progress("configuration", "stopping", "values changed since the start: restarting")
                self._stop(saved)  # a partial, stale or reconfigured stack (e.g. after kill -9): start fresh
            self._reap(saved)
            model = self._start(saved, config, runtime)
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
        # "faults": the sandbox's cluster policy is in AIRFLOW_HOME (airflow.install_cluster_policy).
        caps: set[Capability] = {"faults"}
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
            runtime=runtime or TaskRuntime(),
        )  # fmt: skip

    def _config_hash(self, config: PlatformConfig, runtime: TaskRuntime) -> str:
        """What the services run, apart from ports and secrets: the configuration, the folders and the
        task runtime (for docker: the job image's tag, so a job edit restarts Airflow with the new one)."""
        facts = {
            "config": config.model_dump(mode="json", exclude={"charts_dir"}),
            "dags": str(self.dags_folder),
            "jobs": str(self.jobs_folder),
            "services": sorted(s.name for s in self.services),
            "runtime": [runtime.name, runtime.image, runtime.docker_host],
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
        running: dict[str, Supervised] = {}
        ready: set[str] = set()
        try:
            while len(ready) < len(self.services):
                for svc in self.services:
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
                for svc in self.services:
                    if svc.name in running and svc.name not in ready and proc_mod.check(running[svc.name]):
                        detail = svc.provision(ctx)
                        ready.add(svc.name)
                        self.progress(svc.name, "ready", detail)
                time.sleep(0.25)
            if "airflow-migrate" in ready:  # the Airflow schema is this env's now
                model.schema_env = env_dir.name
            self.state.save(model)
        except BaseException as exc:  # includes KeyboardInterrupt: never leave a half stack behind
            failed = exc.service if isinstance(exc, ServiceFailed) else "sandbox"
            self.progress(failed, "failed", getattr(exc, "what", type(exc).__name__))
            self._rollback(model)
            raise
        return model

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
