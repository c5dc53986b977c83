"""The ``job-image`` step of the ``docker`` task runtime: ``jobs/Dockerfile`` built under its content-hash
tag (``python -m sandbox.images build``, output in ``logs/job-image.log``), skipped when the engine has it.

It needs nothing else and nothing waits for it but ``up`` itself: Airflow starts meanwhile, and the first
task runs after ``up`` has returned.
"""

from __future__ import annotations

import sys

from sandbox.backends.local.process import ServiceSpec
from sandbox.backends.local.service import Service, StackContext
from sandbox.images.build import stand_in_note
from sandbox.images.engine import present

NAME = "job-image"


def _detail(ctx: StackContext, verb: str) -> str:
    note = stand_in_note(ctx.runtime.docker, ctx.runtime.image)
    return f"{ctx.runtime.image} {verb}" + (f"; {note}" if note else "")


class JobImage(Service):
    name = NAME
    oneshot = True

    def done(self, ctx: StackContext) -> str | None:
        return _detail(ctx, "already built") if present(ctx.runtime.docker, ctx.runtime.image) else None

    def spec(self, ctx: StackContext) -> ServiceSpec:
        return ServiceSpec(
            name=self.name,
            argv=[sys.executable, "-m", "sandbox.images", "build", str(ctx.jobs_folder), ctx.runtime.image],
            env={**ctx.process_env(), "DOCKER_HOST": ctx.runtime.docker_host},
            log=ctx.state.log_file(self.name),
            timeout=self.timeout(ctx),
            cwd=ctx.state.dir,
            oneshot=True,
        )

    def provision(self, ctx: StackContext) -> str:
        return _detail(ctx, "built")
