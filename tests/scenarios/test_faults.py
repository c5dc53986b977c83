"""Faults: what the runner arms (an Airflow Variable per DAG run) is what the cluster policy matches.

The policy itself runs in Airflow: tests/pipeline/test_local_runtime.py (``dag.test``) and the
``transient_retry`` scenario (a real stack) show a try failed by it and retried.
"""

from __future__ import annotations

import json

from sandbox.platform.airflow_local_settings import VARIABLE_PREFIX, armed_message, fault_variable
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


def test_armed_faults_are_what_the_policy_matches() -> None:
    store = Variables()
    faults.arm(store, "run-a", [Fault(task="train_model", tries=[1], message="boom")])
    faults.arm(store, "run-b", [Fault(task="preprocess_data", tries=[1, 2])])
    a = json.loads(store.values[fault_variable("run-a")])
    assert armed_message(a, "train_model", 1) == "boom"
    assert armed_message(a, "train_model", 2) is None
    assert armed_message(a, "preprocess_data", 1) is None
    b = json.loads(store.values[fault_variable("run-b")])
    assert armed_message(b, "preprocess_data", 2) == "transient failure injected by the scenario"


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
