"""Service faults during one DAG run: reach each fault's point, inject it, undo it, keep the timeline.

The runner calls ``observe`` on every poll with the task instances Airflow reports. Points:

- ``run_start``: before the DAG run is triggered (in a multi-run scenario: between runs).
- a try's ``start``: exact. The sandbox's cluster policy holds the try before its job runs (an armed
  hold, ``faults.payload``) until the fault is in place; only for Postgres and the api-server, which the
  release itself goes through, is the hold released first (the job is still starting: its interpreter
  and imports take seconds).
- a try's ``end``: the try reached a final state (success, failed, up_for_retry, ...), seen within
  one poll (~0.5 s).
- a try's ``registered``: the try has registered a model version while its job still runs. Between
  the registration and the end of the job's MLflow run there are milliseconds, so the point is made to
  hold still: as soon as the try's MLflow run exists, the run's row is locked in MLflow's database
  (``SELECT ... FOR NO KEY UPDATE``: inserts that reference the run go on, the UPDATE that ends it
  waits), the version is awaited, the fault injected, then the lock released. Needs a backend with SQL
  access to its Postgres (local).

``delay`` counts from the point. Restores run ``after`` seconds or at their own point, by default when
the DAG run ends; ``finish`` undoes whatever is still injected however the run ends. Actions run one at
a time on a worker thread, so polling (and the timeline) goes on while a service restarts. While no
fault is in place, services that exited are started again (``ServiceFaults.revive``), as Kubernetes'
restart policy would; each such restart is on the timeline.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sandbox.clients.airflow import TaskInstance
from sandbox.scenarios import faults as faults_mod
from sandbox.scenarios.model import RUN_START, ServiceFault, TaskPoint, point_label
from sandbox.stack import ServiceFaults

# States that end a try (``up_for_retry``: it failed and another try follows).
TRY_ENDED = ("success", "failed", "up_for_retry", "upstream_failed", "skipped", "removed")
# Services the harness's own REST calls go through: a hold on them is released before the fault.
RELEASE_NEEDS = ("postgres", "airflow-api-server")
REVIVE_EVERY_S = 2.0
MLFLOW_RUN_LOCK = "BEGIN; SELECT run_uuid FROM runs WHERE run_uuid = '{run_id}' FOR NO KEY UPDATE;"


@dataclass
class Event:
    """One line of a run's timeline: seconds since the DAG run was triggered, what, and its kind."""

    at: float
    text: str
    kind: str = "task"  # task | fault | run


@dataclass
class FaultRecord:
    """What happened to one service fault (times in seconds since the trigger)."""

    fault: ServiceFault
    injected: float | None = None
    restore_started: float | None = None
    restored: float | None = None
    detail: str = ""
    error: str = ""

    @property
    def recovery_seconds(self) -> float | None:
        """From the start of the restore until the service was back (healthy, or continued)."""
        if self.restored is None or self.restore_started is None:
            return None
        return self.restored - self.restore_started

    def summary(self) -> str:
        f = self.fault
        when = point_label(f.at)
        restore = (
            f"after {f.restore.after:g}s" if f.restore and f.restore.after is not None
            else f"at {f.restore.at.label()}" if f.restore and f.restore.at is not None
            else "at the end of the DAG run"
        )  # fmt: skip
        text = f"{f.service} {f.action} at {when}, restored {restore}"
        if self.injected is None:
            return text + ": never injected" + (f" ({self.error})" if self.error else "")
        text += f": injected +{self.injected:.1f}s"
        if self.restored is not None and self.restore_started is not None:
            text += f", back +{self.restored:.1f}s (recovery {self.restored - self.restore_started:.1f}s)"
        elif self.error:
            text += f", {self.error}"
        return text


