"""``sandbox`` command line: up | status | logs | down (and run, registered by the scenario work).

Subcommands live in the ``COMMANDS`` registry: a module adds one with ``register(Command(...))``
(``run`` is meant to be added that way). ``main()`` returns an exit code: 0 ok, 1 unhealthy,
2 a SandboxError (printed as one paragraph with its fix), 3 no sandbox of that name (status, logs),
130 interrupted.

Output meant for pipes stays plain: log lines are written as they are (never wrapped or cut), and
``up`` prints one progress line per step when stdout is not a terminal (a live table when it is).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from sandbox import backend_options
from sandbox.config import load_settings
from sandbox.errors import ConfigError, SandboxError
from sandbox.stack import Backend, backend_names, get_backend

# soft_wrap: a message is never broken into lines at the console width (a path or URL cut in two).
console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)
NO_SUCH_SANDBOX = 3


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(command: Command) -> None:
    """Add (or replace) a subcommand."""
    COMMANDS[command.name] = command


def _backend(args: argparse.Namespace, **options: object) -> Backend:
    settings = load_settings(name=args.name, backend=args.backend)
    options = {**backend_options.from_args(settings.backend, args), **options}
    return get_backend(settings.backend, settings.name, **options)


def _out(text: str) -> None:
    """Write text to stdout as it is: no markup, no wrapping at the console width, no cutting."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def _missing(backend: Backend) -> bool:
    """Say so (exit code 3) when no sandbox of that name exists, rather than show a stopped one."""
    if backend.exists():
        return False
    what = f"no {backend.name} sandbox named {backend.sandbox_name!r} exists."
    err_console.print(Text.assemble(("error: ", "bold red"), what))
    err_console.print(
        Text.assemble(("fix: ", "bold"), f"check --name (or $MLOPS_SANDBOX_NAME); "
                      f"`sandbox up --name {backend.sandbox_name}` creates it.")
    )  # fmt: skip
    return True


# --------------------------------------------------------------------------- up
class _UpDisplay:
    """A live table: one row per service, its state and how long it took."""

    _ICONS = {"starting": "[yellow]starting[/]", "ready": "[green]ready[/]", "reused": "[green]reused[/]",
              "failed": "[red]failed[/]", "stopping": "[dim]stopping[/]"}  # fmt: skip

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, float, float | None]] = {}
        self.start = time.monotonic()
        self.live: Live | None = None

    def __call__(self, service: str, event: str, detail: str) -> None:
        now = time.monotonic()
        began = self.rows[service][2] if service in self.rows else now  # first event starts the clock
        done = now if event in ("ready", "reused", "failed") else None
        self.rows[service] = (event, detail, began, done)
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2))
        table.add_column("service")
        table.add_column("state")
        table.add_column("time", justify="right")
        table.add_column("detail", overflow="fold")
        for service, (event, detail, began, done) in self.rows.items():
            took = (done or time.monotonic()) - began
            table.add_row(service, self._ICONS.get(event, event), f"{took:5.1f}s", detail)
        return table


class _PlainProgress:
    """One plain line per step, printed as it happens (stdout is a pipe or a file, not a terminal)."""

    def __init__(self) -> None:
        self.began: dict[str, float] = {}

    def __call__(self, service: str, event: str, detail: str) -> None:
        now = time.monotonic()
        began = self.began.setdefault(service, now)
        took = f" in {now - began:.1f}s" if event in ("ready", "reused", "failed") else ""
        _out(f"{service}: {event}{took}" + (f" ({detail})" if detail else ""))


def _endpoint_rows(backend: Backend) -> list[tuple[str, str]]:
    ep = backend.endpoints
    rows = [
        ("Airflow UI / API", ep.airflow_url),
        ("MLflow UI", ep.mlflow_url),
        ("S3", f"{ep.s3_url}  (buckets: {ep.data_bucket}, {ep.artifacts_bucket})"),
    ]
    postgres = getattr(backend, "postgres_address", None)  # the local backend's own database
    if postgres:
        rows.append(("Postgres", f"{postgres[0]}:{postgres[1]}  (databases airflow, mlflow)"))
    if ep.credentials_file:
        user = backend.credentials.airflow_username
        rows.append(("credentials", f"{ep.credentials_file} (mode 0600; Airflow user {user!r})"))
    return rows


