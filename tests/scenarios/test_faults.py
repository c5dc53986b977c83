"""Faults: what the runner arms (an Airflow Variable per DAG run) is what the cluster policy matches.

The policy itself runs in Airflow: tests/pipeline/test_local_runtime.py (``dag.test``) and the
``transient_retry`` scenario (a real stack) show a try failed by it and retried.
"""

from __future__ import annotations

import json

from sandbox.platform.airflow_local_settings import (
    HOLD_RELEASED,
    HOLD_WAITING,
    VARIABLE_PREFIX,
    armed_message,
    fault_variable,
    held,
    hold_variable,
    parse_armed,
)
from sandbox.scenarios import faults
from sandbox.scenarios.model import Fault


class Variables:
    """An in-memory stand-in for Airflow's Variable API (the real one is exercised end to end)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def set_variable(self, key: str, value: str, description: str = "") -> None:
        self.values[key] = value

    def delete_variable(self, key: str) -> None:
        self.values.pop(key, None)

    def get_variable(self, key: str) -> str | None:
        return self.values.get(key)


def test_armed_faults_are_what_the_policy_matches() -> None:
    store = Variables()
    faults.arm(store, "run-a", [Fault(task="train_model", tries=[1], message="boom")])
    faults.arm(store, "run-b", [Fault(task="preprocess_data", tries=[1, 2])])
    a = parse_armed(store.values[fault_variable("run-a")])["faults"]
    assert armed_message(a, "train_model", 1) == "boom"
    assert armed_message(a, "train_model", 2) is None
    assert armed_message(a, "preprocess_data", 1) is None
    b = parse_armed(store.values[fault_variable("run-b")])["faults"]
    assert armed_message(b, "preprocess_data", 2) == "transient failure injected by the scenario"


def test_holds_are_armed_with_the_faults_and_released_through_their_own_variable() -> None:
    store = Variables()
    with faults.armed(store, "run-a", [], [("train_model", 1)]):
        armed = parse_armed(store.values[fault_variable("run-a")])
        assert armed["faults"] == []
        assert held(armed["holds"], "train_model", 1) == 300.0
        assert held(armed["holds"], "train_model", 2) is None
        key = hold_variable("run-a", "train_model", 1)
        assert not faults.hold_reached(store, "run-a", ("train_model", 1))
        store.values[key] = HOLD_WAITING  # what the policy writes when the try is held
        assert faults.hold_reached(store, "run-a", ("train_model", 1))
        faults.release(store, "run-a", ("train_model", 1))
        assert store.values[key] == HOLD_RELEASED
    assert store.values == {}  # the armed Variable and the hold's are gone: a try still held goes on


def test_the_earlier_list_form_still_reads_as_faults() -> None:
    old = json.dumps([{"task_id": "t", "tries": [1], "message": "m"}])
    assert parse_armed(old) == {"faults": [{"task_id": "t", "tries": [1], "message": "m"}], "holds": []}
    assert parse_armed("not json") == {"faults": [], "holds": []}
    assert parse_armed(None) == {"faults": [], "holds": []}


def test_disarm_and_the_context_manager_remove_one_runs_faults() -> None:
    store = Variables()
    faults.arm(store, "run-b", [Fault(task="train_model")])
    with faults.armed(store, "run-a", [Fault(task="train_model")]):
        assert set(store.values) == {fault_variable("run-a"), fault_variable("run-b")}
    assert set(store.values) == {fault_variable("run-b")}
    faults.disarm(store, "run-b")
    assert store.values == {}
    with faults.armed(store, "run-c", []):
        assert store.values == {}  # nothing armed, nothing to call


def test_variable_keys_are_valid_for_any_run_id() -> None:
    assert fault_variable("sbx__happy-path__abc123__1") == VARIABLE_PREFIX + "sbx__happy-path__abc123__1"
    odd = fault_variable("manual__2026-11-27T12:00:00+00:00")
    assert odd.startswith(VARIABLE_PREFIX + "sha256_") and len(odd) < 250
    assert odd == fault_variable("manual__2026-11-27T12:00:00+00:00")


def test_garbage_in_the_variable_arms_nothing() -> None:
    assert armed_message(None, "t", 1) is None
    assert armed_message({"task_id": "t"}, "t", 1) is None
    assert armed_message(["x", {"task_id": "t", "tries": None}], "t", 1) is None
