"""LocalBackend: the whole platform as supervised processes on 127.0.0.1.

Start order (what can overlap, does):
  1. s3 (moto) and postgres (initdb on first use)            -> buckets, databases
  2. mlflow (waited for later) and ``airflow db migrate``      -> migrate must finish
  3. airflow api-server, scheduler, dag-processor, triggerer   -> all healthy, mlflow healthy
Any failure or Ctrl-C stops everything this call started (and anything carrying the sandbox's
marker), so a failed ``up`` leaves nothing running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sandbox.backends.local import airflow, mlflow, objectstore, postgres
from sandbox.backends.local import process as proc_mod
from sandbox.backends.local.process import ServiceFailed, ServiceSpec, Supervised
from sandbox.backends.local.state import SandboxState, StateError, StateModel
from sandbox.errors import ConfigError, ServiceError
from sandbox.ports import LOOPBACK, ensure_port_free, free_ports
from sandbox.stack import Credentials, Endpoints, ServiceStatus, UpResult

AIRFLOW_SERVICES = tuple(f"airflow-{c}" for c in airflow.COMPONENTS)
SERVICES: tuple[str, ...] = ("postgres", "s3", "mlflow", *AIRFLOW_SERVICES)
LOG_NAMES: tuple[str, ...] = (*SERVICES, "airflow-migrate")
# Ports a user may pin (LocalBackend(ports={...})); the rest are always picked free.
PORT_KEYS = ("postgres", "s3", "mlflow", "airflow", "airflow-worker-logs", "airflow-trigger-logs")
DEFAULT_TIMEOUTS: dict[str, float] = {
    "postgres": 30, "s3": 30, "mlflow": 120, "airflow-migrate": 240,
    "airflow-api-server": 150, "airflow-scheduler": 150, "airflow-dag-processor": 150,
    "airflow-triggerer": 150,
}  # fmt: skip
# Stop dependants first so nothing logs connection errors against an already-stopped database;
# services within a stage stop in parallel.
STOP_STAGES: tuple[tuple[str, ...], ...] = (
    ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-migrate"),
    # Last of Airflow: the other components talk to its execution API while they shut down.
    ("airflow-api-server",),
    ("mlflow", "s3"),
    ("postgres",),
)
# Seconds a service may take to shut down before its tree is killed. The triggerer's runner
# subprocess lingers ~10 s after SIGTERM; a sandbox has nothing to lose by cutting that short.
STOP_GRACE = {
    "airflow-triggerer": 2.0,
    "airflow-scheduler": 5.0,
    "airflow-dag-processor": 5.0,
    "airflow-api-server": 3.0,
}
# Variables a child may inherit from the harness; everything else (VIRTUAL_ENV, PYTHONPATH, a user's
# MLFLOW_TRACKING_URI, proxies) would leak the caller's setup into the platform.
_PASS_ENV = ("HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE",
             "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")  # fmt: skip

ProgressFn = Callable[[str, str, str], None]
"""``progress(service, event, detail)``; event is starting | ready | reused | stopping | failed."""


def _noop(_service: str, _event: str, _detail: str) -> None:
    return None


class LocalBackend:
    """The platform as local processes; state under ``.sandbox/<sandbox_name>/``.

    Options:
        ports: pin ports by key (``postgres``, ``s3``, ``mlflow``, ``airflow``,
            ``airflow-worker-logs``, ``airflow-trigger-logs``); others are picked free.
        parallelism: Airflow ``core.parallelism`` (LocalExecutor worker processes).
        timeouts: per-service readiness deadlines in seconds (see DEFAULT_TIMEOUTS).
        dags_folder: the DAG folder Airflow serves (default: the repo's ``dags/``).
        progress: callback ``(service, event, detail)`` for progress displays.
        state_root: where sandboxes keep state (default ``paths.state_root()``).
    """

    name = "local"

    def __init__(
        self,
        sandbox_name: str = "default",
        *,
        ports: Mapping[str, int] | None = None,
        parallelism: int = 4,
        timeouts: Mapping[str, float] | None = None,
        dags_folder: Path | str | None = None,
        progress: ProgressFn | None = None,
        state_root: Path | str | None = None,
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
        if parallelism < 1:
            raise ConfigError(f"parallelism must be >= 1, got {parallelism}.", "Use e.g. parallelism=4.")
        self.sandbox_name = sandbox_name
        self.state = SandboxState(sandbox_name, Path(state_root) if state_root else None)
        self.fixed_ports = dict(ports or {})
        self.parallelism = parallelism
        scale = float(os.environ.get("MLOPS_SANDBOX_TIMEOUT_SCALE", "1") or 1)
        self.timeouts = {k: v * scale for k, v in DEFAULT_TIMEOUTS.items()} | dict(timeouts or {})
        self.dags_folder = Path(dags_folder) if dags_folder else None
        self.progress: ProgressFn = progress or _noop

    # ---------------------------------------------------------------- public API
    def up(self) -> UpResult:
        """Start the stack, or reuse it when every service is already healthy (well under 2 s)."""
        started_at = time.monotonic()
        with self.state.locked():
            saved = self.state.load()
            if saved is not None and saved.services:
                services = self._check(saved)
                if all(s.healthy for s in services) and set(saved.services) >= set(SERVICES):
                    for s in services:
                        self.progress(s.name, "reused", s.url or "")
                    return UpResult(self._endpoints(saved), True, time.monotonic() - started_at, services)
                self._stop(saved)  # a partial or stale stack (e.g. after kill -9): reap, start fresh
            self._reap(saved)
            model = self._start(saved)
            services = self._check(model)
            return UpResult(self._endpoints(model), False, time.monotonic() - started_at, services)

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
            return [ServiceStatus(name, False, "not started") for name in SERVICES]
        return self._check(saved)

    @property
    def endpoints(self) -> Endpoints:
        saved = self.state.load()
        if saved is None or not saved.services:
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} is not running.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        return self._endpoints(saved)

    @property
    def credentials(self) -> Credentials:
        if not self.state.secrets_file.exists():
            raise ServiceError(
                f"Sandbox {self.sandbox_name!r} has no credentials yet.",
                f"Start it: `sandbox up --name {self.sandbox_name}`.",
            )
        s = self.state.read_secrets()
        return Credentials(
            airflow_username=s["AIRFLOW_USERNAME"],
            airflow_password=s["AIRFLOW_PASSWORD"],
            s3_access_key=s["AWS_ACCESS_KEY_ID"],
            s3_secret_key=s["AWS_SECRET_ACCESS_KEY"],
            postgres_user=s["POSTGRES_USER"],
            postgres_password=s["POSTGRES_PASSWORD"],
        )

    def capabilities(self) -> set[str]:
        caps = {"faults"}
        if _gpu_present():
            caps.add("gpu")
        return caps

    def diagnostics(self, dest: Path) -> Path:
        """Copy service logs, Airflow task logs and the state (secrets masked) under ``dest``."""
        bundle = Path(dest) / f"{self.sandbox_name}-{time.strftime('%Y%m%d-%H%M%S')}"
        bundle.mkdir(parents=True, exist_ok=True)
        secrets = self._secret_values()
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
                    target.write_text(proc_mod.redact(path.read_text(errors="replace"), secrets))
        if self.state.state_file.exists():
            (bundle / "state.json").write_text(proc_mod.redact(self.state.state_file.read_text(), secrets))
        with contextlib.suppress(Exception):
            lines = [
                f"{s.name}\t{'healthy' if s.healthy else 'UNHEALTHY'}\t{s.detail}" for s in self.status()
            ]
            (bundle / "status.txt").write_text("\n".join(lines) + "\n")
        return bundle

    def logs_path(self, service: str) -> Path:
        """The log file of ``service``; ConfigError naming the valid ones for a typo."""
        if service not in LOG_NAMES:
            raise ConfigError(f"Unknown service {service!r}.", f"Use one of: {', '.join(LOG_NAMES)}.")
        return self.state.log_file(service)

    # ---------------------------------------------------------------- start
    def _start(self, saved: StateModel | None) -> StateModel:
        from sandbox.envs import ensure_platform_env, env_python

        self.state.ensure_dirs()
        self.progress("environment", "starting", "platform Python environment")
        env_dir = ensure_platform_env()
        self.progress("environment", "ready", str(env_dir))
        python = env_python(env_dir)
        secrets = self.state.load_or_create_secrets()
        ports = self._allocate_ports()
        model = StateModel(
            name=self.sandbox_name,
            platform_env=str(env_dir),
            ports=ports,
            postgres_data=saved.postgres_data if saved else "",
        )
        self.state.save(model)
        base_env = self._base_env(env_dir)
        secret_list = self._secret_values(secrets)

        def launch(spec: ServiceSpec) -> Supervised:
            self.progress(spec.name, "starting", spec.url or "")
            sup = proc_mod.spawn(spec, self.state.marker)
            model.services[spec.name] = sup.record
            self.state.save(model)  # recorded at once, so a kill -9 of the harness can be reaped
            return sup

        try:
            # 1. S3 and Postgres.
            s3 = launch(objectstore.spec(python, self.state, ports["s3"], base_env, self.timeouts["s3"]))
            self.progress("postgres", "starting", "")
            lay = postgres.layout(self.state, env_dir, model.postgres_data)
            model.postgres_data = str(lay.data_dir) if lay.uid is not None else ""
            self.state.save(model)
            pg_user, pg_password = secrets["POSTGRES_USER"], secrets["POSTGRES_PASSWORD"]
            postgres.init_data_dir(lay, pg_user, pg_password)
            pg_spec = postgres.spec(
                lay, self.state, ports["postgres"], pg_password, self.timeouts["postgres"]
            )
            pg = launch(pg_spec)
            ready: set[str] = set()
            self._wait([s3, pg], ready)
            objectstore.create_buckets(
                ports["s3"], secrets["AWS_ACCESS_KEY_ID"], secrets["AWS_SECRET_ACCESS_KEY"]
            )
            self.progress("s3", "ready", f"buckets {objectstore.ARTIFACTS_BUCKET}, {objectstore.DATA_BUCKET}")
            created = postgres.create_databases(lay, ports["postgres"], pg_user, pg_password)
            pg_args = (lay, ports["postgres"], pg_user, pg_password)
            cache = _SchemaCache(env_dir)
            migrated = bool(saved and saved.schema_env == env_dir.name and not created)
            if not migrated and created == set(postgres.DATABASES) and cache.complete():
                migrated = cache.restore(*pg_args)
            self.progress("postgres", "ready", "schema " + ("ready" if migrated else "to migrate"))

            # 2. MLflow (waited for at the end) and, unless the schema is there, `airflow db migrate`.
            mlflow_db = postgres.sqlalchemy_url(ports["postgres"], pg_user, pg_password, "mlflow")
            ml = launch(
                mlflow.spec(
                    python, self.state, ports["mlflow"], mlflow_db, ports["s3"], secrets, base_env,
                    self.timeouts["mlflow"],
                )
            )  # fmt: skip
            airflow_db = postgres.sqlalchemy_url(ports["postgres"], pg_user, pg_password, "airflow")
            af_env = airflow.airflow_env(
                self.state, env_dir, ports, secrets, airflow_db, base_env,
                parallelism=self.parallelism, dags_folder=self.dags_folder,
            )  # fmt: skip
            airflow.write_passwords_file(self.state, secrets)
            if not migrated:
                migrate_spec = airflow.migrate_spec(
                    python, self.state, af_env, self.timeouts["airflow-migrate"], secret_list
                )
                self._wait([ml], ready, until_exit=launch(migrate_spec))
                if created == set(postgres.DATABASES):  # a pristine schema: worth caching
                    cache.save("airflow", postgres.dump_schema(*pg_args, "airflow"))
            model.schema_env = env_dir.name
            self.state.save(model)

            # 3. The four Airflow components, then everything healthy.
            components = [
                launch(
                    airflow.component_spec(
                        c, python, self.state, af_env, ports["airflow"], self.timeouts[f"airflow-{c}"],
                        secret_list,
                    )
                )
                for c in airflow.COMPONENTS
            ]  # fmt: skip
            self._wait([ml, *components], ready)
            if not cache.complete() and created == set(postgres.DATABASES) and cache.has("airflow"):
                cache.save("mlflow", postgres.dump_schema(*pg_args, "mlflow"))
        except BaseException as exc:  # includes KeyboardInterrupt: never leave a half stack behind
            failed = exc.service if isinstance(exc, ServiceFailed) else "sandbox"
            self.progress(failed, "failed", getattr(exc, "what", type(exc).__name__))
            self._rollback(model)
            raise
        return model

    def _wait(self, procs: list[Supervised], ready: set[str], until_exit: Supervised | None = None) -> None:
        """Wait until every one of ``procs`` is ready (and ``until_exit``, a one-shot command such
        as db migrate, has exited 0). One poll loop over all of them, so they start in parallel
        and a Ctrl-C lands at once."""
        pending = [p for p in procs if p.spec.name not in ready]
        while True:
            for sup in list(pending):
                if proc_mod.check(sup, sup.deadline):
                    ready.add(sup.spec.name)
                    pending.remove(sup)
                    self.progress(sup.spec.name, "ready", sup.spec.url or "")
            if until_exit is not None:
                if self._exited_ok(until_exit, until_exit.deadline):
                    self.progress(until_exit.spec.name, "ready", "done")
                    return
            elif not pending:
                return
            time.sleep(0.25)

    @staticmethod
    def _exited_ok(sup: Supervised, deadline: float) -> bool:
        code = sup.popen.poll()
        if code == 0:
            return True
        fix = (
            f"Read its log ({sup.spec.log}) below; a damaged database is reset by `sandbox down --purge`; "
            "on a slow machine set MLOPS_SANDBOX_TIMEOUT_SCALE=2."
        )
        if code is not None:
            what = f"{sup.spec.name} failed with exit code {code}."
        elif time.monotonic() > deadline:
            what = f"{sup.spec.name} did not finish within {sup.spec.timeout:.3g}s."
        else:
            return False
        raise ServiceFailed(
            sup.spec.name, what, fix, detail=proc_mod.log_tail(sup.spec.log, secrets=sup.spec.secrets)
        )

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
        for stage in STOP_STAGES:
            for name in stage:
                if name in model.services:
                    self.progress(name, "stopping", "")
        # Postgres: SIGINT is its "fast" shutdown (SIGTERM would wait for clients to disconnect).
        proc_mod.stop_records(model.services, STOP_STAGES, {"postgres": signal.SIGINT}, STOP_GRACE)

    def _reap(self, model: StateModel | None) -> None:
        """Kill what the records' sessions or the sandbox marker still show (kill -9 leftovers)."""
        leftovers = {p.pid: p for p in proc_mod.marked_processes(self.state.marker)}
        if model is not None:
            leftovers.update({p.pid: p for p in proc_mod.session_members(model.services.values())})
        if leftovers:
            proc_mod.terminate(list(leftovers.values()), timeout=5)

    # ---------------------------------------------------------------- health
    def _check(self, model: StateModel) -> list[ServiceStatus]:
        results: list[ServiceStatus] = []
        ports = model.ports
        airflow_report: dict[str, dict[str, object]] | None = None
        for name in SERVICES:
            record = model.services.get(name)
            if record is None:
                results.append(ServiceStatus(name, False, "not started"))
                continue
            proc = proc_mod.find(record)
            if proc is None:
                results.append(ServiceStatus(name, False, "not running", record.pid, record.url))
                continue
            healthy, detail = False, ""
            try:
                if name == "postgres":
                    healthy = _tcp_open(ports["postgres"])
                    detail = f"{LOOPBACK}:{ports['postgres']}"
                elif name == "s3":
                    healthy = objectstore.buckets_exist(ports["s3"])
                    detail = "buckets present" if healthy else "buckets missing"
                elif name == "mlflow":
                    healthy = mlflow.healthy(ports["mlflow"])
                else:
                    if airflow_report is None:
                        airflow_report = airflow.health(ports["airflow"])
                    component = name.removeprefix("airflow-")
                    key = {"api-server": "metadatabase"}.get(component, component.replace("-", "_"))
                    status = (airflow_report.get(key) or {}).get("status")
                    healthy, detail = status == "healthy", f"{key}: {status}"
            except Exception as exc:
                detail = f"health check failed: {type(exc).__name__}"
            results.append(ServiceStatus(name, healthy, detail, record.pid, record.url))
        return results

    # ---------------------------------------------------------------- helpers
    def _allocate_ports(self) -> dict[str, int]:
        for key, port in self.fixed_ports.items():
            ensure_port_free(port, key)
        auto = [k for k in PORT_KEYS if k not in self.fixed_ports]
        return {**dict(zip(auto, free_ports(len(auto)), strict=True)), **self.fixed_ports}

    def _base_env(self, env_dir: Path) -> dict[str, str]:
        env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
        env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
        env["NO_PROXY"] = env["no_proxy"] = f"{LOOPBACK},localhost"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _secret_values(self, secrets: dict[str, str] | None = None) -> list[str]:
        if secrets is None:
            try:
                secrets = self.state.read_secrets() if self.state.secrets_file.exists() else {}
            except Exception:
                secrets = {}
        keys = (
            "AIRFLOW_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "POSTGRES_PASSWORD",
            "AIRFLOW_JWT_SECRET",
            "AIRFLOW_API_SECRET_KEY",
            "AIRFLOW_FERNET_KEY",
        )
        return [secrets[k] for k in keys if secrets.get(k)]

    def _endpoints(self, model: StateModel) -> Endpoints:
        p = model.ports
        return Endpoints(
            airflow_url=airflow.url(p["airflow"]),
            mlflow_url=mlflow.url(p["mlflow"]),
            s3_url=objectstore.url(p["s3"]),
            data_bucket=objectstore.DATA_BUCKET,
            artifacts_bucket=objectstore.ARTIFACTS_BUCKET,
            postgres_host=LOOPBACK,
            postgres_port=p["postgres"],
            credentials_file=self.state.secrets_file,
            faults_file=self.state.faults_file,
            state_dir=self.state.dir,
        )


class _SchemaCache:
    """Dumps of freshly migrated airflow and mlflow databases, per platform env.

    Restoring them (~1 s) replaces `airflow db migrate` (~7 s) and MLflow's own table creation on
    every later first start. The dumps hold schema and migration rows only: no secrets, no owners.
    """

    def __init__(self, env_dir: Path) -> None:
        from sandbox import paths

        self.dir = paths.cache_root() / "schemas" / env_dir.name

    def has(self, database: str) -> bool:
        return (self.dir / f"{database}.sql").is_file()

    def complete(self) -> bool:
        return all(self.has(db) for db in postgres.DATABASES)

    def save(self, database: str, sql: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{database}.sql.{os.getpid()}"
        tmp.write_text(sql)
        tmp.replace(self.dir / f"{database}.sql")

    def restore(self, lay: postgres.PgLayout, port: int, user: str, password: str) -> bool:
        """Load both dumps; on any error start from empty databases (and drop the bad cache)."""
        try:
            for db in postgres.DATABASES:
                postgres.restore_schema(lay, port, user, password, db, (self.dir / f"{db}.sql").read_text())
            return True
        except (ServiceError, OSError):
            for db in postgres.DATABASES:
                postgres.recreate_database(lay, port, user, password, db)
                with contextlib.suppress(OSError):
                    (self.dir / f"{db}.sql").unlink()
            return False


def _tcp_open(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) == 0


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
