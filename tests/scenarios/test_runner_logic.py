"""Runner decisions that need no stack: which failures are expected, log rendering, isolation names."""

from __future__ import annotations

from sandbox.clients.airflow import render_log_entry
from sandbox.scenarios.model import Expect, RunSpec, Scenario
from sandbox.scenarios.runner import Runner, isolation_names


def spec(**kw: object) -> RunSpec:
    return RunSpec.model_validate(kw)


def test_a_failure_is_anticipated_only_when_the_scenario_says_so() -> None:
    ant = Runner._anticipated
    plain = spec(expect={"dag_run": "success"})
    assert not ant(plain, plain.expect, "train_model", 1)
    faulty = spec(faults=[{"task": "train_model", "tries": [1]}])
    assert ant(faulty, Expect(), "train_model", 1)
    assert not ant(faulty, Expect(), "train_model", 2)
    retry = spec(expect={"tasks": {"train_model": {"try_number": 2}}})
    assert ant(retry, retry.expect, "train_model", 1)
    gate = spec(
        expect={"dag_run": "failed", "tasks": {"evaluate_and_register": "failed", "train_model": "success"}}
    )
    assert ant(gate, gate.expect, "evaluate_and_register", 1)
    assert not ant(gate, gate.expect, "train_model", 1)
    assert ant(gate, gate.expect, "preprocess_data", 1)  # not named, and the run is expected to fail


def test_structured_log_entries_render_with_their_traceback() -> None:
    entry = {
        "timestamp": "2026-01-01T00:00:00Z",
        "event": "Task failed with exception",
        "level": "error",
        "logger": "task",
        "dag_id": "d",
        "error_detail": [
            {
                "exc_type": "RuntimeError",
                "exc_value": "boom",
                "frames": [{"filename": "f.py", "lineno": 3, "name": "run"}],
            }
        ],
    }
    assert render_log_entry(entry) == (
        "[2026-01-01T00:00:00Z] ERROR Task failed with exception\n"
        "Traceback (most recent call last):\n"
        '  File "f.py", line 3, in run\n'
        "RuntimeError: boom"
    )
    assert render_log_entry({"event": "hello", "level": "info", "rows": 3}) == "INFO hello rows=3"
    assert render_log_entry("plain line") == "plain line"


def test_isolation_names_are_fresh_per_execution() -> None:
    sc = Scenario.model_validate({"apiVersion": "mlops-sandbox/v1", "name": "Gate blocks: a weak model!"})
    a, b = isolation_names(sc)[0], isolation_names(sc)[0]
    assert a != b
    assert a.startswith("sbx-gate-blocks-a-weak-model-")
