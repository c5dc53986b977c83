"""Airflow REST API v2 through the official ``apache-airflow-client``, with a token from ``/auth/token``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_parsing_api import DAGParsingApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.import_error_api import ImportErrorApi
from airflow_client.client.api.task_api import TaskApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.variable_api import VariableApi
from airflow_client.client.exceptions import (
    ApiException,
    ConflictException,
    NotFoundException,
    UnauthorizedException,
)
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from airflow_client.client.models.variable_body import VariableBody

from sandbox.errors import ServiceError

T = TypeVar("T")


@dataclass(frozen=True)
class ImportError_:
    filename: str
    stack_trace: str


@dataclass(frozen=True)
class Schedule:
    """When the scheduler would make the DAG's next scheduled run, and the DAG's default params."""

    next_run_after: datetime | None
    file_token: str
    param_defaults: dict[str, Any]


@dataclass(frozen=True)
class TaskInstance:
    task_id: str
    state: str | None
    try_number: int
    duration: float | None
    # When the scheduler queued the try and when it started and ended (timing figures, benchmarks).
    queued_when: datetime | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None

    @classmethod
    def of(cls, t: Any) -> TaskInstance:
        """From the generated client's task instance (or try) model."""
        return cls(
            t.task_id, _state(t.state), t.try_number, float(t.duration) if t.duration else None,
            t.queued_when, t.start_date, t.end_date,
        )  # fmt: skip


def execution_api_ready(url: str) -> bool:
    """``GET /execution/health/ping``: the task execution API answers and its token validator works.

    The execution API is a Cadwyn app that builds its versioned routes on its first request (about
    5 s of CPU on 2 cores, with the api-server's event loop blocked). Without this call that first
    request was the first task's ``PATCH .../run``: it waited 5.2-5.8 s and got a 400, and the task
    started after a retry, about 7 s after it was queued. Both backends' ``up`` call it before they
    return (ready for work).
    """
    with urllib.request.urlopen(f"{url}/execution/health/ping", timeout=60) as resp:
        return resp.status == 200


