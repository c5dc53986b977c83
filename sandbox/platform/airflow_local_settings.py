"""Airflow cluster policy that only the sandbox's Airflow loads: fail the tries a scenario armed.

Installed as ``airflow_local_settings.py`` (the local backend copies this file to
``$AIRFLOW_HOME/config/``; on kind the Airflow chart's ``airflowLocalSettings`` value carries it), so
neither ``dags/`` nor the job image knows about it. Airflow 3.3 calls ``task_policy`` from
``DagBag.bag_dag`` for every task, both in the dag-processor and in the task runner's own parse before
a try runs (``airflow.sdk.execution_time.task_runner.parse``); the hook it installs runs right before
``execute`` in the task runner, for any operator (``LocalJobOperator`` or ``KubernetesPodOperator``).

A scenario arms faults per DAG run as an Airflow Variable (set through the REST API, so the harness
reaches it on every backend): key ``fault_variable(dag_run_id)``, value a JSON list of
``{"task_id": ..., "tries": [...], "message": ...}``. A matching try fails with
``injected fault: <message>`` before its job starts and is retried per the task's ``retries``.

Standalone on purpose: Airflow imports it without the harness installed (only Airflow is imported,
and only when a task runs).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

VARIABLE_PREFIX = "mlops_sandbox_faults__"
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,200}")


def fault_variable(dag_run_id: str) -> str:
    """The Variable key holding one DAG run's faults (run ids with other characters are hashed)."""
    if _PLAIN_ID.fullmatch(dag_run_id):
        return VARIABLE_PREFIX + dag_run_id
    return VARIABLE_PREFIX + "sha256_" + hashlib.sha256(dag_run_id.encode()).hexdigest()


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


def _fail_armed_try(context: Any) -> None:
    from airflow.sdk import Variable
    from airflow.sdk.exceptions import AirflowException

    ti = context["ti"]
    raw = Variable.get(fault_variable(context["run_id"]), default=None)
    if raw is None:
        return
    try:
        faults = json.loads(raw)
    except ValueError:
        faults = None
    message = armed_message(faults, ti.task_id, ti.try_number)
    if message is not None:
        raise AirflowException(f"injected fault: {message}")


def task_policy(task: Any) -> None:
    """Check for an armed fault right before ``execute``, then run the task's own ``pre_execute``."""
    if getattr(task, "_mlops_sandbox_faults", False):
        return  # a task object parsed twice in one process keeps one hook
    own = task.pre_execute

    def pre_execute(context: Any) -> None:
        _fail_armed_try(context)
        own(context)

    task.pre_execute = pre_execute
    task._mlops_sandbox_faults = True
