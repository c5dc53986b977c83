"""The kind backend's options (``--gpu``, ``--context``, ``--job-image``), one definition for every
command that reaches a backend (``up``, ``down``, ``status``, ``run``, ``plan``) and the pytest plugin."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from sandbox.errors import ConfigError

GPU_ENV = "MLOPS_SANDBOX_GPU"
CONTEXT_ENV = "MLOPS_SANDBOX_CONTEXT"
JOB_IMAGE_ENV = "MLOPS_SANDBOX_JOB_IMAGE"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gpu",
        action="store_true",
        default=None,
        help=f"kind: a GPU cluster (nvkind node setup, device plugin, GPU overlay) [${GPU_ENV}]",
    )
    p.add_argument(
        "--context",
        default=None,
        metavar="CTX",
        help=f"kind: use an existing cluster by kube context instead of creating one [${CONTEXT_ENV}]",
    )
    p.add_argument(
        "--job-image",
        default=None,
        metavar="IMAGE",
        help=f"kind: a job image the cluster can pull (with --context) [${JOB_IMAGE_ENV}]",
    )


def resolve(
    backend: str, *, gpu: bool | None, context: str | None, job_image: str | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, object]:  # fmt: skip
    """Flags over ``MLOPS_SANDBOX_*``; the kind backend's keyword options, ``{}`` for local.

    ConfigError when a kind-only option is given to another backend (it would be silently ignored)."""
    env = os.environ if environ is None else environ
    if gpu is None:
        gpu = env.get(GPU_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    context = context if context is not None else (env.get(CONTEXT_ENV) or None)
    job_image = job_image if job_image is not None else (env.get(JOB_IMAGE_ENV) or None)
    given = [name for name, value in (("--gpu", gpu), ("--context", context), ("--job-image", job_image))
             if value]  # fmt: skip
    if backend != "kind":
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to the kind backend, "
                f"not {backend!r}.",
                "Add --backend kind (or set MLOPS_SANDBOX_BACKEND=kind), or drop the option.",
            )
        return {}
    return {"gpu": bool(gpu), "kube_context": context, "job_image": job_image}


def from_args(backend: str, args: argparse.Namespace) -> dict[str, object]:
    """From a command's parsed flags; a command without them (``logs``) falls back to the environment."""
    return resolve(
        backend,
        gpu=getattr(args, "gpu", None),
        context=getattr(args, "context", None),
        job_image=getattr(args, "job_image", None),
    )