def _state(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


class AirflowClient:
    """The few REST calls the harness needs; re-authenticates once when the token expires."""

    def __init__(self, base_url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._timeout = timeout
        self._config = Configuration(host=self.base_url)
        self._api = ApiClient(self._config)
        self.dags = DAGApi(self._api)
        self.dag_runs = DagRunApi(self._api)
        self.task_instances = TaskInstanceApi(self._api)
        self.tasks = TaskApi(self._api)
        self.import_errors_api = ImportErrorApi(self._api)
        self.variables = VariableApi(self._api)
        self.parsing = DAGParsingApi(self._api)

    # --- auth -----------------------------------------------------------------------------------

    def login(self) -> None:
        """Get a JWT from ``POST /auth/token`` (simple auth manager) and use it for every call."""
        body = json.dumps({"username": self._username, "password": self._password}).encode()
        req = urllib.request.Request(
            f"{self.base_url}/auth/token",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                token = json.loads(resp.read())["access_token"]
        except (urllib.error.URLError, KeyError, ValueError) as exc:
            raise ServiceError(
                f"Could not get an Airflow API token from {self.base_url}/auth/token: {exc}",
                "check that the sandbox is up (`sandbox status`) and its credentials file is current",
            ) from exc
        self._config.access_token = token

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._config.access_token is None:
            self.login()
        kwargs.setdefault("_request_timeout", self._timeout)
        try:
            return fn(*args, **kwargs)
        except UnauthorizedException:
            self.login()
            return fn(*args, **kwargs)

    # --- calls ----------------------------------------------------------------------------------

    def get_dag(self, dag_id: str) -> Any | None:
        """The DAG as the API knows it, or None when it has not been parsed (yet)."""
        try:
            return self._call(self.dags.get_dag, dag_id)
        except NotFoundException:
            return None

    def task_ids(self, dag_id: str) -> list[str]:
        resp = self._call(self.tasks.get_tasks, dag_id)
        return [t.task_id for t in resp.tasks or []]

    def unpause(self, dag_id: str) -> None:
        self._call(self.dags.patch_dag, dag_id, DAGPatchBody(is_paused=False), update_mask=["is_paused"])

    def import_errors(self) -> list[ImportError_]:
        resp = self._call(self.import_errors_api.get_import_errors, limit=100)
        return [ImportError_(e.filename, e.stack_trace) for e in resp.import_errors]

    def trigger(self, dag_id: str, dag_run_id: str, conf: dict[str, Any]) -> None:
        body = TriggerDAGRunPostBody(dag_run_id=dag_run_id, conf=conf, logical_date=None)
        self._call(self.dag_runs.trigger_dag_run, dag_id, body)

    def mark_dag_run_failed(self, dag_id: str, dag_run_id: str) -> None:
        """Set a DAG run's state to failed (its running tries are stopped, no retry follows)."""
        body = DAGRunPatchBody(state="failed")
        self._call(self.dag_runs.patch_dag_run, dag_id, dag_run_id, body, update_mask=["state"])

    def dag_run_ids(self, dag_id: str, containing: str = "", limit: int = 50) -> list[str]:
        """Ids of the DAG's most recent runs whose id contains ``containing``, newest first."""
        return list(self.dag_runs_queued_at(dag_id, containing, limit))

    def dag_runs_queued_at(self, dag_id: str, containing: str = "", limit: int = 50) -> dict[str, str]:
        """The DAG's most recent runs whose id contains ``containing``, newest first: id -> when it was
        queued (ISO text; "" if never). With the id it tells a run from an earlier one of the same id
        (deleted)."""
        resp = self._call(
            self.dag_runs.get_dag_runs, dag_id, limit=limit, order_by=["-run_after"],
            run_id_pattern=containing or None,
        )  # fmt: skip
        return {
            r.dag_run_id: r.queued_at.isoformat() if r.queued_at else ""
            for r in resp.dag_runs
            if containing in r.dag_run_id
        }

    def delete_dag_run(self, dag_id: str, dag_run_id: str) -> None:
        self._call(self.dag_runs.delete_dag_run, dag_id, dag_run_id)

    def schedule(self, dag_id: str) -> Schedule:
        details = self._call(self.dags.get_dag_details, dag_id)
        defaults = {
            key: param.get("value") if isinstance(param, dict) else param
            for key, param in (details.params or {}).items()
        }
        return Schedule(details.next_dagrun_run_after, details.file_token, defaults)

    def reparse(self, file_token: str) -> None:
        """Ask the dag-processor to parse a DAG file again soon (it recomputes the next scheduled run)."""
        self._call(self.parsing.reparse_dag_file, file_token)

    def set_variable(self, key: str, value: str, description: str = "") -> None:
        """Create or replace an Airflow Variable."""
        body = VariableBody(key=key, value=value, description=description or None)
        try:
            self._call(self.variables.post_variable, body)
        except ConflictException:
            self._call(self.variables.patch_variable, key, body)

    def get_variable(self, key: str) -> str | None:
        """An Airflow Variable's value (None when it does not exist)."""
        try:
            return self._call(self.variables.get_variable, key).value
        except NotFoundException:
            return None

    def delete_variable(self, key: str) -> None:
        """Delete an Airflow Variable (nothing happens when it does not exist)."""
        try:
            self._call(self.variables.delete_variable, key)
        except NotFoundException:
            return

    def dag_run_state(self, dag_id: str, dag_run_id: str) -> str:
        return _state(self._call(self.dag_runs.get_dag_run, dag_id, dag_run_id).state) or "unknown"

    def dag_run(self, dag_id: str, dag_run_id: str) -> Any:
        return self._call(self.dag_runs.get_dag_run, dag_id, dag_run_id)

    def task_instance_list(self, dag_id: str, dag_run_id: str) -> list[TaskInstance]:
        resp = self._call(self.task_instances.get_task_instances, dag_id, dag_run_id, limit=100)
        return [TaskInstance.of(t) for t in resp.task_instances]

    def tries(self, dag_id: str, dag_run_id: str, task_id: str) -> list[TaskInstance]:
        """Every try of a task instance (the history API), oldest first."""
        resp = self._call(self.task_instances.get_task_instance_tries, dag_id, dag_run_id, task_id)
        return sorted((TaskInstance.of(t) for t in resp.task_instances), key=lambda t: t.try_number)

    def log(self, dag_id: str, dag_run_id: str, task_id: str, try_number: int) -> str:
        """A try's log as plain text, exceptions rendered as tracebacks.

        Read as raw JSON: the generated model keeps only ``event`` and ``timestamp`` and would drop
        ``error_detail``, which carries the exception that failed the task.
        """
        try:
            resp = self._call(
                self.task_instances.get_log_without_preload_content,
                dag_id,
                dag_run_id,
                task_id,
                try_number,
                full_content=True,
                accept="application/json",
            )
        except ApiException as exc:
            return f"(log unavailable: HTTP {exc.status} {exc.reason})"
        if resp.status != 200:
            return f"(log unavailable: HTTP {resp.status})"
        try:
            content = json.loads(resp.data).get("content") or []
        except ValueError:
            return resp.data.decode(errors="replace")
        return "\n".join(render_log_entry(e) for e in content)


# Keys every structured entry repeats; showing them would bury the message.
_LOG_NOISE = {
    "event", "timestamp", "level", "logger", "filename", "lineno", "run_id", "task_id", "dag_id",
    "map_index", "ti_id", "try_number", "chan", "error_detail",
}  # fmt: skip


def render_log_entry(entry: Any) -> str:
    """One structured log entry (Airflow 3 task log) as a text line, plus its traceback if any."""
    if isinstance(entry, str):
        return entry
    if not isinstance(entry, dict):
        return str(entry)
    ts = entry.get("timestamp")
    level = str(entry.get("level") or "").upper()
    extra = " ".join(f"{k}={v}" for k, v in entry.items() if k not in _LOG_NOISE)
    line = " ".join(p for p in (f"[{ts}]" if ts else "", level, str(entry.get("event", "")), extra) if p)
    for exc in entry.get("error_detail") or []:
        if not isinstance(exc, dict):
            continue
        frames = [
            f'  File "{f.get("filename")}", line {f.get("lineno")}, in {f.get("name")}'
            for f in exc.get("frames") or []
            if isinstance(f, dict)
        ]
        line += "\nTraceback (most recent call last):\n" + "\n".join(frames)
        line += f"\n{exc.get('exc_type')}: {exc.get('exc_value')}"
    return line
