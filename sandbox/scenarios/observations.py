"""What the platform recorded for one DAG run: the facts expectations are checked against.

Plain data, filled by the clients (Airflow REST, MlflowClient, S3) after a run reaches a final state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class TaskTry:
    """One try of one task instance (start and end as Airflow recorded them; None when not set)."""

    try_number: int
    state: str | None
    duration: float | None = None
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class TaskObservation:
    """A task instance as Airflow reports it; ``tries`` holds every try, oldest first."""

    task_id: str
    state: str | None
    try_number: int
    duration: float | None = None
    tries: list[TaskTry] = field(default_factory=list)

    def overlapping_tries(self) -> list[tuple[int, int]]:
        """Pairs of tries whose recorded [start, end] intervals overlap: the task ran twice at once. A try
        without an end (still running, or never closed) counts as running still."""
        spans = sorted((t for t in self.tries if t.start is not None), key=lambda t: t.try_number)
        out = []
        for i, a in enumerate(spans):
            for b in spans[i + 1 :]:
                assert a.start is not None and b.start is not None
                a_end = a.end or datetime.max.replace(tzinfo=a.start.tzinfo)
                b_end = b.end or datetime.max.replace(tzinfo=b.start.tzinfo)
                if a.start < b_end and b.start < a_end:
                    out.append((a.try_number, b.try_number))
        return out


@dataclass
class MlflowRunObservation:
    run_id: str
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifact_uri: str = ""


@dataclass
class ModelVersionObservation:
    version: int
    run_id: str | None
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    # Where the model's files live (``mlflow-artifacts:/...`` when the server proxies artifacts).
    artifact_location: str = ""
    # Files found under that location in the artifact bucket (relative to it); None when the location
    # is not in the bucket at all, or was not looked up.
    artifact_files: list[str] | None = None


@dataclass
class RegistryObservation:
    """The scenario's registered model; ``exists`` is False when nothing was ever registered."""

    name: str
    exists: bool = False
    versions: list[ModelVersionObservation] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass
class RunObservation:
    """Everything observed about one DAG run of a scenario."""

    dag_id: str
    dag_run_id: str
    state: str
    wall_seconds: float = 0.0
    conf: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, TaskObservation] = field(default_factory=dict)
    mlflow_runs: list[MlflowRunObservation] = field(default_factory=list)
    registry: RegistryObservation | None = None
    s3_objects: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Metrics of this DAG run's MLflow runs (later runs win on a name clash)."""
        out: dict[str, float] = {}
        for run in self.mlflow_runs:
            out.update(run.metrics)
        return out

    def params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for run in self.mlflow_runs:
            out.update(run.params)
        return out

    def tags(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for run in self.mlflow_runs:
            out.update(run.tags)
        return out

    def own_versions(self) -> list[ModelVersionObservation]:
        """Registry versions created by this DAG run's MLflow runs."""
        if self.registry is None:
            return []
        run_ids = {r.run_id for r in self.mlflow_runs}
        return [v for v in self.registry.versions if v.run_id in run_ids]

    def overlapping_tries(self) -> list[str]:
        """Every pair of tries of one task that ran at the same time, e.g. ``train_model tries 1 and 2``."""
        return [
            f"{task.task_id} tries {a} and {b}"
            for task in self.tasks.values()
            for a, b in task.overlapping_tries()
        ]

    def job_seconds(self) -> float:
        """Sum of the task processes' own durations over every try."""
        total = 0.0
        for task in self.tasks.values():
            tries = task.tries or [TaskTry(task.try_number, task.state, task.duration)]
            total += sum(t.duration or 0.0 for t in tries)
        return total
