"""``--parallel N`` (``sandbox run -n N``): scenarios share one real local stack side by side, and a
scenario marked ``exclusive: true`` runs alone. Judged on what Airflow recorded: the DAG runs' start and
end times (slow: one stack, four short scenarios)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest

from sandbox import paths
from sandbox.backends.local.backend import LocalBackend
from sandbox.scenarios.runner import Platform

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

SHORT = """apiVersion: mlops-sandbox/v1
name: {name}
conf: {{dataset: iris, n_estimators: 5, min_accuracy: 0.5}}
{extra}expect: {{dag_run: success}}
"""
# Collected in this order: a stretch of one, the exclusive one, then a stretch of two.
FILES = {
    "a_shared.yaml": SHORT.format(name="a shared", extra=""),
    "b_alone.yaml": SHORT.format(name="b alone", extra="exclusive: true\n"),
    "c_shared.yaml": SHORT.format(name="c shared", extra=""),
    "d_shared.yaml": SHORT.format(name="d shared", extra=""),
}


def _window(platform: Platform, dag_run_id: str) -> tuple[datetime, datetime]:
    run = platform.airflow.dag_run("train_model_pipeline", dag_run_id)
    assert run.start_date and run.end_date, dag_run_id
    return run.start_date, run.end_date


def _overlap(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def test_shared_scenarios_overlap_and_an_exclusive_one_runs_alone(tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    folder.mkdir()
    for name, text in FILES.items():
        (folder / name).write_text(text)
    name, junit = f"par{os.getpid()}", tmp_path / "junit.xml"
    env = {**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "home")}
    backend = LocalBackend(name, state_root=tmp_path / "home")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", str(folder), "-p", "sandbox.pytest_plugin",
             "-p", "no:cacheprovider", "--rootdir", str(paths.PROJECT_ROOT), "--sandbox-name", name,
             "--parallel", "3", "--keep", f"--junitxml={junit}"],
            cwd=paths.PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1100,
        )  # fmt: skip
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        runs = {
            case.get("name"): prop.get("value")
            for case in ET.parse(junit).getroot().iter("testcase")
            for prop in case.iter("property")
            if prop.get("name") == "dag_runs"
        }
        assert sorted(runs) == ["a shared", "b alone", "c shared", "d shared"], runs
        platform = Platform(backend)
        window = {k: _window(platform, v) for k, v in runs.items()}
        alone = window["b alone"]
        assert not [k for k, w in window.items() if k != "b alone" and _overlap(alone, w)], window
        assert _overlap(window["c shared"], window["d shared"]), window
        _assert_the_job_server_learned_skops(backend)
    finally:
        backend.down(purge=True)


def _assert_the_job_server_learned_skops(backend: LocalBackend) -> None:
    """MLflow imports skops only inside train's log_model, where no scan of jobs/ sees it: the stack's
    job server learned it from the real train jobs, imported it once idle, and saved it for its next
    start (sandbox/platform/warm_jobs.py)."""
    learned = backend.state.dir / "job-server-learned.json"
    deadline = time.monotonic() + 60
    while "skops.io" not in (learned.read_text() if learned.exists() else ""):
        assert time.monotonic() < deadline, backend.state.log_file("job-server").read_text()[-3000:]
        time.sleep(0.5)
    assert "learned" in backend.state.log_file("job-server").read_text()
