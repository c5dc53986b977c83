"""Runs a scenario against a live stack: trigger, wait (failing fast), observe, check.

One scenario = one experiment and one registered model of its own (isolation), then for each run:
arm faults -> trigger with a chosen ``dag_run_id`` -> poll every ~0.5 s with a deadline (service faults
injected and undone at their points: ``chaos.py``) -> collect observations -> check expectations. A DAG
that does not import, or a task that fails when the scenario did not expect it, ends the scenario at
once with Airflow's own error text. Every run keeps a timeline (task tries, faults) for the reports.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox import paths
from sandbox.clients.airflow import AirflowClient
from sandbox.clients.mlflow import MlflowObserver
from sandbox.clients.s3 import S3Client
from sandbox.errors import SandboxError
from sandbox.redaction import Redactor
from sandbox.scenarios import faults as faults_mod
from sandbox.scenarios import schedule as schedule_mod
from sandbox.scenarios.chaos import FaultController, Timeline
from sandbox.scenarios.expectations import Mismatch, check
from sandbox.scenarios.model import RESERVED_CONF, Expect, RunSpec, Scenario, TaskPoint
from sandbox.scenarios.observations import RunObservation, TaskObservation, TaskTry
from sandbox.stack import Backend, Schedules

POLL_S = 0.5
DAG_APPEAR_TIMEOUT_S = 90.0
# How long the harness's own REST calls may fail in a row while no service fault is in place (a
# restarted api-server or Postgres needs a moment after its restore).
UNREACHABLE_GRACE_S = 60.0
FINAL_DAG_STATES = ("success", "failed")
LOG_TAIL_LINES = 40

Progress = Callable[[str], None]


def _noop(_msg: str) -> None:
    return None


class ScenarioAborted(Exception):
    """The scenario cannot go on (import error, unexpected task failure, deadline); text says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}\n{detail}" if detail else reason)


@dataclass
class RunResult:
    index: int
    spec: RunSpec
    observation: RunObservation
    mismatches: list[Mismatch] = field(default_factory=list)


@dataclass
class ScenarioResult:
    """What happened: per-run observations and mismatches, or the reason it was aborted."""

    scenario: Scenario
    path: Path | None
    experiment_name: str
    model_name: str
    runs: list[RunResult] = field(default_factory=list)
    wall_seconds: float = 0.0
    aborted: ScenarioAborted | None = None
    # One per DAG run triggered (also for a run that was aborted): task tries and service faults.
    timelines: list[Timeline] = field(default_factory=list)
    # The runs the scheduler made for this scenario (`trigger: schedule`): requested, though not triggered.
    scheduled_runs: list[str] = field(default_factory=list)

    @property
    def has_service_faults(self) -> bool:
        return any(t.faults for t in self.timelines)

    def timeline_text(self) -> str:
        """Each run's timeline, with its service faults summarised (what the reports show)."""
        out: list[str] = []
        for i, tl in enumerate(self.timelines):
            out.append(f"run {i + 1} timeline (seconds since the trigger):")
            out.append(tl.render())
            out += [f"  fault: {r.summary()}" for r in tl.faults]
        return "\n".join(out)

    @property
    def passed(self) -> bool:
        return self.aborted is None and all(not r.mismatches for r in self.runs)

    @property
    def verdict(self) -> str:
        if self.aborted is not None:
            return "error"
        return "passed" if self.passed else "failed"

    def failure_text(self) -> str:
        """Every mismatch of every run (expected vs actual), or the abort reason with its detail."""
        lines: list[str] = []
        for r in self.runs:
            if r.mismatches:
                label = f"run {r.index + 1}" + (f" ({r.spec.name})" if r.spec.name else "")
                lines.append(
                    f"{label}, dag_run_id {r.observation.dag_run_id}: {len(r.mismatches)} mismatch(es)"
                )
                lines += [f"  - {m}" for m in r.mismatches]
        if self.aborted is not None:
            lines.append(str(self.aborted))
        if self.has_service_faults:
            lines.append(self.timeline_text())
        return "\n".join(lines)