@dataclass
class Timeline:
    """Task tries and faults of one DAG run, in order, relative to its trigger."""

    t0: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, text: str, kind: str = "task") -> Event:
        event = Event(round(self.now(), 2), text, kind)
        self.events.append(event)
        return event

    def render(self) -> str:
        ordered = sorted(self.events, key=lambda e: e.at)
        return "\n".join(f"{e.at:+8.1f}s  {e.kind:<5} {e.text}" for e in ordered)


def _try_state(tis: list[TaskInstance], task: str, try_number: int) -> str | None:
    """The state of one try as far as the current task instance tells: None when it has not started,
    'ended' once Airflow moved on to a later try."""
    for ti in tis:
        if ti.task_id == task:
            if ti.try_number > try_number:
                return "ended"
            if ti.try_number == try_number:
                return ti.state
    return None


class _RegisteredWatch:
    """The ``registered`` point of one task try (see the module docstring)."""

    def __init__(self, controller: FaultController, point: TaskPoint) -> None:
        self.c = controller
        self.point = point
        self.run_id: str | None = None
        self.session: Any = None
        self.missed = ""

    def poll(self, state: str | None) -> bool:
        p, c = self.point, self.c
        if self.missed:
            return False
        if self.run_id is None:
            if state != "running":
                if state is not None and state != "queued" and state != "scheduled":
                    self.missed = f"the try ended ({state}) before it logged an MLflow run"
                return False
            self.run_id = c.mlflow.find_run(c.experiment, c.dag_run_id, p.task, p.try_)
            if self.run_id is None:
                return False
            self.session = c.sql_session()
            self.session.execute(MLFLOW_RUN_LOCK.format(run_id=self.run_id))
            c.timeline.add(f"{p.task} try {p.try_}: MLflow run {self.run_id} found; its end held", "fault")
            if c.mlflow.run_status(self.run_id) != "RUNNING":
                self.missed = "its MLflow run had already ended when the point was armed"
                self.release()
                return False
        if c.mlflow.versions_of_run(c.model, self.run_id):
            return True
        if state not in ("running", None):
            self.missed = f"the try ended ({state}) without registering a version"
            self.release()
        return False

    def release(self) -> None:
        if self.session is not None:
            with contextlib.suppress(Exception):
                self.session.close()
            self.session = None


