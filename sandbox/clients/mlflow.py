"""MLflow observations through ``MlflowClient``: a DAG run's MLflow runs and the registry state."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from sandbox.scenarios.observations import (
    MlflowRunObservation,
    ModelVersionObservation,
    RegistryObservation,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

# The jobs tag every MLflow run with the Airflow ids that produced it (see jobs/mlops_jobs).
DAG_RUN_TAG = "airflow.dag_run_id"


class MlflowObserver:
    """Read-only view of one tracking server."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    def runs_of(
        self, experiment_name: str, dag_run_id: str, started_after: datetime | None = None
    ) -> list[MlflowRunObservation]:
        """MLflow runs in ``experiment_name`` tagged with ``dag_run_id``, oldest first; with
        ``started_after`` (the DAG run's start), only those that started since: a scheduled run's id
        comes back when its interval is run again (``sandbox.scenarios.schedule``)."""
        exp = self.client.get_experiment_by_name(experiment_name)
        if exp is None:
            return []
        since = ""
        if started_after is not None:
            since = f" and attributes.start_time >= {int(started_after.timestamp() * 1000)}"
        runs = self.client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`{DAG_RUN_TAG}` = '{dag_run_id}'{since}",
            order_by=["attributes.start_time ASC"],
            max_results=100,
        )
        return [
            MlflowRunObservation(
                run_id=r.info.run_id,
                status=r.info.status,
                metrics=dict(r.data.metrics),
                params=dict(r.data.params),
                tags={k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")},
                artifact_uri=r.info.artifact_uri or "",
            )
            for r in runs
        ]

    def find_run(self, experiment_name: str, dag_run_id: str, task_id: str, try_number: int) -> str | None:
        """The id of the MLflow run one task try logged (by the Airflow tags the jobs set), if any."""
        exp = self.client.get_experiment_by_name(experiment_name)
        if exp is None:
            return None
        runs = self.client.search_runs(
            [exp.experiment_id],
            filter_string=(
                f"tags.`{DAG_RUN_TAG}` = '{dag_run_id}' and tags.`airflow.task_id` = '{task_id}' "
                f"and tags.`airflow.try_number` = '{try_number}'"
            ),
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def run_status(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).info.status)

    def versions_of_run(self, model_name: str, run_id: str) -> list[int]:
        """Versions of ``model_name`` registered from ``run_id``."""
        try:
            found = self.client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        return sorted(int(v.version) for v in found)

    def _model_location(self, version: ModelVersion) -> str:
        """Where a version's files are: its logged model's artifact location (MLflow 3: the version's
        source is ``models:/<model id>``, and search results leave ``model_id`` empty), else its source."""
        source = version.source or ""
        model_id = version.model_id or ""
        if not model_id and source.startswith("models:/m-"):
            model_id = source.removeprefix("models:/")
        if model_id:
            try:
                return self.client.get_logged_model(model_id).artifact_location
            except MlflowException:
                pass
        return source

    def registry(self, model_name: str) -> RegistryObservation:
        """Versions (with tags and aliases) and aliases of a registered model; empty when absent."""
        try:
            model = self.client.get_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return RegistryObservation(model_name)
            raise
        versions = self.client.search_model_versions(f"name = '{model_name}'", max_results=1000)
        return RegistryObservation(
            model_name,
            exists=True,
            versions=sorted(
                (
                    ModelVersionObservation(
                        version=int(v.version),
                        run_id=v.run_id,
                        tags=dict(v.tags or {}),
                        aliases=list(v.aliases or []),
                        artifact_location=self._model_location(v),
                    )
                    for v in versions
                ),
                key=lambda v: v.version,
            ),
            aliases={alias: int(version) for alias, version in (model.aliases or {}).items()},
        )
