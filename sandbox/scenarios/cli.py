"""``sandbox run [PATHS...] [--keep] [-k EXPR] [--pytest-args ARGS]``: the scenario suites through pytest.

Registered into ``sandbox.cli`` when that module builds its parser (its ``PLUGIN_MODULES``).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from types import ModuleType


def _cli() -> ModuleType:
    # Under `python -m sandbox.cli` the running module is __main__, not sandbox.cli: register there.
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if main is not None and spec is not None and spec.name == "sandbox.cli":
        return main
    import sandbox.cli

    return sandbox.cli


def _configure(p: argparse.ArgumentParser) -> None:
    from sandbox import backend_options

    backend_options.add_arguments(p)
    p.add_argument("paths", nargs="*", help="scenario files or folders (default: scenarios/)")
    p.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    p.add_argument(
        "-k", dest="keyword", default=None, help="only scenarios matching this pytest -k expression"
    )
    p.add_argument(
        "--pytest-args", default="", help="extra pytest arguments, quoted (e.g. '-x --junitxml=r.xml')"
    )


def _run(args: argparse.Namespace) -> int:
    from sandbox import backend_options
    from sandbox.config import load_settings
    from sandbox.scenarios.runner import run_scenarios

    settings = load_settings(name=args.name, backend=args.backend)
    kind = backend_options.from_args(settings.backend, args)  # ConfigError for kind options on local
    extra = shlex.split(args.pytest_args) + (["-k", args.keyword] if args.keyword else [])
    extra += (["--gpu"] if kind.get("gpu") else []) + (["--context", str(kind["kube_context"])]
                                                       if kind.get("kube_context") else [])
    extra += ["--job-image", str(kind["job_image"])] if kind.get("job_image") else []
    return run_scenarios(args.paths or None, settings.backend, settings.name, args.keep, extra)


cli = _cli()
cli.register(cli.Command("run", "run scenario suites (pytest) against the sandbox", _configure, _run))