class FaultController:
    """Injects and undoes one DAG run's service faults (see the module docstring)."""

    def __init__(
        self,
        platform: Any,
        faults: list[ServiceFault],
        *,
        dag_run_id: str,
        experiment: str,
        model: str,
        timeline: Timeline,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        backend = platform.backend
        if not isinstance(backend, ServiceFaults):
            raise TypeError(f"the {backend.name} backend offers no service faults")
        self.backend: ServiceFaults = backend
        self.airflow = platform.airflow
        self.mlflow = platform.mlflow
        self.dag_run_id = dag_run_id
        self.experiment = experiment
        self.model = model
        self.timeline = timeline
        self.progress = progress or (lambda _m: None)
        self.records = [FaultRecord(f) for f in faults]
        timeline.faults = self.records
        self._due: dict[int, float] = {}  # record index -> time (since trigger) to inject
        self._restore_due: dict[int, float] = {}
        self._busy: set[int] = set()  # records with an action in flight
        self._active: set[int] = set()  # injected, not restored
        self._watches: dict[tuple[str, int], _RegisteredWatch] = {}
        self._released: set[tuple[str, int]] = set()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faults")
        self._futures: list[Future[None]] = []
        self._last_revive = 0.0

    # --- what the runner arms ------------------------------------------------------------------
    def holds(self) -> list[faults_mod.Hold]:
        """Task tries to hold before their job starts (the ``start`` points, exact)."""
        return sorted(
            {(r.fault.at.task, r.fault.at.try_) for r in self.records
             if isinstance(r.fault.at, TaskPoint) and r.fault.at.event == "start"}
        )  # fmt: skip

    def sql_session(self) -> Any:
        session = getattr(self.backend, "sql_session", None)
        if session is None:
            raise TypeError("this backend gives no SQL access to MLflow's database")
        return session(self.backend.mlflow_database())  # type: ignore[attr-defined]

    # --- the run ---------------------------------------------------------------------------------
    def before_trigger(self) -> None:
        """Inject the ``run_start`` faults (and wait until they are in place)."""
        for i, r in enumerate(self.records):
            if r.fault.at == RUN_START:
                self._inject(i)

    def observe(self, tis: list[TaskInstance], fresh: bool = True) -> None:
        """One poll: reach points, start due injections and restores, revive crashed services.

        ``fresh`` is False when Airflow's REST API did not answer this poll (``tis`` are the last ones
        seen): points are not looked for then, but what is due by time (a delay, ``restore.after``)
        still happens, or a Postgres stopped for 5 s would stay down as long as the API cannot answer."""
        now = self.timeline.now()
        for i, r in enumerate(self.records):
            if fresh and r.injected is None and not r.error and i not in self._busy and i not in self._due:
                if self._reached(r.fault.at, tis):
                    assert isinstance(r.fault.at, TaskPoint)
                    self._due[i] = now + r.fault.at.delay
                elif isinstance(r.fault.at, TaskPoint) and (missed := self._missed(r.fault.at)):
                    r.error = f"point {r.fault.at.label()} missed: {missed}"
                    self.timeline.add(f"{r.fault.label()}: {r.error}", "fault")
            if i in self._due and i not in self._busy and now >= self._due[i]:
                del self._due[i]
                self._submit(i, self._inject)
            if i in self._active and i not in self._busy and self._restore_reached(i, tis, now, fresh):
                self._submit(i, self._restore)
        if fresh:
            self._release_unheld()
        if not self._active and not self._busy and time.monotonic() - self._last_revive > REVIVE_EVERY_S:
            self._last_revive = time.monotonic()
            self._submit(None, lambda _i: self._revive())

    def active(self) -> bool:
        """Whether a fault is in place (or an action is running): the harness's REST calls may fail."""
        return bool(self._active or self._busy)

    def finish(self) -> None:
        """Undo every fault still in place (newest first), release held points, revive crashed
        services; waits for all of it. Safe to call more than once."""
        for future in self._futures:
            with contextlib.suppress(Exception):
                future.result(timeout=900)
        for watch in self._watches.values():
            watch.release()
        for i in sorted(self._active, reverse=True):
            self._restore(i)
        self._revive()
        self._pool.shutdown(wait=True)

    def problems(self) -> list[str]:
        """Faults that were never injected or not undone: the scenario did not test what it says."""
        out = []
        for r in self.records:
            if r.injected is None:
                out.append(f"service fault '{r.fault.label()}' was never injected: " + (
                    r.error or f"its point ({point_label(r.fault.at)}) was not reached in this DAG run"))
            elif r.restored is None:
                out.append(f"service fault '{r.fault.label()}' was not undone: {r.error or 'restore failed'}")
        return out

    # --- points ----------------------------------------------------------------------------------
    @staticmethod
    def _key(point: TaskPoint) -> tuple[str, int]:
        return point.task, point.try_

    def _reached(self, point: Any, tis: list[TaskInstance]) -> bool:
        if not isinstance(point, TaskPoint):
            return False
        state = _try_state(tis, point.task, point.try_)
        if point.event == "end":
            return state in (*TRY_ENDED, "ended")
        if point.event == "registered":
            watch = self._watches.setdefault(self._key(point), _RegisteredWatch(self, point))
            return watch.poll(state)
        # start: the try waits in the cluster policy (exact); a try already past its start: late.
        if state == "running":
            return faults_mod.hold_reached(self.airflow, self.dag_run_id, self._key(point))
        return state in (*TRY_ENDED, "ended")

    def _missed(self, point: TaskPoint) -> str:
        watch = self._watches.get(self._key(point))
        return watch.missed if watch is not None and point.event == "registered" else ""

    def _restore_reached(self, i: int, tis: list[TaskInstance], now: float, fresh: bool = True) -> bool:
        r = self.records[i]
        restore = r.fault.restore
        if restore is None:
            return False  # at the end of the DAG run: finish()
        if restore.after is not None:
            return r.injected is not None and now >= r.injected + restore.after
        assert restore.at is not None
        if i not in self._restore_due:
            if not fresh or restore.at.event == "registered" or not self._reached(restore.at, tis):
                return False
            self._restore_due[i] = now + restore.at.delay
        return now >= self._restore_due[i]

    def _release_unheld(self) -> None:
        """Release held tries whose faults are due later (a delay), failed, or in place."""
        for key in self.holds():
            related = [i for i, r in enumerate(self.records)
                       if isinstance(r.fault.at, TaskPoint) and r.fault.at.event == "start"
                       and self._key(r.fault.at) == key]  # fmt: skip
            settled = all(
                i in self._due or self.records[i].injected is not None or self.records[i].error
                for i in related
            )
            if settled and not any(i in self._busy for i in related):
                self._release(key)

    def _release(self, key: faults_mod.Hold) -> None:
        if key not in self._released:
            self._released.add(key)
            with contextlib.suppress(Exception):
                faults_mod.release(self.airflow, self.dag_run_id, key)

    # --- actions (worker thread) -----------------------------------------------------------------
    def _submit(self, i: int | None, action: Callable[[int], None]) -> None:
        if i is not None:
            self._busy.add(i)

        def run() -> None:
            try:
                action(i)  # type: ignore[arg-type]
            finally:
                if i is not None:
                    self._busy.discard(i)

        self._futures = [f for f in self._futures if not f.done()]
        self._futures.append(self._pool.submit(run))

    def _inject(self, i: int) -> None:
        r = self.records[i]
        f = r.fault
        point = f.at if isinstance(f.at, TaskPoint) else None
        held = point is not None and point.event == "start" and point.delay == 0
        if held and f.service in RELEASE_NEEDS:
            assert point is not None
            self._release(self._key(point))
        text = f"{f.service} {f.action}"
        self.progress(f"fault: {text} at {point_label(f.at)}")
        self.timeline.add(f"{text}: injecting (at {point_label(f.at)})", "fault")
        try:
            detail = self.backend.service_control(f.service).inject(f.action)
        except Exception as exc:
            r.error = f"inject failed: {exc}"
            self.timeline.add(f"{text}: {r.error}", "fault")
            return
        finally:
            if point is not None and point.event == "registered":
                self._watches[self._key(point)].release()
        r.injected = self.timeline.now()
        r.detail = detail
        self._active.add(i)
        self.timeline.add(f"{text}: in place ({detail})", "fault")
        if held:
            assert point is not None
            self._release(self._key(point))

    def _restore(self, i: int) -> None:
        r = self.records[i]
        if i not in self._active:
            return
        f = r.fault
        text = f"{f.service} {f.action}"
        r.restore_started = self.timeline.now()
        self.timeline.add(f"{text}: restoring", "fault")
        self.progress(f"fault: restoring {f.service}")
        try:
            detail = self.backend.service_control(f.service).restore(f.action)
        except Exception as exc:
            r.error = f"restore failed: {exc}"
            self.timeline.add(f"{text}: {r.error}", "fault")
            self._active.discard(i)
            return
        r.restored = self.timeline.now()
        self._active.discard(i)
        self.timeline.add(f"{f.service} back ({detail})", "fault")
        self.progress(f"fault: {f.service} back ({detail})")

    def _revive(self) -> None:
        skip = {self.records[i].fault.service for i in self._active}
        try:
            revived = self.backend.revive(skip)
        except Exception as exc:
            self.timeline.add(f"restarting exited services failed: {exc}", "fault")
            return
        for name in revived:
            self.timeline.add(f"{name} had exited: started again (as a restart policy would)", "fault")
            self.progress(f"fault: {name} had exited; started again")
