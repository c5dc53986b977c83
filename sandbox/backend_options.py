"""The backends' own options, one definition for every command that reaches a backend (``up``, ``down``,
``status``, ``run``, ``plan``) and the pytest plugin: kind's ``--gpu``, ``--context``, ``--job-image``, and
the local backend's ``--task-runtime`` (and ``$MLOPS_SANDBOX_WARM_JOBS``, which has no flag: warm jobs are
the default, and turning them off is for measuring them)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from sandbox.backends.local.runtime import RUNTIMES
from sandbox.errors import ConfigError

GPU_ENV = "MLOPS_SANDBOX_GPU"
CONTEXT_ENV = "MLOPS_SANDBOX_CONTEXT"
JOB_IMAGE_ENV = "MLOPS_SANDBOX_JOB_IMAGE"
TASK_RUNTIME_ENV = "MLOPS_SANDBOX_TASK_RUNTIME"
WARM_JOBS_ENV = "MLOPS_SANDBOX_WARM_JOBS"  # 0/false/no/off: every job a fresh interpreter
TASK_RUNTIMES = RUNTIMES
TASK_RUNTIME_HELP = (
    "local: how the local backend runs the pipeline's jobs: local (subprocesses, the default) or docker "
    f"(the production job image from jobs/Dockerfile, built and run in containers) [${TASK_RUNTIME_ENV}]"
)


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
    p.add_argument("--task-runtime", default=None, choices=TASK_RUNTIMES, help=TASK_RUNTIME_HELP)


def resolve(
    backend: str, *, gpu: bool | None, context: str | None, job_image: str | None,
    task_runtime: str | None = None, environ: Mapping[str, str] | None = None,
) -> dict[str, object]:  # fmt: skip
    """Flags over ``MLOPS_SANDBOX_*``; the backend's keyword options.

    ConfigError when an option is given to a backend it does not apply to (it would be silently ignored)."""
    env = os.environ if environ is None else environ
    if gpu is None:
        gpu = env.get(GPU_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    context = context if context is not None else (env.get(CONTEXT_ENV) or None)
    job_image = job_image if job_image is not None else (env.get(JOB_IMAGE_ENV) or None)
    runtime_flag = task_runtime is not None
    task_runtime = task_runtime if runtime_flag else (env.get(TASK_RUNTIME_ENV, "").strip().lower() or None)
    if task_runtime is not None and task_runtime not in TASK_RUNTIMES:
        raise ConfigError(
            f"${TASK_RUNTIME_ENV}={task_runtime!r} is not a task runtime.",
            f"Use one of: {', '.join(TASK_RUNTIMES)}.",
        )
    given = [name for name, value in (("--gpu", gpu), ("--context", context), ("--job-image", job_image))
             if value]  # fmt: skip
    if backend != "kind":
        if given:
            raise ConfigError(
                f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to the kind backend, "
                f"not {backend!r}.",
                "Add --backend kind (or set MLOPS_SANDBOX_BACKEND=kind), or drop the option.",
            )
        options: dict[str, object] = {"task_runtime": task_runtime} if task_runtime else {}
        if env.get(WARM_JOBS_ENV, "").strip().lower() in ("0", "false", "no", "off"):
            options["warm_jobs"] = False
        return options
    if runtime_flag:
        raise ConfigError(
            "--task-runtime applies only to the local backend (kind always runs the job image in pods).",
            "Drop --task-runtime, or use --backend local.",
        )
    return {"gpu": bool(gpu), "kube_context": context, "job_image": job_image}


def from_args(backend: str, args: argparse.Namespace) -> dict[str, object]:
    """From a command's parsed flags; a command without them (``logs``) falls back to the environment."""
    return resolve(
        backend,
        gpu=getattr(args, "gpu", None),
        context=getattr(args, "context", None),
        job_image=getattr(args, "job_image", None),
        task_runtime=getattr(args, "task_runtime", None),
    )
