"""Faults file: per-DAG-run arming/disarming, in the format the DAG's LocalJobOperator reads."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from sandbox import paths
from sandbox.scenarios import faults
from sandbox.scenarios.model import Fault


def test_arm_and_disarm_are_per_dag_run(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    faults.arm(path, "run-a", [Fault(task="train_model", tries=[1], message="boom")])
    faults.arm(path, "run-b", [Fault(task="preprocess_data", tries=[1, 2])])
    assert json.loads(path.read_text()) == {
        "faults": [
            {"dag_run_id": "run-a", "task_id": "train_model", "tries": [1], "message": "boom"},
            {
                "dag_run_id": "run-b",
                "task_id": "preprocess_data",
                "tries": [1, 2],
                "message": "transient failure injected by the scenario",
            },
        ]
    }
    faults.disarm(path, "run-a")
    assert [f["dag_run_id"] for f in faults.read(path)] == ["run-b"]
    faults.disarm(path, "run-b")
    assert faults.read(path) == []


def test_concurrent_scenarios_do_not_lose_each_others_faults(tmp_path: Path) -> None:
    path = tmp_path / "faults.json"
    threads = [
        threading.Thread(target=faults.arm, args=(path, f"run-{i}", [Fault(task="train_model")]))
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(f["dag_run_id"] for f in faults.read(path)) == sorted(f"run-{i}" for i in range(20))


def test_the_dag_operator_reads_what_the_harness_writes(tmp_path: Path) -> None:
    sys.path.insert(0, str(paths.DAGS_DIR))
    try:
        from mlops_pipeline.operators import armed_fault
    finally:
        sys.path.remove(str(paths.DAGS_DIR))
    path = tmp_path / "faults.json"
    faults.arm(path, "run-a", [Fault(task="train_model", tries=[1], message="simulated node loss")])
    assert armed_fault(str(path), "run-a", "train_model", 1) == "simulated node loss"
    assert armed_fault(str(path), "run-a", "train_model", 2) is None
    assert armed_fault(str(path), "run-b", "train_model", 1) is None
