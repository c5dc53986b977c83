"""The pytest plugin, through a real pytest subprocess: collection, validation, capability skips."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sandbox import paths


def pytest_run(
    tmp_path: Path, files: dict[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    root = tmp_path / "scenarios"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text)
    env = {**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "state")}
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(root),
            "-p",
            "sandbox.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(paths.PROJECT_ROOT),
            "--sandbox-name",
            "plugin-test",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tmp_path,
    )
    return proc, time.monotonic() - started


GOOD = "apiVersion: mlops-sandbox/v1\nname: good one\nrequires: [gpu]\nexpect: {dag_run: success}\n"


def test_a_bad_file_stops_the_session_at_collection_before_any_stack(tmp_path: Path) -> None:
    bad = "apiVersion: mlops-sandbox/v1\nname: bad\nexpect:\n  mlflow:\n    metrics: {accuracy: '>= abc'}\n"
    proc, seconds = pytest_run(tmp_path, {"a_good.yaml": GOOD, "b_bad.yaml": bad, "c_bad.yaml": "name: x\n"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out  # interrupted: errors during collection
    assert "2 errors during collection" in out
    assert "scenarios/b_bad.yaml:5: expect.mlflow.metrics.accuracy: '>= abc': >= needs a number" in out
    assert "scenarios/c_bad.yaml:1: apiVersion: required field is missing; fix: add 'apiVersion:'" in out
    assert not (tmp_path / "state" / "plugin-test").exists(), "no stack may start when a file is invalid"
    assert seconds < 30


def test_gpu_scenarios_skip_with_the_nvml_reason(tmp_path: Path) -> None:
    from sandbox.gpu import detect

    if detect().available:  # on a GPU machine this would start a stack: covered by the e2e suite there
        return
    proc, _ = pytest_run(tmp_path, {"gpu.yaml": GOOD}, "-rs")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 skipped" in out
    assert "needs a GPU: NVML found no GPU" in out
    assert not (tmp_path / "state" / "plugin-test").exists()


def test_collect_only_lists_one_item_per_builtin_scenario(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(paths.SCENARIOS_DIR),
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=paths.PROJECT_ROOT,
        env={**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "state")},
    )
    items = [line for line in proc.stdout.splitlines() if line.startswith("scenarios/")]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(items) == len(list(paths.SCENARIOS_DIR.glob("*.yaml")))
    assert any("happy_path.yaml::" in i for i in items)


def test_sandbox_run_validates_before_starting_anything(tmp_path: Path) -> None:
    root = tmp_path / "scenarios"
    root.mkdir()
    (root / "bad.yaml").write_text("apiVersion: mlops-sandbox/v1\nname: x\nexpect: {dag_run: succeeded}\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox.cli",
            "run",
            str(root),
            "--name",
            "run-test",
            "--pytest-args",
            "-p no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "state")},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert (
        "bad.yaml:3: expect.dag_run: 'succeeded' is not allowed; fix: use one of 'success' or 'failed'" in out
    )
    assert not (tmp_path / "state" / "run-test").exists()