class Platform:
    """A running stack's clients (Airflow REST, MLflow, S3), its redaction, and what the runner caches."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        ep = backend.endpoints
        creds = backend.credentials
        self.endpoints = ep
        self.airflow = AirflowClient(ep.airflow_url, creds.airflow_username, creds.airflow_password)
        self.mlflow = MlflowObserver(ep.mlflow_url)
        self.s3 = S3Client(ep.s3_url, creds.s3_access_key, creds.s3_secret_key)
        self.data_bucket = ep.data_bucket
        # Read once, here: a report written later never depends on re-reading the secrets.
        self.redact = Redactor(creds.secrets())
        self._unpaused: set[str] = set()
        self._unpause_lock = threading.Lock()  # scenarios may run side by side (--parallel)

    def secrets(self) -> list[str]:
        """Every value output must mask."""
        return list(self.redact.secrets)

    def unpause_once(self, dag_id: str, paused: bool) -> None:
        """Unpause the DAG the first time this session uses it (when it is paused)."""
        with self._unpause_lock:
            if dag_id not in self._unpaused:
                if paused:
                    self.airflow.unpause(dag_id)
                self._unpaused.add(dag_id)

    def artifact_files(self, location: str) -> list[str] | None:
        """Files under an MLflow artifact location found in the artifact bucket (relative to the
        location); None when the location is not in that bucket."""
        ep = self.endpoints
        if location.startswith("mlflow-artifacts:"):
            path = location.removeprefix("mlflow-artifacts:").lstrip("/")
            prefix = ep.artifacts_prefix + path
        elif location.startswith(f"s3://{ep.artifacts_bucket}/"):
            prefix = location.removeprefix(f"s3://{ep.artifacts_bucket}/")
        else:
            return None
        return self.s3.list_keys(ep.artifacts_bucket, prefix.rstrip("/") + "/")


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "scenario"


def isolation_names(scenario: Scenario, path: Path | None = None) -> tuple[str, str]:
    """A fresh experiment and registered-model name for one execution of a scenario."""
    base = _slug(path.stem if path else scenario.name, 32)
    name = f"sbx-{base}-{secrets.token_hex(3)}"
    return name, name


def _tail(text: str, lines: int = LOG_TAIL_LINES) -> str:
    rows = text.rstrip().splitlines()
    return "\n".join(rows[-lines:])


class Runner:
    """Executes scenarios on one Platform. Thread-safe per scenario (no shared mutable run state)."""

    def __init__(self, platform: Platform, progress: Progress | None = None) -> None:
        self.p = platform
        self.progress = progress or _noop
        # Set from another thread (a session running scenarios side by side was interrupted): the run in
        # flight is marked failed and the scenario ends at its next poll.
        self.cancelled = threading.Event()

    def _check_cancelled(self, dag_id: str, dag_run_id: str = "") -> None:
        if self.cancelled.is_set():
            if dag_run_id:
                self._stop(dag_id, dag_run_id)
            raise ScenarioAborted("interrupted", "the session was interrupted; the DAG run was marked failed")

    # --- DAG readiness ----------------------------------------------------------------------

    def _import_errors_for(self, dag: Any | None) -> list[str]:
        """Import errors of the DAG's file (or all of them while the DAG is unknown)."""
        errors = self.p.airflow.import_errors()
        if dag is None:
            return [f"{e.filename}:\n{e.stack_trace}" for e in errors]
        file = str(getattr(dag, "relative_fileloc", None) or getattr(dag, "fileloc", "") or "")
        out = []
        for e in errors:
            if file and (file.endswith(e.filename) or e.filename.endswith(file)):
                out.append(f"{e.filename}:\n{e.stack_trace}")
        return out

    def ensure_dag(self, dag_id: str, deadline: float) -> None:
        """Wait until Airflow knows the DAG; abort at once on an import error; unpause it once."""
        while True:
            dag = self.p.airflow.get_dag(dag_id)
            errors = self._import_errors_for(dag)
            if errors:
                raise ScenarioAborted(
                    f"DAG {dag_id!r} does not import (Airflow import error)", _tail("\n".join(errors), 60)
                )
            if dag is not None:
                break
            if time.monotonic() > deadline:
                raise ScenarioAborted(
                    f"DAG {dag_id!r} did not appear in Airflow within {DAG_APPEAR_TIMEOUT_S:.0f}s",
                    "check the dag-processor log (`sandbox logs airflow-dag-processor`) and the DAG folder",
                )
            self.progress(f"waiting for Airflow to parse DAG {dag_id}")
            self._check_cancelled(dag_id)
            time.sleep(POLL_S * 2)
        self.p.unpause_once(dag_id, bool(getattr(dag, "is_paused", True)))

    def _check_task_ids(self, dag_id: str, plan: list[RunSpec]) -> None:
        """The live DAG's task ids vs. those the scenario names (the static check may not know them)."""
        named: set[str] = set()
        for spec in plan:
            named |= set(spec.expect.tasks) | set(spec.expect.log_contains)
            named |= {f.task for f in spec.task_faults}
            for sf in spec.service_faults:
                points = [sf.at, sf.restore.at if sf.restore else None]
                named |= {p.task for p in points if isinstance(p, TaskPoint)}
        if not named:
            return
        known = self.p.airflow.task_ids(dag_id)
        unknown = sorted(named - set(known))
        if unknown:
            raise ScenarioAborted(
                f"the scenario names task id(s) {', '.join(unknown)} that DAG {dag_id!r} does not have",
                f"fix: use one of {', '.join(known)}",
            )

    # --- one DAG run --------------------------------------------------------------------------

    @staticmethod
    def _anticipated(spec: RunSpec, expect: Expect, task_id: str, try_number: int) -> bool:
        """Whether a failed try is part of the scenario (a fault, or an expected failure/retry)."""
        if any(f.task == task_id and try_number in f.tries for f in spec.task_faults):
            return True
        texp = expect.task_expectations().get(task_id)
        if texp is None:
            return expect.dag_run == "failed"
        if texp.state in ("failed", "upstream_failed"):
            return True
        return texp.try_number is not None and not texp.try_number.matches(1)

    def trigger_and_wait(
        self,
        dag_id: str,
        dag_run_id: str,
        conf: dict[str, Any],
        spec: RunSpec,
        expect: Expect,
        timeout: float,
        label: str = "",
        *,
        fail_fast: bool = True,
        controller: FaultController | None = None,
        timeline: Timeline | None = None,
    ) -> str:
        """Trigger and poll until a final state; returns it. Aborts early on an unexpected failure.

        With a ``controller``, service faults are injected and undone at their points, and the harness's
        own REST calls may fail while one is in place (and for a grace period after)."""
        timeline = timeline or Timeline()
        self._trigger(dag_id, dag_run_id, conf, controller)
        timeline.t0 = time.monotonic()
        timeline.add(f"triggered {dag_run_id}", "run")
        return self.wait_for_run(
            dag_id, dag_run_id, spec, expect, timeout, label,
            fail_fast=fail_fast, controller=controller, timeline=timeline,
        )  # fmt: skip

    def wait_for_run(
        self,
        dag_id: str,
        dag_run_id: str,
        spec: RunSpec,
        expect: Expect,
        timeout: float,
        label: str = "",
        *,
        fail_fast: bool = True,
        controller: FaultController | None = None,
        timeline: Timeline,
    ) -> str:
        """Poll a DAG run that exists (from ``timeline.t0``) until a final state; see trigger_and_wait."""
        started = timeline.t0
        deadline = started + timeout
        seen: dict[str, tuple[str | None, int]] = {}
        failing_since: float | None = None
        state, tis = "queued", []
        while True:
            try:
                state = self.p.airflow.dag_run_state(dag_id, dag_run_id)
                tis = self.p.airflow.task_instance_list(dag_id, dag_run_id)
                if failing_since is not None:
                    timeline.add("Airflow's REST API answers again", "run")
                failing_since = None
            except Exception as exc:
                if controller is None:
                    raise
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                    timeline.add(f"Airflow's REST API does not answer ({type(exc).__name__})", "run")
                if not controller.active() and now - failing_since > UNREACHABLE_GRACE_S:
                    raise
            for ti in tis:
                key = (ti.state, ti.try_number)
                if seen.get(ti.task_id) != key:
                    seen[ti.task_id] = key
                    if ti.state:
                        elapsed = time.monotonic() - started
                        timeline.add(f"{ti.task_id} try {ti.try_number}: {ti.state}")
                        self.progress(
                            f"{label}{ti.task_id}: {ti.state} (try {ti.try_number}) +{elapsed:.1f}s"
                        )
                if (
                    fail_fast
                    and ti.state in ("failed", "up_for_retry")
                    and not self._anticipated(spec, expect, ti.task_id, ti.try_number)
                ):
                    log = self.p.airflow.log(dag_id, dag_run_id, ti.task_id, ti.try_number)
                    self._stop(dag_id, dag_run_id)
                    raise ScenarioAborted(
                        f"task {ti.task_id} failed unexpectedly (try {ti.try_number}, "
                        f"dag_run_id {dag_run_id}); last {LOG_TAIL_LINES} log lines:",
                        _tail(log),
                    )
            if controller is not None:
                controller.observe(tis, fresh=failing_since is None)
            if state in FINAL_DAG_STATES:
                timeline.add(f"DAG run {state}", "run")
                return state
            if time.monotonic() > deadline:
                running = [t for t in tis if t.state not in ("success", None)]
                detail = "\n".join(f"{t.task_id}: {t.state} (try {t.try_number})" for t in tis)
                for t in running[:1]:
                    detail += f"\nlog tail of {t.task_id}:\n" + _tail(
                        self.p.airflow.log(dag_id, dag_run_id, t.task_id, t.try_number), 20
                    )
                self._stop(dag_id, dag_run_id)
                raise ScenarioAborted(
                    f"DAG run {dag_run_id} still {state} after the scenario timeout of {timeout:.0f}s", detail
                )
            self._check_cancelled(dag_id, dag_run_id)
            time.sleep(POLL_S)

    def _trigger(
        self, dag_id: str, dag_run_id: str, conf: dict[str, Any], controller: FaultController | None
    ) -> None:
        """Trigger the run; with service faults in place (``run_start``), retry while the API is down."""
        give_up = time.monotonic() + UNREACHABLE_GRACE_S
        while True:
            try:
                self.p.airflow.trigger(dag_id, dag_run_id, conf)
                return
            except Exception:
                if controller is None or time.monotonic() > give_up:
                    raise
                time.sleep(POLL_S * 2)

    def _stop(self, dag_id: str, dag_run_id: str) -> None:
        """Mark an abandoned DAG run failed so its retries do not hold the DAG's only active slot."""
        # Best effort: the scenario's verdict is already decided.
        with contextlib.suppress(Exception):
            self.p.airflow.mark_dag_run_failed(dag_id, dag_run_id)

    def observe(
        self, dag_id: str, dag_run_id: str, experiment: str, model: str, log_tasks: set[str] | None
    ) -> RunObservation:
        """Collect what the platform recorded for one DAG run (logs of ``log_tasks``, all when None,
        and of every failed task)."""
        af = self.p.airflow
        run = af.dag_run(dag_id, dag_run_id)
        obs = RunObservation(
            dag_id=dag_id,
            dag_run_id=dag_run_id,
            state=str(getattr(run.state, "value", run.state)),
            conf=dict(run.conf or {}),
        )
        for ti in af.task_instance_list(dag_id, dag_run_id):
            tries = (
                af.tries(dag_id, dag_run_id, ti.task_id)
                if ti.try_number > 1
                else [ti]
                if ti.try_number == 1
                else []
            )
            obs.tasks[ti.task_id] = TaskObservation(
                ti.task_id,
                ti.state,
                ti.try_number,
                ti.duration,
                [TaskTry(t.try_number, t.state, t.duration, t.start_date, t.end_date) for t in tries],
            )
        failed = {t for t, o in obs.tasks.items() if o.state == "failed"}
        for task_id in sorted(set(obs.tasks) if log_tasks is None else log_tasks | failed):
            task = obs.tasks.get(task_id)
            if task is None or task.try_number < 1:
                continue
            obs.logs[task_id] = "\n".join(
                af.log(dag_id, dag_run_id, task_id, n) for n in range(1, task.try_number + 1)
            )
        obs.mlflow_runs = self.p.mlflow.runs_of(experiment, dag_run_id, run.start_date)
        obs.registry = self.p.mlflow.registry(model)
        for version in obs.own_versions():
            version.artifact_files = self.p.artifact_files(version.artifact_location)
        obs.s3_objects = self.p.s3.list_keys(self.p.data_bucket, f"runs/{dag_run_id}/")
        return obs

    def _one_run(
        self,
        scenario: Scenario,
        spec: RunSpec,
        anticipate: Expect,
        dag_run_id: str,
        conf: dict[str, Any],
        names: tuple[str, str],
        timeline: Timeline,
        label: str,
    ) -> list[str]:
        """Arm the run's task faults, trigger it and wait; its service faults are injected at their
        points and undone however the run ends (also on Ctrl-C or SIGTERM). Returns what went wrong
        with the service faults (one never injected, one not undone)."""
        controller = None
        if spec.service_faults:
            controller = FaultController(
                self.p, spec.service_faults, dag_run_id=dag_run_id, experiment=names[0], model=names[1],
                timeline=timeline, progress=lambda m: self.progress(f"{label}{m}"),
            )  # fmt: skip
        holds = controller.holds() if controller else []
        with faults_mod.armed(self.p.airflow, dag_run_id, spec.task_faults, holds), _terminated_raises():
            try:
                if controller is not None:
                    controller.before_trigger()
                self.progress(f"{label}triggered {dag_run_id}")
                self.trigger_and_wait(
                    scenario.dag, dag_run_id, conf, spec, anticipate, scenario.timeout, label,
                    controller=controller, timeline=timeline,
                )  # fmt: skip
            finally:
                if controller is not None:
                    with _sigint_ignored():
                        controller.finish()
        return controller.problems() if controller is not None else []

    # --- a whole scenario ---------------------------------------------------------------------

    @staticmethod
    def _setup(
        scenario: Scenario, plan: list[RunSpec], i: int, slug: str, token: str, result: ScenarioResult
    ) -> tuple[str, str, Expect, dict[str, Any]]:
        """Run ``i``'s progress label, dag_run_id, what it may see fail, and its conf."""
        spec = plan[i]
        label = f"run {i + 1}/{len(plan)} " if len(plan) > 1 else ""
        # Intermediate runs of `runs: N` carry no expectations; the scenario's tell what may fail.
        anticipate = spec.expect if spec.expect != Expect() else (scenario.expect or Expect())
        dag_run_id = f"sbx__{slug}__{token}__{i + 1}"
        conf = {**spec.conf, "experiment_name": result.experiment_name, "model_name": result.model_name}
        return label, dag_run_id, anticipate, conf

    def _record(
        self,
        scenario: Scenario,
        plan: list[RunSpec],
        i: int,
        dag_run_id: str,
        wall: float,
        result: ScenarioResult,
        label: str,
    ) -> None:
        """Observe run ``i`` and check it against its expectations."""
        spec = plan[i]
        obs = self.observe(
            scenario.dag, dag_run_id, result.experiment_name, result.model_name, set(spec.expect.log_contains)
        )
        obs.wall_seconds = wall
        mismatches = check(spec.expect, obs, prefix=f"runs[{i}].expect" if len(plan) > 1 else "expect")
        result.runs.append(RunResult(i, spec, obs, mismatches))
        self.progress(
            f"{label}{obs.state} in {obs.wall_seconds:.1f}s"
            + (f", {len(mismatches)} mismatch(es)" if mismatches else "")
        )

    def _check_concurrency(self, dag_id: str, runs: int) -> None:
        """Concurrent runs the DAG would queue one behind the other overlap nowhere: refuse them."""
        dag = self.p.airflow.get_dag(dag_id)
        limit = getattr(dag, "max_active_runs", None)
        if isinstance(limit, int) and limit < runs:
            raise ScenarioAborted(
                f"DAG {dag_id!r} allows {limit} active run(s) (max_active_runs), so this scenario's {runs} "
                "concurrent runs would queue one behind the other instead of overlapping",
                "raise it in the deployment config: MLOPS_MAX_ACTIVE_RUNS in the Airflow values overlay "
                "(charts/airflow/values-local.yaml, values-sandbox.yaml)",
            )

    def _run_concurrently(
        self, scenario: Scenario, plan: list[RunSpec], result: ScenarioResult, slug: str, token: str
    ) -> None:
        """Trigger every run at once, wait for all of them, then observe and check each (the registry as
        all of them left it). One run failing unexpectedly does not stop the others."""
        from concurrent.futures import ThreadPoolExecutor

        setups = [self._setup(scenario, plan, i, slug, token, result) for i in range(len(plan))]
        timelines = [Timeline() for _ in plan]
        result.timelines.extend(timelines)
        names = (result.experiment_name, result.model_name)
        walls: list[float] = [0.0] * len(plan)

        def one(i: int) -> None:
            label, dag_run_id, anticipate, conf = setups[i]
            t0 = time.monotonic()
            try:
                self._one_run(scenario, plan[i], anticipate, dag_run_id, conf, names, timelines[i], label)
            finally:
                walls[i] = time.monotonic() - t0

        pool = ThreadPoolExecutor(len(plan), thread_name_prefix="scenario-run")
        try:
            with _terminated_raises():
                futures = [pool.submit(one, i) for i in range(len(plan))]
                errors = [f.exception() for f in futures]
        except BaseException:  # Ctrl-C: each thread marks its run failed at its next poll and ends
            self.cancelled.set()
            raise
        finally:
            pool.shutdown(wait=True)
        for i, (label, dag_run_id, _anticipate, _conf) in enumerate(setups):
            if not isinstance(errors[i], ScenarioAborted):
                self._record(scenario, plan, i, dag_run_id, walls[i], result, label)
        for error in errors:
            if error is not None:
                raise error

    def _run_scheduled(self, scenario: Scenario, plan: list[RunSpec], result: ScenarioResult) -> None:
        """The one run the scheduler makes from the DAG's schedule (``sandbox.scenarios.schedule``): the
        latest interval made due, schedules on, the new scheduled run awaited and waited for, schedules
        off again however it ends. MLflow is observed under the DAG's default names (the run's)."""
        backend, af, dag_id = self.p.backend, self.p.airflow, scenario.dag
        if not isinstance(backend, Schedules) or "schedules" not in backend.capabilities():
            raise ScenarioAborted(f"the {backend.name} backend cannot turn the DAG's schedule on")
        try:
            defaults = schedule_mod.rewind(af, dag_id, self.progress).param_defaults
        except schedule_mod.ScheduleError as exc:
            raise ScenarioAborted(exc.reason, exc.detail) from exc
        result.experiment_name, result.model_name = (str(defaults.get(key, "")) for key in RESERVED_CONF)
        before = schedule_mod.scheduled_runs(af, dag_id)
        timeline = Timeline()  # t0: the schedule turned on, this run's "trigger"
        result.timelines.append(timeline)
        self.progress("turning the DAG's schedule on")
        try:
            with _terminated_raises():
                timeline.add(backend.set_schedules(True), "run")
                deadline = timeline.t0 + scenario.timeout
                dag_run_id = schedule_mod.await_new_run(
                    af, dag_id, before, deadline, lambda: self._check_cancelled(dag_id)
                )
                result.scheduled_runs.append(dag_run_id)
                timeline.add(f"the scheduler made {dag_run_id}", "run")
                self.progress(f"the scheduler made {dag_run_id}")
                self.wait_for_run(
                    dag_id, dag_run_id, plan[0], plan[0].expect, scenario.timeout, timeline=timeline
                )
        except schedule_mod.ScheduleError as exc:
            raise ScenarioAborted(exc.reason, exc.detail) from exc
        except SandboxError as exc:  # the scheduler did not come back with schedules on, or the API failed
            raise ScenarioAborted(f"the scheduled run could not be made or followed: {exc}") from exc
        finally:
            with _sigint_ignored():
                self.progress("turning the DAG's schedule off")
                try:
                    timeline.add(backend.set_schedules(False), "run")
                    off_error = None
                except SandboxError as exc:
                    off_error = exc
        if off_error is not None:
            raise ScenarioAborted(
                f"the schedule could not be turned off again: {off_error}",
                "`sandbox up` restarts the scheduler without it",
            )
        self._record(scenario, plan, 0, dag_run_id, timeline.now(), result, "")

    def run(self, scenario: Scenario, path: Path | None = None) -> ScenarioResult:
        """Run every DAG run of the scenario; never raises for platform behaviour (see the result)."""
        experiment, model = isolation_names(scenario, path)
        result = ScenarioResult(scenario, path, experiment, model)
        started = time.monotonic()
        plan = scenario.plan()
        slug = _slug(path.stem if path else scenario.name, 24)
        token = experiment.rsplit("-", 1)[-1]
        try:
            self.ensure_dag(scenario.dag, time.monotonic() + DAG_APPEAR_TIMEOUT_S)
            self._check_task_ids(scenario.dag, plan)
            if scenario.trigger == "schedule":
                self._run_scheduled(scenario, plan, result)
            elif scenario.concurrent:
                self._check_concurrency(scenario.dag, len(plan))
                self._run_concurrently(scenario, plan, result, slug, token)
            else:
                for i, spec in enumerate(plan):
                    label, dag_run_id, anticipate, conf = self._setup(scenario, plan, i, slug, token, result)
                    t0 = time.monotonic()
                    timeline = Timeline()
                    result.timelines.append(timeline)
                    names = (result.experiment_name, result.model_name)
                    problems = self._one_run(
                        scenario, spec, anticipate, dag_run_id, conf, names, timeline, label
                    )
                    self._record(scenario, plan, i, dag_run_id, time.monotonic() - t0, result, label)
                    if problems:
                        raise ScenarioAborted(
                            "the scenario's service faults did not all happen as written", "\n".join(problems)
                        )
        except ScenarioAborted as exc:
            result.aborted = exc
        finally:
            result.wall_seconds = time.monotonic() - started
        return result


@contextlib.contextmanager
def _terminated_raises() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt while a run is in flight, so its faults are undone (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ctrl-C pressed again while faults are being undone must not leave a service down."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_scenarios(
    paths_: list[str] | list[Path] | None = None,
    backend: str = "local",
    sandbox_name: str = "default",
    keep: bool = False,
    extra_args: list[str] | None = None,
) -> int:
    """Run scenario files/folders through pytest (what ``sandbox run`` calls); returns pytest's exit code.

    Defaults to every scenario under ``scenarios/``. JUnit XML lands next to the Markdown report.
    """
    import pytest

    targets = [str(p) for p in (paths_ or [paths.SCENARIOS_DIR])]
    junit = paths.reports_dir() / f"junit-{sandbox_name}.xml"
    args = [
        *targets,
        "-p",
        "sandbox.pytest_plugin",
        "--rootdir",
        str(paths.PROJECT_ROOT),
        "--backend",
        backend,
        "--sandbox-name",
        sandbox_name,
        f"--junitxml={junit}",
        # In-process pytest after the clients were imported: their modules cannot be rewritten (harmless).
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        *(["--keep"] if keep else []),
        *(extra_args or []),
    ]
    return int(pytest.main(args))
