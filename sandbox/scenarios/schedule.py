"""A scenario's run made by the scheduler from the DAG's own schedule (``trigger: schedule``).

A sandbox runs only what is triggered: the Airflow overlay turns the scheduler's cron schedules off
(``[scheduler] use_job_schedule: false``). Such a scenario turns them on for itself (the backend restarts
the scheduler: ``sandbox.stack.Schedules``), takes the run the scheduler makes, and turns them off once
that run has ended. The schedule is production's: with ``catchup=False`` the scheduler makes the run of
the latest interval, once. So that the scenario can run again in the same sandbox, the scheduled run an
earlier scenario left for that interval is deleted first and the DAG file parsed again: the
dag-processor then finds the interval due once more.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from sandbox.clients.airflow import AirflowClient, Schedule

SCHEDULED_PREFIX = "scheduled__"  # Airflow's run id for the runs its scheduler makes
REWIND_TIMEOUT_S = 60.0
POLL_S = 0.5


class ScheduleError(Exception):
    """The schedule cannot make this scenario's run: what and why, and what to do."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _due(schedule: Schedule) -> bool:
    after = schedule.next_run_after
    return after is not None and after <= datetime.now(UTC)


def rewind(airflow: AirflowClient, dag_id: str, progress: Callable[[str], None]) -> Schedule:
    """Make the DAG's latest interval due (see the module's docstring); returns its schedule."""
    schedule = airflow.schedule(dag_id)
    if schedule.next_run_after is None:
        raise ScheduleError(
            f"DAG {dag_id!r} has no next scheduled run: it has no time-based schedule",
            "use 'trigger: api' for a DAG without a schedule (or one that runs on assets)",
        )
    if _due(schedule):
        return schedule
    earlier = airflow.dag_run_ids(dag_id, containing=SCHEDULED_PREFIX, limit=1)
    if not earlier:
        raise ScheduleError(
            f"DAG {dag_id!r}'s next scheduled run is due at {schedule.next_run_after:%Y-%m-%d %H:%M} UTC, "
            "and no earlier scheduled run holds the latest interval",
            "raise the scenario's timeout to wait for it, or use 'trigger: api'",
        )
    state = airflow.dag_run_state(dag_id, earlier[0])
    if state not in ("success", "failed"):
        raise ScheduleError(
            f"the scheduled run {earlier[0]} of DAG {dag_id!r} is still {state}",
            "let it end (or mark it failed in the Airflow UI), then run the scenario again",
        )
    progress(f"deleting the earlier scheduled run {earlier[0]} so that its interval is due again")
    airflow.delete_dag_run(dag_id, earlier[0])
    airflow.reparse(schedule.file_token)
    deadline = time.monotonic() + REWIND_TIMEOUT_S
    while not _due(schedule := airflow.schedule(dag_id)):
        if time.monotonic() > deadline:
            raise ScheduleError(
                f"DAG {dag_id!r}'s next scheduled run stayed at {schedule.next_run_after} after "
                f"{REWIND_TIMEOUT_S:.0f}s of parsing it again",
                "check the dag-processor log (`sandbox logs airflow-dag-processor`)",
            )
        time.sleep(POLL_S)
    return schedule


def scheduled_runs(airflow: AirflowClient, dag_id: str) -> set[str]:
    return set(airflow.dag_run_ids(dag_id, containing=SCHEDULED_PREFIX))


def await_new_run(
    airflow: AirflowClient, dag_id: str, before: set[str], deadline: float, check: Callable[[], None]
) -> str:
    """The id of the scheduled run that is not in ``before``, once the scheduler has made it."""
    while True:
        new = scheduled_runs(airflow, dag_id) - before
        if new:
            return sorted(new)[-1]
        if time.monotonic() > deadline:
            raise ScheduleError(
                f"the scheduler made no scheduled run of DAG {dag_id!r} before the scenario's timeout",
                "check the scheduler log (`sandbox logs airflow-scheduler`): is the DAG paused?",
            )
        check()
        time.sleep(POLL_S)
