"""``sandbox plan --backend kind [--gpu] [--context CTX]``: print every command and manifest, run nothing."""

from __future__ import annotations

import argparse

from sandbox import cli


def _configure(p: argparse.ArgumentParser) -> None:
    from sandbox import backend_options

    backend_options.add_arguments(p)


def _plan(args: argparse.Namespace) -> int:
    from sandbox import backend_options
    from sandbox.backends.kind.plan import format_plan, plan

    opts = backend_options.from_args("kind", args)
    # Secrets are left out on purpose: the plan shows them as <redacted>.
    print(format_plan(plan(args.name or "default", gpu=bool(opts["gpu"]), kube_context=opts["kube_context"],
                           job_image=opts["job_image"])))  # fmt: skip
    return 0


cli.register(
    cli.Command("plan", "print the kind backend's commands and manifests, running none", _configure, _plan)
)
