"""``sandbox plan --backend kind [--gpu] [--context CTX]``: print every command and manifest, run nothing."""

from __future__ import annotations

import argparse

from sandbox.scenarios.cli import _cli


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", action="store_true", help="plan a GPU cluster (nvkind mounts, device plugin)")
    p.add_argument("--context", default=None, help="target an existing cluster by kube context")


def _plan(args: argparse.Namespace) -> int:
    from sandbox.backends.kind.plan import format_plan, plan

    # Secrets are left out on purpose: the plan shows them as <redacted>.
    print(format_plan(plan(args.name or "default", gpu=args.gpu, kube_context=args.context)))
    return 0


cli = _cli()
cli.register(
    cli.Command("plan", "print the kind backend's commands and manifests, running none", _configure, _plan)
)
