"""The concurrent pair (``scenarios/concurrent_runs_gate_their_own.yaml``) tells a gate that judges its own
run from one that judges "the latest run of the experiment" (the recipe's bug), on a real local stack.

One stack runs the job code from a scratch copy of ``jobs/`` (the local runtime starts each task fresh,
so an edit takes effect on the next task): the pair passes with the project's gate, then fails once the
copy's gate picks the latest run. Per-scenario experiment and model names hide that bug in every other
scenario: only runs that overlap in one experiment expose it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sandbox import paths
from sandbox.backends.local.backend import LocalBackend
from sandbox.scenarios.loader import load
from sandbox.scenarios.runner import Platform, Runner

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
PAIR = paths.SCENARIOS_DIR / "concurrent_runs_gate_their_own.yaml"

# The recipe's gate: whatever run of the experiment started last, and the version it registered.
LATEST_RUN_GATE = '''

def _gate(cfg, client, env):
    import dataclasses

    experiment = client.get_experiment_by_name(cfg.experiment_name)
    (latest,) = client.search_runs([experiment.experiment_id], order_by=["start_time DESC"], max_results=1)
    (version,) = client.search_model_versions(f"name='{cfg.model_name}' and run_id='{latest.info.run_id}'")
    judged = TrainResult(latest.info.run_id, cfg.model_name, int(version.version))
    return _gate_own_run(dataclasses.replace(cfg, train=judged), client, env)
'''


def with_latest_run_gate(jobs: Path) -> None:
    evaluate = jobs / "mlops_jobs" / "evaluate.py"
    source = evaluate.read_text()
    assert source.count("def _gate(") == 1, "evaluate.py changed shape: update this test's patch"
    evaluate.write_text(source.replace("def _gate(", "def _gate_own_run(") + LATEST_RUN_GATE)


def test_the_concurrent_pair_fails_a_gate_that_judges_the_latest_run(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    shutil.copytree(paths.JOBS_DIR, jobs, ignore=shutil.ignore_patterns("__pycache__"))
    backend = LocalBackend(f"pair-{os.getpid()}", jobs_folder=jobs, state_root=tmp_path / "state")
    scenario = load(PAIR).scenario
    try:
        backend.up()
        runner = Runner(Platform(backend), progress=print)

        own = runner.run(scenario, PAIR)
        assert own.verdict == "passed", own.failure_text()
        a, b = (r.observation.tasks["train_model"].tries[-1] for r in own.runs)
        assert a.start and a.end and b.start and b.end, own.failure_text()
        assert a.start < b.end and b.start < a.end, (
            "the two runs' train_model tries did not overlap: the pair proves nothing about the gate"
        )

        with_latest_run_gate(jobs)
        latest = runner.run(scenario, PAIR)
        text = latest.failure_text()
        print(text)  # the reason, for the record (pytest -rP)
        assert latest.verdict != "passed", "a gate that judges the latest run passed the concurrent pair"
        # One run was handed the other's verdict: a gate outcome (state, tag, alias) is what differs.
        assert any(
            word in text for word in ("evaluate_and_register", "quality_gate", "aliases.champion", "dag_run")
        ), text
    finally:
        backend.down(purge=True)
