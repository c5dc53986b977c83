"""Arming faults for the local runtime (``MLOPS_FAULTS_FILE``, format in docs/architecture.md).

Faults are keyed by ``dag_run_id`` (chosen by the runner before it triggers), so scenarios running in
parallel on one stack never see each other's faults. Writers take a lock and replace the file
atomically, so the task process never reads a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from sandbox.locks import file_lock
from sandbox.scenarios.model import Fault


def _locked(path: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(path.with_name(path.name + ".lock"))


def read(path: Path) -> list[dict[str, Any]]:
    """The armed faults (empty when the file is missing or unreadable)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    faults = data.get("faults") if isinstance(data, dict) else None
    return [f for f in faults or [] if isinstance(f, dict)]


def _write(path: Path, faults: list[dict[str, Any]]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"faults": faults}, indent=1))
    os.replace(tmp, path)


def arm(path: Path, dag_run_id: str, faults: list[Fault]) -> None:
    """Add ``faults`` for one DAG run (replacing any earlier ones for the same run)."""
    if not faults:
        return
    entries = [
        {"dag_run_id": dag_run_id, "task_id": f.task, "tries": list(f.tries), "message": f.message}
        for f in faults
    ]
    with _locked(path):
        kept = [f for f in read(path) if f.get("dag_run_id") != dag_run_id]
        _write(path, kept + entries)


def disarm(path: Path, dag_run_id: str) -> None:
    """Remove every fault of one DAG run."""
    if not path.exists():
        return
    with _locked(path):
        current = read(path)
        kept = [f for f in current if f.get("dag_run_id") != dag_run_id]
        if len(kept) != len(current):
            _write(path, kept)
