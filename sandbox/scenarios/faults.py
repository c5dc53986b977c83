"""Arming faults for a DAG run: an Airflow Variable per run, read by the sandbox's cluster policy.

The policy (``sandbox/platform/airflow_local_settings.py``) runs inside Airflow's task runner on both
backends and fails an armed try before ``execute`` with ``injected fault: <message>``, or holds it there
until a service fault is in place (``holds``: task tries whose start is a service fault's point). Faults
are keyed by ``dag_run_id`` (chosen by the runner before it triggers), so scenarios running in parallel
on one stack never see each other's faults, and arming is one REST call with no shared file to lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from sandbox.platform.airflow_local_settings import (
    HOLD_RELEASED,
    HOLD_TIMEOUT_S,
    HOLD_WAITING,
    fault_variable,
    hold_variable,
)
from sandbox.scenarios.model import Fault

Hold = tuple[str, int]  # (task id, try number) held before its job starts


class VariableStore(Protocol):
    """What arming needs from the Airflow client."""

    def set_variable(self, key: str, value: str, description: str = "") -> None: ...

    def delete_variable(self, key: str) -> None: ...


def payload(faults: list[Fault], holds: Iterable[Hold] = ()) -> dict[str, list[dict[str, Any]]]:
    """The Variable's value: what the policy matches a task try against."""
    return {
        "faults": [{"task_id": f.task, "tries": list(f.tries), "message": f.message} for f in faults],
        "holds": [{"task_id": t, "try": n, "timeout": HOLD_TIMEOUT_S} for t, n in sorted(set(holds))],
    }


def arm(store: VariableStore, dag_run_id: str, faults: list[Fault], holds: Iterable[Hold] = ()) -> bool:
    """Arm ``faults`` and ``holds`` for one DAG run (replacing any armed earlier for it); False when there
    is nothing to arm (no call made)."""
    holds = list(holds)
    if not faults and not holds:
        return False
    store.set_variable(
        fault_variable(dag_run_id),
        json.dumps(payload(faults, holds)),
        f"faults armed by mlops-sandbox for DAG run {dag_run_id}",
    )
    return True


def disarm(store: VariableStore, dag_run_id: str, holds: Iterable[Hold] = ()) -> None:
    """Remove every fault of one DAG run (and its holds: a try still held goes on)."""
    store.delete_variable(fault_variable(dag_run_id))
    for task_id, try_number in holds:
        store.delete_variable(hold_variable(dag_run_id, task_id, try_number))


def hold_reached(store: Any, dag_run_id: str, hold: Hold) -> bool:
    """Whether the held try is waiting (``store.get_variable``)."""
    return bool(store.get_variable(hold_variable(dag_run_id, *hold)) == HOLD_WAITING)


def release(store: VariableStore, dag_run_id: str, hold: Hold) -> None:
    store.set_variable(hold_variable(dag_run_id, *hold), HOLD_RELEASED, "released by mlops-sandbox")


@contextmanager
def armed(
    store: VariableStore, dag_run_id: str, faults: list[Fault], holds: Iterable[Hold] = ()
) -> Iterator[None]:
    """Faults armed for the duration of a DAG run, disarmed however it ends."""
    holds = list(holds)
    if not arm(store, dag_run_id, faults, holds):
        yield
        return
    try:
        yield
    finally:
        disarm(store, dag_run_id, holds)
