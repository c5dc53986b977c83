"""Read one production DAG run, read-only, through the official clients.

Airflow (``apache-airflow-client``, REST v2): the DAG run, its conf, the DAG's params, task instances
with every try, and the logs of failed tries. MLflow (``MlflowClient``): the runs the DAG run logged,
found by the tags the train job sets (``jobs/mlops_jobs/config.py`` ``RunContext.tags``), and the
model versions they registered. Every failure names the endpoint and what to do.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sandbox.errors import ConfigError, ServiceError
from sandbox.reproduce.access import Production

T = TypeVar("T")

# The tags every MLflow run of the pipeline carries (jobs/mlops_jobs/config.py RunContext.tags).
DAG_ID_TAG = "airflow.dag_id"
DAG_RUN_TAG = "airflow.dag_run_id"
TASK_TAG = "airflow.task_id"
TRY_TAG = "airflow.try_number"
TRAIN_TASK = "train_model"
# Params the runner sets per scenario (isolation); production's values are recorded, not replayed.
ISOLATION_PARAMS = ("experiment_name", "model_name")
TIMEOUT_S = 15.0
LOG_TAIL_LINES = 40


@dataclass
class TryRecord:
    try_number: int
    state: str | None
    duration: float | None = None
    log_tail: str = ""  # only for failed tries


@dataclass
class TaskRecord:
    task_id: str
    state: str | None
    try_number: int
    tries: list[TryRecord] = field(default_factory=list)
    started: datetime | None = None  # orders the tasks as they ran


@dataclass
class MlflowRecord:
    run_id: str
    experiment_name: str
    status: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def try_number(self) -> int | None:
        value = self.tags.get(TRY_TAG, "")
        return int(value) if value.isdigit() else None


@dataclass
class VersionRecord:
    model_name: str
    version: int
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ProductionRun:
    """Everything read about one DAG run; plain data for ``scenario.py``."""

    airflow_url: str
    dag_id: str
    dag_run_id: str
    state: str
    conf: dict[str, Any]
    defaults: dict[str, Any]  # the DAG's param defaults, as the API serves them today
    tasks: dict[str, TaskRecord]
    observed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    run_type: str = ""
    dag_version: str = ""
    mlflow_url: str | None = None
    mlflow_runs: list[MlflowRecord] = field(default_factory=list)
    versions: list[VersionRecord] = field(default_factory=list)
    aliases_now: dict[str, int] = field(default_factory=dict)
    mlflow_searched: str = ""

    @property
    def trained(self) -> MlflowRecord | None:
        """The MLflow run of train_model's last try (the one evaluate gated), else the latest."""
        train = self.tasks.get(TRAIN_TASK)
        runs = [r for r in self.mlflow_runs if r.tags.get(TASK_TAG, TRAIN_TASK) == TRAIN_TASK]
        if train is not None:
            final = [r for r in runs if r.try_number == train.try_number]
            if final:
                return final[-1]
        return runs[-1] if runs else None


# --- Airflow ------------------------------------------------------------------------------------


