"""Faults armed by the sandbox harness for the local runtime (docs/architecture.md, "Faults").

Pure (no Airflow import) so the harness's contract is testable on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

FAULTS_FILE_ENV = "MLOPS_FAULTS_FILE"


def armed_fault(path: str | None, dag_run_id: str, task_id: str, try_number: int) -> str | None:
    """The message of a fault armed for this try, else None (also when no file is configured)."""
    if not path:
        return None
    try:
        faults = json.loads(Path(path).read_text()).get("faults") or []
    except (OSError, ValueError, AttributeError):
        return None  # no file: nothing armed (writers replace it atomically, so never half-written)
    for fault in faults:
        if (
            isinstance(fault, dict)
            and fault.get("dag_run_id") == dag_run_id
            and fault.get("task_id") == task_id
            and try_number in (fault.get("tries") or [])
        ):
            return str(fault.get("message") or "fault armed by the sandbox")
    return None