def _endpoints_table(backend: Backend) -> Table:
    table = Table(title="endpoints", show_header=False, box=None, padding=(0, 2), title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in _endpoint_rows(backend):
        table.add_row(name, value)
    return table


def _cmd_up(args: argparse.Namespace) -> int:
    live = console.is_terminal
    display = _UpDisplay() if live else _PlainProgress()
    settings = load_settings(name=args.name, backend=args.backend)
    options: dict[str, object] = {"progress": display} if settings.backend == "local" else {}
    options.update(backend_options.from_args(settings.backend, args))
    backend = get_backend(settings.backend, settings.name, **options)
    if isinstance(display, _UpDisplay):
        with Live(display.render(), console=console, refresh_per_second=8, transient=False) as progress:
            display.live = progress
            result = backend.up()
        console.line()
    else:
        result = backend.up()
    verb = "reused a healthy stack" if result.reused else "started"
    summary = f"Sandbox {backend.sandbox_name} ({backend.name}): {verb} in {result.seconds:.1f}s"
    if not live:
        _out(summary)
        for name, value in _endpoint_rows(backend):
            _out(f"{name}: {value}")
        return 0
    console.print(summary.replace(backend.sandbox_name, f"[bold]{backend.sandbox_name}[/]", 1))
    console.print(_endpoints_table(backend))
    return 0


def _cfg_up(p: argparse.ArgumentParser) -> None:
    p.epilog = "Starts Postgres, S3 (moto), MLflow and Airflow on 127.0.0.1, or reuses a healthy stack."
    backend_options.add_arguments(p)


# --------------------------------------------------------------------------- status
def _cmd_status(args: argparse.Namespace) -> int:
    backend = _backend(args)
    if _missing(backend):
        return NO_SUCH_SANDBOX
    services = backend.status()
    table = Table(box=None, padding=(0, 2), header_style="bold")
    for column in ("service", "health", "pid", "detail"):
        table.add_column(column)
    for s in services:
        health = "[green]healthy[/]" if s.healthy else "[red]unhealthy[/]"
        table.add_row(s.name, health, str(s.pid or "-"), s.url or s.detail)
    console.print(f"Sandbox [bold]{backend.sandbox_name}[/] ({backend.name})")
    console.print(table)
    return 0 if services and all(s.healthy for s in services) else 1


# --------------------------------------------------------------------------- logs
def _cmd_logs(args: argparse.Namespace) -> int:
    backend = _backend(args)
    logs_path = getattr(backend, "logs_path", None)
    if logs_path is None:
        raise ConfigError(
            f"`sandbox logs` is not available for the {backend.name} backend.",
            "Use `sandbox status` and the diagnostics bundle instead.",
        )
    from sandbox.backends.local.backend import SERVICES
    from sandbox.backends.local.process import log_tail

    names = [args.service] if args.service else list(SERVICES)
    files = {name: logs_path(name) for name in names}
    if _missing(backend):
        return NO_SUCH_SANDBOX
    redact = backend.secrets.redactor()  # type: ignore[attr-defined]  # logs_path: the local backend
    # Raw writes: a console would wrap long lines (at 80 columns when piped) and cut URLs in two.
    for name, path in files.items():
        if len(files) > 1:
            _out(f"==> {name} <==")
        _out(redact(log_tail(path, args.lines)))
    if not args.follow:
        return 0
    offsets = {name: path.stat().st_size if path.exists() else 0 for name, path in files.items()}
    try:
        while True:
            for name, path in files.items():
                if not path.exists():
                    continue
                with open(path, "rb") as handle:
                    handle.seek(offsets[name])
                    chunk = handle.read()
                    offsets[name] = handle.tell()
                if chunk:
                    prefix = f"{name} | " if len(files) > 1 else ""
                    for line in redact(chunk.decode("utf-8", "replace")).splitlines():
                        _out(prefix + line)
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0


def _cfg_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", nargs="?", help="one service (default: all), e.g. mlflow, airflow-scheduler")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C stops)")
    p.add_argument("-n", "--lines", type=int, default=40, help="lines of history per log (default 40)")


# --------------------------------------------------------------------------- down
def _cmd_down(args: argparse.Namespace) -> int:
    backend = _backend(args)
    backend.down(purge=args.purge)
    what = "stopped and deleted its state" if args.purge else "stopped (state kept; --purge deletes it)"
    console.print(f"Sandbox [bold]{backend.sandbox_name}[/]: {what}.")
    return 0


def _cfg_down(p: argparse.ArgumentParser) -> None:
    p.add_argument("--purge", action="store_true", help="also delete state, data, logs and secrets")
    backend_options.add_arguments(p)


def _no_options(_p: argparse.ArgumentParser) -> None:
    return None


register(Command("up", "start the platform (or reuse a healthy one)", _cfg_up, _cmd_up))
register(Command("status", "health of each service", backend_options.add_arguments, _cmd_status))
register(Command("logs", "show (and follow) service logs", _cfg_logs, _cmd_logs))
register(Command("down", "stop the platform", _cfg_down, _cmd_down))
# Modules that register more subcommands when imported (`run` for the scenario suites lives in
# sandbox/scenarios/cli.py and calls register(Command("run", ...))). A missing module is skipped.
PLUGIN_MODULES: tuple[str, ...] = (
    "sandbox.scenarios.cli",
    "sandbox.backends.kind.cli",
    "sandbox.reproduce.cli",
)


def _load_plugins() -> None:
    import importlib

    for module in PLUGIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the module exists but one of its imports is missing: surface it
                raise


def build_parser() -> argparse.ArgumentParser:
    _load_plugins()
    parser = argparse.ArgumentParser(
        prog="sandbox", description="Local sandbox for the Airflow + MLflow platform."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.add_argument(
            "--name", default=None, help="sandbox name (default: $MLOPS_SANDBOX_NAME or 'default')"
        )
        p.add_argument("--backend", default=None, choices=backend_names(),
                       help="local (default) or kind; $MLOPS_SANDBOX_BACKEND")  # fmt: skip
        command.configure(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args))
    except SandboxError as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), exc.what))
        if exc.fix:
            err_console.print(Text.assemble(("fix: ", "bold"), exc.fix))
        if exc.detail:
            err_console.print(exc.detail, markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted: everything this command started was stopped.")
        return 130


if __name__ == "__main__":
    # `python -m sandbox.cli` runs this file as __main__, a second copy of the module: run the imported
    # `sandbox.cli` instead, the one plugin modules register their subcommands into.
    from sandbox.cli import main as registered_main

    sys.exit(registered_main())
