"""The fault controller's points and timing, and the fault timeline in the reports.

The controller decides *when* to inject and undo; it is driven here with task instances as Airflow's
REST API reports them and a recording service control. The real injection (signals, restarts, health)
is tested on real processes in tests/local/test_service_faults.py and end to end by scenarios/fault_*.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from sandbox.clients.airflow import TaskInstance
from sandbox.report import write_markdown
from sandbox.scenarios.chaos import FaultController, Timeline
from sandbox.scenarios.model import Scenario, ServiceFault
from sandbox.scenarios.runner import ScenarioResult


class _Control:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name
        self.actions = frozenset({"stop", "kill", "pause", "unavailable"})

    def inject(self, action: str) -> str:
        self.log.append(f"inject {self.name} {action}")
        return "done"

    def restore(self, action: str) -> str:
        self.log.append(f"restore {self.name} {action}")
        return "back"


class _Backend:
    name = "recording"

    def __init__(self) -> None:
        self.log: list[str] = []

    def service_control(self, name: str) -> _Control:
        return _Control(self.log, name)

    def revive(self, skip: Iterable[str] = ()) -> list[str]:
        return []


class _Platform:
    def __init__(self) -> None:
        self.backend = _Backend()
        self.airflow = self.mlflow = None


def _controller(fault: dict) -> tuple[FaultController, list[str]]:
    platform = _Platform()
    c = FaultController(
        platform, [ServiceFault.model_validate(fault)], dag_run_id="r", experiment="e", model="m",
        timeline=Timeline(),
    )  # fmt: skip
    return c, platform.backend.log


def _settle(c: FaultController) -> None:
    for future in list(c._futures):
        future.result(timeout=10)


def _ti(task: str, state: str, try_number: int = 1) -> TaskInstance:
    return TaskInstance(task, state, try_number, None)


def test_an_end_point_injects_after_the_try_ends_and_restore_after_runs_by_time() -> None:
    at_end = {"task": "preprocess_data", "event": "end"}
    c, log = _controller({"service": "mlflow", "action": "stop", "at": at_end, "restore": {"after": 0.2}})
    c.observe([_ti("preprocess_data", "running")])
    _settle(c)
    assert log == []
    c.observe([_ti("preprocess_data", "success")])
    _settle(c)
    assert log == ["inject mlflow stop"]
    time.sleep(0.3)
    # Airflow's REST API does not answer (Postgres is down, say): the restore by time happens anyway.
    c.observe([_ti("preprocess_data", "success")], fresh=False)
    _settle(c)
    assert log == ["inject mlflow stop", "restore mlflow stop"]
    c.finish()
    assert c.problems() == []
    (record,) = c.records
    assert record.recovery_seconds is not None
    assert "injected +" in record.summary() and "recovery" in record.summary()


def test_points_are_not_looked_for_in_stale_task_states() -> None:
    c, log = _controller({"service": "s3", "action": "kill", "at": {"task": "train_model", "event": "end"}})
    c.observe([_ti("train_model", "failed")], fresh=False)
    _settle(c)
    assert log == []
    c.finish()


def test_a_fault_whose_point_never_came_is_a_problem_and_one_in_place_is_undone_by_finish() -> None:
    c, log = _controller({"service": "postgres", "action": "pause",
                          "at": {"task": "evaluate_and_register", "event": "end"}})  # fmt: skip
    c.finish()
    assert log == []
    assert "was never injected" in c.problems()[0]
    c, log = _controller({"service": "mlflow", "action": "kill", "at": "run_start"})
    c.before_trigger()
    assert log == ["inject mlflow kill"]
    c.finish()  # restore defaults to the end of the DAG run
    assert log == ["inject mlflow kill", "restore mlflow kill"]
    assert c.problems() == []


def test_the_timeline_reaches_the_failure_text_and_the_markdown_report(tmp_path: Path) -> None:
    c, _ = _controller({"service": "mlflow", "action": "stop", "at": "run_start"})
    c.timeline.add("train_model try 1: running")
    c.before_trigger()
    c.finish()
    sc = Scenario.model_validate({
        "apiVersion": "mlops-sandbox/v1", "name": "t", "exclusive": True,
        "faults": [{"service": "mlflow", "action": "stop", "at": "run_start"}],
    })  # fmt: skip
    result = ScenarioResult(sc, None, "e", "m", timelines=[c.timeline])
    text = result.timeline_text()
    assert "train_model try 1: running" in text
    assert "mlflow stop: in place" in text and "mlflow back" in text
    assert "fault: mlflow stop at run_start" in text
    report = write_markdown(
        [], [], backend="local", sandbox_name="t", total_wall=1.0, dest=tmp_path, timelines=[("t", text)]
    )
    body = report.read_text()
    assert "## Fault timelines" in body and "mlflow back" in body
