"""A scenario session fails when the scheduler made a DAG run that no scenario triggered (the daily DAG's
first unpause adds the latest interval's run unless the sandbox turns the schedule off). Shown on a
scratch copy of the project whose local overlay turns it back on, through a real pytest session on a
real local stack (slow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sandbox import paths
from sandbox.backends.local.backend import LocalBackend

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SCENARIO = "unknown_dataset.yaml"  # the shortest built-in: its run fails in preprocess_data


def scratch_project(tmp_path: Path) -> Path:
    """The project's code, DAGs, jobs and charts, with ``use_job_schedule`` removed from the overlay."""
    root = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("sandbox", "dags", "jobs", "charts", "requirements"):
        shutil.copytree(paths.PROJECT_ROOT / folder, root / folder, ignore=ignore)
    (root / "scenarios").mkdir()
    shutil.copy(paths.SCENARIOS_DIR / SCENARIO, root / "scenarios" / SCENARIO)
    overlay = root / "charts" / "airflow" / "values-local.yaml"
    values = yaml.safe_load(overlay.read_text())
    del values["config"]["scheduler"]["use_job_schedule"]  # production's default: the schedule runs
    overlay.write_text(yaml.safe_dump(values, sort_keys=False))
    return root


def test_a_run_the_scheduler_made_fails_the_session(tmp_path: Path) -> None:
    root, home, name = scratch_project(tmp_path), tmp_path / "home", f"unreq{os.getpid()}"
    env = {**os.environ, "PYTHONPATH": str(root), "MLOPS_SANDBOX_HOME": str(home)}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(root / "scenarios" / SCENARIO),
             "-p", "sandbox.pytest_plugin", "-p", "no:cacheprovider", "--rootdir", str(root),
             "--sandbox-name", name, "-W", "ignore"],
            cwd=root, env=env, capture_output=True, text=True, timeout=800,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert "2 passed" in out, out[-4000:]  # the stack item and the scenario: nothing else failed
        unrequested = "no scenario triggered: train_model_pipeline/scheduled__"
        assert unrequested in out, out[-4000:]
        assert proc.returncode == 1, out[-4000:]
    finally:
        LocalBackend(name, state_root=home).down(purge=True)
