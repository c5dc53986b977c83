"""Arming faults for a DAG run: an Airflow Variable per run, read by the sandbox's cluster policy.

The policy (``sandbox/platform/airflow_local_settings.py``) runs inside Airflow's task runner on both
backends and fails an armed try before ``execute`` with ``injected fault: <message>``. Faults are keyed
by ``dag_run_id`` (chosen by the runner before it triggers), so scenarios running in parallel on one
stack never see each other's faults, and arming is one REST call with no shared file to lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from sandbox.platform.airflow_local_settings import fault_variable
from sandbox.scenarios.model import Fault


class VariableStore(Protocol):
    """What arming needs from the Airflow client."""

    def set_variable(self, key: str, value: str, description: str = "") -> None: ...

    def delete_variable(self, key: str) -> None: ...


def payload(faults: list[Fault]) -> list[dict[str, Any]]:
    """The Variable's value: what the policy matches a task try against."""
    return [{"task_id": f.task, "tries": list(f.tries), "message": f.message} for f in faults]


def arm(store: VariableStore, dag_run_id: str, faults: list[Fault]) -> None:
    """Arm ``faults`` for one DAG run (replacing any armed earlier for it)."""
    if faults:
        store.set_variable(
            fault_variable(dag_run_id),
            json.dumps(payload(faults)),
            f"faults armed by mlops-sandbox for DAG run {dag_run_id}",
        )


def disarm(store: VariableStore, dag_run_id: str) -> None:
    """Remove every fault of one DAG run."""
    store.delete_variable(fault_variable(dag_run_id))


@contextmanager
def armed(store: VariableStore, dag_run_id: str, faults: list[Fault]) -> Iterator[None]:
    """Faults armed for the duration of a DAG run, disarmed however it ends."""
    arm(store, dag_run_id, faults)
    try:
        yield
    finally:
        if faults:
            disarm(store, dag_run_id)
