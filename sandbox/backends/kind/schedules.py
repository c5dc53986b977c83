"""The DAGs' schedules on kind (``sandbox.stack.Schedules``): an environment variable on the scheduler's
container, set and removed with ``kubectl set env``, then the rollout awaited.

The variable overrides the overlay's ``[scheduler] use_job_schedule: false`` in the chart's airflow.cfg.
Its container is ``scheduler`` in the official chart's scheduler Deployment. ``helm upgrade`` keeps a
variable set this way (it patches only what its manifests change), so ``up`` removes it every time: a
harness killed during a ``trigger: schedule`` scenario leaves none behind.
"""

from __future__ import annotations

from sandbox.backends.kind.faults import NAMESPACE, ROLLOUT_TIMEOUT, WORKLOADS
from sandbox.backends.kind.plan import Step
from sandbox.stack import USE_JOB_SCHEDULE_ENV

SERVICE = "airflow-scheduler"
CONTAINER = "scheduler"


def steps(kubectl: str, context: str, on: bool) -> list[Step]:
    """The commands that turn the schedules on (or off) and wait for the scheduler's new pod."""
    kind, name = WORKLOADS[SERVICE]
    base = (kubectl, "--context", context, "--namespace", NAMESPACE)
    env = f"{USE_JOB_SCHEDULE_ENV}=True" if on else f"{USE_JOB_SCHEDULE_ENV}-"
    word = "on" if on else "off"
    return [
        Step("schedules", f"schedules {word}",
             (*base, "set", "env", f"{kind}/{name}", f"--containers={CONTAINER}", env)),
        Step(f"ready:{SERVICE}", f"wait for {SERVICE}",
             (*base, "rollout", "status", f"{kind}/{name}", f"--timeout={ROLLOUT_TIMEOUT}")),
    ]  # fmt: skip
