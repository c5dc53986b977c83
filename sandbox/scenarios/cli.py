"""``sandbox run`` (the scenario suites through pytest) and ``sandbox validate`` (the files alone).

Registered into ``sandbox.cli`` when that module builds its parser (its ``PLUGIN_MODULES``).

Exit codes of ``run``: pytest's (0 passed, 1 a scenario failed, 2 a file is invalid or the run was
interrupted, 5 no scenario file in the given paths). Exit codes of ``validate``: 0 every file is
valid, 1 a file is invalid, 2 a path does not exist, 5 no scenario file in the given paths.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from sandbox import cli, paths
from sandbox.errors import ConfigError

NO_SCENARIOS = 5  # as pytest's "no tests collected"
WHAT_IS_A_SCENARIO = (
    "a scenario file is a .yaml/.yml file with the top-level line 'apiVersion: mlops-sandbox/v1' "
    "(a file named on the command line is always taken as one)"
)



def scenario_files(targets: list[str]) -> list[Path]:
    """The scenario files the paths name (see ``loader.discover``); ConfigError for a missing path."""
    from sandbox.scenarios.loader import discover

    found: list[Path] = []
    for target in targets:
        path = Path(target)
        if not path.exists():
            raise ConfigError(f"{target}: no such file or folder.", "Check the path.")
        found += [p for p in discover(path) if p not in found]
    return found


def _no_scenarios(targets: list[str]) -> int:
    cli.err_console.print(f"[bold red]error:[/] no scenario files in {', '.join(targets)}", highlight=False)
    cli.err_console.print(f"[bold]fix:[/] name the files or their folder; {WHAT_IS_A_SCENARIO}.")
    return NO_SCENARIOS


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of scenarios >= 1, got {text!r}")
    return int(text)


def _configure(p: argparse.ArgumentParser) -> None:
    from sandbox import backend_options

    backend_options.add_arguments(p)
    p.add_argument("paths", nargs="*", help="scenario files or folders (default: scenarios/)")
    p.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p.add_argument(
        "-k", dest="keyword", default=None, help="only scenarios matching this pytest -k expression"
    )
    p.add_argument(
        "-n",
        "--parallel",
        type=_workers,
        default=None,
        metavar="N",
        help="run up to N scenarios at once on the one stack (default 1); 'exclusive: true' ones run alone",
    )
    p.add_argument(
        "--pytest-args", default="", help="extra pytest arguments, quoted (e.g. '-x --junitxml=r.xml')"
    )
    p.epilog = "Exit codes: pytest's (0 passed, 1 failed, 2 invalid file or interrupted, 5 no scenarios)."


def _run(args: argparse.Namespace) -> int:
    from sandbox import backend_options
    from sandbox.config import load_settings
    from sandbox.scenarios.runner import run_scenarios

    targets = args.paths or [str(paths.SCENARIOS_DIR)]
    if not scenario_files(targets):
        return _no_scenarios(targets)
    settings = load_settings(name=args.name, backend=args.backend)
    kind = backend_options.from_args(settings.backend, args)  # ConfigError for kind options on local
    extra = shlex.split(args.pytest_args) + (["-k", args.keyword] if args.keyword else [])
    extra += (["--gpu"] if kind.get("gpu") else []) + (["--context", str(kind["kube_context"])]
                                                       if kind.get("kube_context") else [])
    extra += ["--job-image", str(kind["job_image"])] if kind.get("job_image") else []
    extra += ["--task-runtime", str(kind["task_runtime"])] if kind.get("task_runtime") else []  # local's
    extra += ["--parallel", str(args.parallel)] if args.parallel else []
    return run_scenarios(targets, settings.backend, settings.name, args.keep, extra)


def _configure_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", help="scenario files or folders (default: scenarios/)")
    p.add_argument(
        "--marked-only",
        action="store_true",
        help="skip named files that do not declare 'apiVersion: mlops-sandbox/...' (for pre-commit, "
        "which passes every changed YAML file)",
    )
    p.epilog = (
        "Checks scenario files (YAML, schema, the DAGs in dags/) without starting anything. "
        "Exit codes: 0 all valid, 1 a file is invalid, 2 a path does not exist, 5 no scenario files."
    )


def _validate(args: argparse.Namespace) -> int:
    from sandbox.scenarios.loader import ScenarioLoadError, is_scenario_file, load_all

    targets = args.paths or [str(paths.SCENARIOS_DIR)]
    files = scenario_files(targets)
    if args.marked_only:
        files = [f for f in files if is_scenario_file(f)]
        if not files:
            return 0
    if not files:
        return _no_scenarios(targets)
    try:
        load_all(files)
    except ScenarioLoadError as exc:
        for issue in exc.issues:
            print(issue)  # plain lines: file:line: field: message; fix: ... (editors and CI parse them)
        bad = len({i.file for i in exc.issues})
        print(f"{bad} of {len(files)} scenario file(s) invalid", file=sys.stderr)
        return 1
    print(f"{len(files)} scenario file(s) valid")
    return 0


cli.register(cli.Command("run", "run scenario suites (pytest) against the sandbox", _configure, _run))
cli.register(
    cli.Command("validate", "check scenario files without starting anything", _configure_validate, _validate)
)
