"""Airflow cluster policy that only the sandbox's Airflow loads: fail the tries a scenario armed.

Installed as ``airflow_local_settings.py`` (the local backend copies this file to
``$AIRFLOW_HOME/config/``; on kind the Airflow chart's ``airflowLocalSettings`` value carries it), so
neither ``dags/`` nor the job image knows about it. Airflow 3.3 calls ``task_policy`` from
``DagBag.bag_dag`` for every task, both in the dag-processor and in the task runner's own parse before
a try runs (``airflow.sdk.execution_time.task_runner.parse``); the hook it installs runs right before
``execute`` in the task runner, for any operator (``LocalJobOperator`` or ``KubernetesPodOperator``).

A scenario arms faults per DAG run as an Airflow Variable (set through the REST API, so the harness
reaches it on every backend): key ``fault_variable(dag_run_id)``, value a JSON object
``{"faults": [{"task_id": ..., "tries": [...], "message": ...}], "holds": [{"task_id": ..., "try": N}]}``.
A matching try fails with ``injected fault: <message>`` before its job starts and is retried per the
task's ``retries``. A held try waits before its job starts until the harness has put a service fault in
place: it sets the Variable ``hold_variable(...)`` to ``waiting`` and goes on once the harness sets it to
``released`` (or deletes it, or ``timeout`` seconds have passed), so "when the task starts" is exact.

It also hands warm jobs to the local task runtime: where ``$MLOPS_SANDBOX_JOB_LAUNCHER`` holds the
warm job client's argv (a JSON list, set by the local backend when its job server runs), every
``LocalJobOperator`` gets it as its ``launcher`` (``sandbox/platform/warm_jobs.py``).

Standalone on purpose: Airflow imports it without the harness installed (only Airflow is imported,
and only when a task runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from typing import Any

VARIABLE_PREFIX = "mlops_sandbox_faults__"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")
HOLD_WAITING = "waiting"
HOLD_RELEASED = "released"
HOLD_TIMEOUT_S = 300.0
JOB_LAUNCHER_ENV = "MLOPS_SANDBOX_JOB_LAUNCHER"


def fault_variable(dag_run_id: str) -> str:
    """The Variable key holding one DAG run's faults (run ids with other characters are hashed)."""
    if _PLAIN_ID.fullmatch(dag_run_id):
        return VARIABLE_PREFIX + dag_run_id
    return VARIABLE_PREFIX + "sha256_" + hashlib.sha256(dag_run_id.encode()).hexdigest()


def hold_variable(dag_run_id: str, task_id: str, try_number: int) -> str:
    """The Variable a held task try and the harness meet at (task ids are plain: Airflow's rule)."""
    return f"{fault_variable(dag_run_id)}__hold__{task_id}__{try_number}"


def parse_armed(raw: str | None) -> dict[str, list[Any]]:
    """The armed Variable's value as ``{"faults": [...], "holds": [...]}`` (anything unreadable: none)."""
    try:
        value = json.loads(raw) if raw is not None else {}
    except ValueError:
        value = {}
    if isinstance(value, list):  # the earlier form: a list of faults
        value = {"faults": value}
    if not isinstance(value, dict):
        value = {}
    return {k: v if isinstance(v := value.get(k), list) else [] for k in ("faults", "holds")}


def held(holds: Any, task_id: str, try_number: int) -> float | None:
    """The hold's timeout when this task try is held (None when it is not)."""
    for hold in holds if isinstance(holds, list) else []:
        if isinstance(hold, dict) and hold.get("task_id") == task_id and hold.get("try") == try_number:
            timeout = hold.get("timeout", HOLD_TIMEOUT_S)
            return float(timeout) if isinstance(timeout, int | float) else HOLD_TIMEOUT_S
    return None


def armed_message(faults: Any, task_id: str, try_number: int) -> str | None:
    """The message of the fault armed for this task try (None when there is none)."""
    for fault in faults if isinstance(faults, list) else []:
        if (
            isinstance(fault, dict)
            and fault.get("task_id") == task_id
            and try_number in (fault.get("tries") or [])
        ):
            return str(fault.get("message") or "fault armed by the sandbox")
    return None


def _wait_for_release(task: Any, key: str, timeout: float) -> None:
    from airflow.sdk import Variable

    if Variable.get(key, default=None) == HOLD_RELEASED:
        return
    Variable.set(key, HOLD_WAITING)
    task.log.info("mlops-sandbox: held before the job starts until the scenario's fault is in place")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Variable.get(key, default=None) != HOLD_WAITING:  # released, or deleted by the harness
            task.log.info("mlops-sandbox: released")
            return
        time.sleep(0.25)
    task.log.warning("mlops-sandbox: not released within %.0fs: going on", timeout)


def _before_execute(task: Any, context: Any) -> None:
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowException

    ti = context["ti"]
    raw = Variable.get(fault_variable(context["run_id"]), default=None)
    if raw is None:
        return
    armed = parse_armed(raw)
    timeout = held(armed["holds"], ti.task_id, ti.try_number)
    if timeout is not None:
        _wait_for_release(task, hold_variable(context["run_id"], ti.task_id, ti.try_number), timeout)
    message = armed_message(armed["faults"], ti.task_id, ti.try_number)
    if message is not None:
        raise AirflowException(f"injected fault: {message}")


def job_launcher(environ: Any = os.environ) -> list[str]:
    """The warm job client's argv from ``$MLOPS_SANDBOX_JOB_LAUNCHER`` (empty: none, or unreadable)."""
    try:
        launcher = json.loads(environ.get(JOB_LAUNCHER_ENV) or "[]")
    except ValueError:
        return []
    return launcher if isinstance(launcher, list) and all(isinstance(a, str) for a in launcher) else []


def task_policy(task: Any) -> None:
    """Hold and fail armed tries right before ``execute``, then run the task's own ``pre_execute``;
    give a ``LocalJobOperator`` the warm job launcher when the sandbox runs a job server."""
    if type(task).__name__ == "LocalJobOperator" and hasattr(task, "launcher"):
        launcher = job_launcher()
        if launcher:
            task.launcher = launcher
    if getattr(task, "_mlops_sandbox_faults", False):
        return  # a task object parsed twice in one process keeps one hook
    own = task.pre_execute

    def pre_execute(context: Any) -> None:
        _before_execute(task, context)
        own(context)

    task.pre_execute = pre_execute
    task._mlops_sandbox_faults = True