class AirflowReader:
    """Read-only REST v2 calls against production Airflow."""

    def __init__(self, production: Production) -> None:
        from airflow_client.client import ApiClient, Configuration
        from airflow_client.client.api.dag_api import DAGApi
        from airflow_client.client.api.dag_run_api import DagRunApi
        from airflow_client.client.api.task_instance_api import TaskInstanceApi

        self.url = production.airflow_url
        token, self._username, self._password = production.airflow_auth()
        self._config = Configuration(host=self.url)
        self._config.access_token = token or None
        api = ApiClient(self._config)
        self.dags, self.dag_runs, self.task_instances = DAGApi(api), DagRunApi(api), TaskInstanceApi(api)

    def _unreachable(self, reason: object) -> ServiceError:
        return ServiceError(
            f"Production Airflow at {self.url} is unreachable: {reason}.",
            "Check --airflow-url (the API server's base URL, as in the browser) and that this machine "
            "can reach it (VPN, port-forward).",
        )

    def _login(self) -> None:
        """A JWT from ``POST /auth/token`` for username/password (Airflow 3's auth managers)."""
        body = json.dumps({"username": self._username, "password": self._password}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
                self._config.access_token = json.loads(resp.read())["access_token"]
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise ConfigError(
                    f"Production Airflow at {self.url} refused the username and password "
                    f"(HTTP {exc.code} from /auth/token).",
                    "Check MLOPS_REPRO_AIRFLOW_USERNAME / MLOPS_REPRO_AIRFLOW_PASSWORD, or set "
                    "MLOPS_REPRO_AIRFLOW_TOKEN to an API token.",
                ) from None
            raise ServiceError(
                f"Production Airflow at {self.url} answered HTTP {exc.code} to POST /auth/token.",
                "Check that --airflow-url is the Airflow 3 API server's base URL; with another auth "
                "manager, set MLOPS_REPRO_AIRFLOW_TOKEN to a token instead.",
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(getattr(exc, "reason", exc)) from None
        except (KeyError, ValueError):
            raise ServiceError(
                f"{self.url}/auth/token did not answer with an access token.",
                "Check that --airflow-url is the Airflow 3 API server's base URL.",
            ) from None

    def call(self, fn: Callable[..., T], *args: Any, what: str, **kwargs: Any) -> T:
        """One API call; 401/403 and network errors become errors that name Airflow and the fix."""
        import urllib3
        from airflow_client.client.exceptions import ForbiddenException, UnauthorizedException

        if self._config.access_token is None:
            self._login()
        kwargs.setdefault("_request_timeout", TIMEOUT_S)
        try:
            return fn(*args, **kwargs)
        except UnauthorizedException:
            raise ConfigError(
                f"Production Airflow at {self.url} refused the credentials (HTTP 401) reading {what}.",
                "Check MLOPS_REPRO_AIRFLOW_TOKEN (expired?) or MLOPS_REPRO_AIRFLOW_USERNAME/_PASSWORD.",
            ) from None
        except ForbiddenException as exc:
            # Airflow 3 answers 403 both to a token it cannot verify and to a user without permission.
            raise ConfigError(
                f"Production Airflow at {self.url} refused to let these credentials read {what} "
                f"(HTTP 403: {_detail(exc)}).",
                '"Invalid JWT token": MLOPS_REPRO_AIRFLOW_TOKEN is expired or not from this Airflow; '
                '"Forbidden": use a user that may read DAGs, DAG runs, task instances and task logs '
                "(a viewer role).",
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise self._unreachable(getattr(exc, "reason", None) or exc) from None

    def read(self, dag_id: str, dag_run_id: str) -> ProductionRun:
        from airflow_client.client.exceptions import NotFoundException

        try:
            details = self.call(self.dags.get_dag_details, dag_id, what=f"DAG {dag_id!r}")
        except NotFoundException:
            known = self.call(self.dags.get_dags, what="the DAG list", limit=50)
            ids = ", ".join(d.dag_id for d in known.dags) or "none"
            raise ConfigError(
                f"Production Airflow at {self.url} has no DAG {dag_id!r}.",
                f"Pass --dag-id with one of: {ids}.",
            ) from None
        try:
            run = self.call(self.dag_runs.get_dag_run, dag_id, dag_run_id, what=f"DAG run {dag_run_id!r}")
        except NotFoundException:
            recent = self.call(
                self.dag_runs.get_dag_runs, dag_id, what="recent DAG runs", limit=5, order_by=["-run_after"]
            )
            ids = ", ".join(r.dag_run_id for r in recent.dag_runs) or "none yet"
            raise ConfigError(
                f"DAG {dag_id!r} at {self.url} has no run {dag_run_id!r}.",
                f"Copy the run id from the Airflow UI (the DAG's Runs tab). The latest runs: {ids}.",
            ) from None
        defaults = {name: _param_default(spec) for name, spec in (details.params or {}).items()}
        versions = [v for v in (run.dag_versions or []) if v is not None]
        dag_version = ", ".join(
            f"v{v.version_number}" + (f" (bundle {v.bundle_version})" if v.bundle_version else "")
            for v in versions
        )
        return ProductionRun(
            airflow_url=self.url,
            dag_id=dag_id,
            dag_run_id=dag_run_id,
            state=_text(run.state) or "unknown",
            conf=dict(run.conf or {}),
            defaults=defaults,
            tasks=self.tasks(dag_id, dag_run_id),
            run_type=_text(run.run_type) or "",
            dag_version=dag_version,
        )

    def tasks(self, dag_id: str, dag_run_id: str) -> dict[str, TaskRecord]:
        what = f"task instances of {dag_run_id!r}"
        listed = self.call(self.task_instances.get_task_instances, dag_id, dag_run_id, what=what, limit=100)
        out: dict[str, TaskRecord] = {}
        for ti in listed.task_instances:
            record = TaskRecord(ti.task_id, _text(ti.state), ti.try_number, started=ti.start_date)
            if ti.try_number > 1:
                history = self.call(
                    self.task_instances.get_task_instance_tries, dag_id, dag_run_id, ti.task_id, what=what
                )
                tries = sorted(history.task_instances, key=lambda t: t.try_number)
                record.tries = [TryRecord(t.try_number, _text(t.state), t.duration) for t in tries]
            elif ti.try_number == 1:
                record.tries = [TryRecord(1, _text(ti.state), ti.duration)]
            for attempt in record.tries:
                if attempt.state in ("failed", "up_for_retry", "upstream_failed"):
                    attempt.log_tail = self.log(dag_id, dag_run_id, ti.task_id, attempt.try_number)
            out[ti.task_id] = record
        far = datetime.max.replace(tzinfo=UTC)
        return dict(sorted(out.items(), key=lambda kv: (kv[1].started or far, kv[0])))

    def log(self, dag_id: str, dag_run_id: str, task_id: str, try_number: int) -> str:
        """The last lines of one try's log, as text (best effort: a missing log is not an error)."""
        from airflow_client.client.exceptions import ApiException

        from sandbox.clients.airflow import render_log_entry

        try:
            resp = self.call(
                self.task_instances.get_log_without_preload_content,
                dag_id,
                dag_run_id,
                task_id,
                try_number,
                what=f"the log of {task_id} try {try_number}",
                full_content=True,
                accept="application/json",
            )
        except ApiException as exc:
            return f"(log unavailable: HTTP {exc.status})"
        if resp.status != 200:
            return f"(log unavailable: HTTP {resp.status})"
        try:
            content = json.loads(resp.data).get("content") or []
            text = "\n".join(render_log_entry(e) for e in content)
        except (ValueError, AttributeError):
            text = resp.data.decode(errors="replace")
        return "\n".join(text.rstrip().splitlines()[-LOG_TAIL_LINES:])


def _detail(exc: Any) -> str:
    """The ``detail`` of an Airflow API error body, else its reason."""
    try:
        detail = json.loads(exc.body or "{}").get("detail")
    except (ValueError, AttributeError):
        detail = None
    return str(detail or exc.reason or "no detail")[:200]


def _text(value: Any) -> str | None:
    return None if value is None else str(getattr(value, "value", value))


def _param_default(spec: Any) -> Any:
    """A param's default from the API's ``{"value": ..., "schema": ...}`` (or a bare value)."""
    return spec.get("value") if isinstance(spec, dict) and "value" in spec else spec


# --- MLflow -------------------------------------------------------------------------------------


class MlflowReader:
    """Read-only MLflow reads; credentials reach ``MlflowClient`` only inside ``_session()``."""

    def __init__(self, production: Production) -> None:
        if production.mlflow_url is None:
            raise ValueError("no MLflow URL")
        self.url = production.mlflow_url
        c = production.credentials
        self._token = c.get("MLOPS_REPRO_MLFLOW_TOKEN")
        self._username = c.get("MLOPS_REPRO_MLFLOW_USERNAME")
        self._password = c.get("MLOPS_REPRO_MLFLOW_PASSWORD")

    def probe(self) -> None:
        """Reachable and authorised, with a clear error for each (MLflow's own client retries for minutes)."""
        request = urllib.request.Request(f"{self.url}/api/2.0/mlflow/experiments/search?max_results=1")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        elif self._username:
            basic = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            request.add_header("Authorization", f"Basic {basic}")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S):
                return
        except urllib.error.HTTPError as exc:
            body = exc.read(300).decode(errors="replace").strip()
            if exc.code in (401, 403):
                raise ConfigError(
                    f"Production MLflow at {self.url} refused the request (HTTP {exc.code}: {body}).",
                    "Set MLOPS_REPRO_MLFLOW_USERNAME/_PASSWORD or MLOPS_REPRO_MLFLOW_TOKEN for a user "
                    "that may read experiments, runs and registered models.",
                ) from None
            raise ServiceError(
                f"Production MLflow at {self.url} answered HTTP {exc.code} to an experiment search: {body}",
                "Check that --mlflow-url is the tracking server's base URL (the one its UI runs on).",
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ServiceError(
                f"Production MLflow at {self.url} is unreachable: {getattr(exc, 'reason', exc)}.",
                "Check --mlflow-url and that this machine can reach it (VPN, port-forward).",
            ) from None

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        """An ``MlflowClient`` for production, with its credentials and short retries, then restored."""
        from mlflow.tracking import MlflowClient

        scoped = {
            "MLFLOW_TRACKING_TOKEN": self._token,
            "MLFLOW_TRACKING_USERNAME": self._username,
            "MLFLOW_TRACKING_PASSWORD": self._password,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(int(TIMEOUT_S)),
        }
        saved = {name: os.environ.get(name) for name in scoped}
        try:
            for name, value in scoped.items():
                if value:
                    os.environ[name] = value
            yield MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

    def read_into(self, run: ProductionRun, experiment_name: str | None) -> None:
        """Fill ``run``'s MLflow runs, the versions they registered and the models' current aliases."""
        if "'" in run.dag_run_id or "'" in run.dag_id:
            raise ConfigError(
                f"DAG run id {run.dag_run_id!r} contains a quote, which an MLflow search cannot express.",
                "Find its MLflow run in the MLflow UI by the tag airflow.dag_run_id instead.",
            )
        self.probe()
        with self._session() as client:
            wanted = f"tags.`{DAG_ID_TAG}` = '{run.dag_id}' and tags.`{DAG_RUN_TAG}` = '{run.dag_run_id}'"
            experiments = self._experiment(client, experiment_name)
            found = self._search(client, experiments, wanted)
            run.mlflow_searched = f"experiment {experiment_name!r}"
            if not found:  # renamed, or logged elsewhere: look everywhere before giving up
                from mlflow.entities import ViewType

                experiments = list(client.search_experiments(view_type=ViewType.ALL, max_results=1000))
                found = self._search(client, experiments, wanted)
                run.mlflow_searched = f"all {len(experiments)} experiment(s)"
            names = {e.experiment_id: e.name for e in experiments}
            run.mlflow_url = self.url
            run.mlflow_runs = [
                MlflowRecord(
                    run_id=r.info.run_id,
                    experiment_name=names.get(r.info.experiment_id, r.info.experiment_id),
                    status=r.info.status,
                    params=dict(r.data.params),
                    metrics=dict(r.data.metrics),
                    tags={k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.")},
                )
                for r in found
            ]
            for record in run.mlflow_runs:
                for v in client.search_model_versions(f"run_id = '{record.run_id}'", max_results=100):
                    run.versions.append(VersionRecord(v.name, int(v.version), v.run_id, dict(v.tags or {})))
            for name in sorted({v.model_name for v in run.versions}):
                model = client.get_registered_model(name)
                run.aliases_now.update({alias: int(ver) for alias, ver in (model.aliases or {}).items()})

    @staticmethod
    def _experiment(client: Any, name: str | None) -> list[Any]:
        experiment = client.get_experiment_by_name(name) if name else None
        return [experiment] if experiment is not None else []

    @staticmethod
    def _search(client: Any, experiments: list[Any], wanted: str) -> list[Any]:
        if not experiments:
            return []
        return list(
            client.search_runs(
                [e.experiment_id for e in experiments],
                filter_string=wanted,
                order_by=["attributes.start_time ASC"],
                max_results=100,
            )
        )


def missing_mlflow_run(run: ProductionRun) -> ConfigError:
    """The DAG run trained, yet no MLflow run carries its ids: say how the two are linked."""
    return ConfigError(
        f"MLflow at {run.mlflow_url} has no run tagged {DAG_ID_TAG}={run.dag_id!r} and "
        f"{DAG_RUN_TAG}={run.dag_run_id!r} (searched {run.mlflow_searched}), although its "
        f"{TRAIN_TASK} task ran.",
        "The train job tags every MLflow run with airflow.dag_id, airflow.dag_run_id and "
        "airflow.task_id (jobs/mlops_jobs/config.py RunContext.tags): check that --mlflow-url is the "
        "tracking server this Airflow's jobs log to (MLFLOW_TRACKING_URI in the platform ConfigMap) "
        "and that the run was not deleted.",
    )
