"""Where a DAG run's time goes, per task, from what the platform recorded (shared by the benchmarks).

Per task (its last try), in seconds:

- ``queue_to_start``: the scheduler queued the try -> the try started (Airflow's ``queued_when``,
  ``start_date``);
- ``runner``: the task's duration minus the job's span (Airflow's task runner: parsing the DAG file,
  the cluster policy, reporting state and XCom);
- ``startup``: the job command launched -> its ``main()`` ran (interpreter, package import), plus the
  job's own ``imports`` lap;
- ``work``: the job's other laps, apart from ``mlflow``;
- ``mlflow``: the job's ``mlflow`` lap (logging, registering, gating).

The job's span and laps come from the task log: ``LocalJobOperator``'s ``running <command>`` line, the
job's ``<step>: timings ...`` line (``mlops_jobs/timing.py``) and ``mlops_jobs <step>: done in Xs``.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

LOG_LINE = re.compile(r"^\[(?P<ts>[^\]]+)\]\s+(?:[A-Z]+\s+)?(?P<event>.*)$")
DONE = re.compile(r"mlops_jobs \w+: done in (?P<s>[\d.]+)s")
TIMINGS = re.compile(r"^\w+: timings (?P<laps>.*)$")
LAP = re.compile(r"(?P<name>[\w-]+) (?P<s>[\d.]+)s")
PHASES = ("queue_to_start", "runner", "startup", "work", "mlflow", "task")


def _ts(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    return None if later is None or earlier is None else (later - earlier).total_seconds()


def job_span(log: str) -> dict[str, float] | None:
    """From a task log: ``span`` (command launched -> job done), ``main`` (the job's own "done in"),
    and the job's laps; None when the log has no launched job."""
    launched = done_at = None
    main: float | None = None
    laps: dict[str, float] = {}
    last: datetime | None = None
    for line in log.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        ts, event = _ts(m.group("ts")), m.group("event").strip()
        if event.startswith("running ") and launched is None:
            launched = ts
            continue
        if launched is None:
            continue
        last = ts or last
        if d := DONE.search(event):
            main, done_at = float(d.group("s")), ts
        elif t := TIMINGS.match(event):
            laps = {lap.group("name"): float(lap.group("s")) for lap in LAP.finditer(t.group("laps"))}
    if launched is None:
        return None
    if main is None:  # a failed job prints no "done in": its laps are what it did
        main, done_at = sum(laps.values()), last
    span = _seconds(done_at, launched)
    return {"span": span or 0.0, "main": main, **{f"lap.{k}": v for k, v in laps.items()}}


def task_phases(airflow: Any, dag_id: str, run_id: str) -> dict[str, dict[str, float]]:
    """Task id -> phase -> seconds for one finished DAG run (see the module docstring)."""
    out: dict[str, dict[str, float]] = {}
    for ti in airflow.task_instance_list(dag_id, run_id):
        if ti.try_number < 1 or ti.start_date is None:
            continue
        phases: dict[str, float] = {}
        if (q := _seconds(ti.start_date, ti.queued_when)) is not None:
            phases["queue_to_start"] = q
        task = _seconds(ti.end_date, ti.start_date)
        if task is not None:
            phases["task"] = task
        job = job_span(airflow.log(dag_id, run_id, ti.task_id, ti.try_number))
        if job is not None and task is not None:
            imports = job.get("lap.imports", 0.0)
            mlflow = job.get("lap.mlflow", 0.0)
            phases["runner"] = task - job["span"]
            phases["startup"] = job["span"] - job["main"] + imports
            phases["work"] = job["main"] - imports - mlflow
            phases["mlflow"] = mlflow
        out[ti.task_id] = phases
    return out


def median_phases(runs: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Task id -> phase -> median over runs."""
    collected: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for task, phases in run.items():
            for phase, value in phases.items():
                collected.setdefault(task, {}).setdefault(phase, []).append(value)
    return {
        task: {p: round(statistics.median(v), 2) for p, v in phases.items()}
        for task, phases in collected.items()
    }


def first_task_start(airflow: Any, dag_id: str, run_id: str, timeout: float = 300) -> datetime:
    """When the run's first task started (polls until one has a start date)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = [t.start_date for t in airflow.task_instance_list(dag_id, run_id) if t.start_date]
        if starts:
            return min(starts)
        time.sleep(0.05)
    raise TimeoutError(f"no task of {run_id} started within {timeout:.0f}s")


def wait_final(airflow: Any, dag_id: str, run_id: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = airflow.dag_run_state(dag_id, run_id)
        if state in ("success", "failed"):
            return state
        time.sleep(0.2)
    raise TimeoutError(f"{run_id} did not finish within {timeout:.0f}s")


def unrequested_runs(airflow: Any, dag_id: str, requested: Iterable[str]) -> list[str]:
    """Runs of the DAG that nobody here triggered (e.g. a scheduled run created by the unpause)."""
    mine = set(requested)
    return [r for r in airflow.dag_run_ids(dag_id, limit=100) if r not in mine]


def table(phases: dict[str, dict[str, float]]) -> str:
    """A plain text table: one row per task, one column per phase."""
    head = f"  {'task':24}" + "".join(f"{p:>16}" for p in PHASES)
    rows = [
        f"  {task:24}" + "".join(f"{values[p]:16.2f}" if p in values else f"{'-':>16}" for p in PHASES)
        for task, values in phases.items()
    ]
    return "\n".join([head, *rows])
