"""``sandbox validate`` and ``sandbox run`` as a user types them (a real subprocess, no stack)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from sandbox import paths

GOOD = "apiVersion: mlops-sandbox/v1\nname: ok\nexpect: {dag_run: success}\n"
BAD = "apiVersion: mlops-sandbox/v1\nname: bad\nexpect:\n  mlflow:\n    metrics: {accuracy: good}\n"


def sandbox(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "state")},
    )


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_validate_passes_the_builtin_scenarios(tmp_path: Path) -> None:
    proc = sandbox(tmp_path, "validate", str(paths.SCENARIOS_DIR))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = len(list(paths.SCENARIOS_DIR.glob("*.yaml")))
    assert f"{count} scenario file(s) valid" in proc.stdout


def test_validate_prints_every_problem_and_exits_1(tmp_path: Path) -> None:
    root = write(
        tmp_path / "suite", {"a.yaml": GOOD, "b.yaml": BAD, "deep/c.yaml": BAD.replace("good", "'> x'")}
    )
    proc = sandbox(tmp_path, "validate", str(root))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    want = (
        "b.yaml:5: expect.mlflow.metrics.accuracy: a metric is a number, got the text 'good'; "
        "fix: write e.g. 0.9, '>= 0.9' or '0.8..0.95' (a number unquoted, or an operator and a number)"
    )
    assert any(line.endswith(want) for line in lines), lines
    assert any(
        "deep/c.yaml:5: expect.mlflow.metrics.accuracy: '> x': > needs a number" in line for line in lines
    )
    assert "2 of 3 scenario file(s) invalid" in proc.stderr
    assert not (tmp_path / "state").exists(), "validate must not start or create anything"


def test_validate_a_missing_path_exits_2(tmp_path: Path) -> None:
    proc = sandbox(tmp_path, "validate", "no/such/dir")
    assert proc.returncode == 2
    assert "no/such/dir: no such file or folder" in proc.stderr


def test_run_and_validate_on_a_folder_without_scenarios_say_so_and_exit_5(tmp_path: Path) -> None:
    root = write(tmp_path / "empty", {"values.yaml": "replicas: 1\n"})
    for command in ("run", "validate"):
        proc = sandbox(tmp_path, command, str(root))
        assert proc.returncode == 5, (command, proc.stdout + proc.stderr)
        assert f"no scenario files in {root}" in proc.stderr, command
        assert "apiVersion: mlops-sandbox/v1" in proc.stderr, command
    assert not (tmp_path / "state").exists()


def test_validate_marked_only_skips_other_yaml_for_pre_commit(tmp_path: Path) -> None:
    root = write(tmp_path, {"values.yaml": "replicas: 1\n", "s.yaml": GOOD})
    proc = sandbox(tmp_path, "validate", "--marked-only", str(root / "values.yaml"), str(root / "s.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 scenario file(s) valid" in proc.stdout
    proc = sandbox(tmp_path, "validate", "--marked-only", str(root / "values.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Without the flag a named file is a scenario file: told what it lacks.
    proc = sandbox(tmp_path, "validate", str(root / "values.yaml"))
    assert proc.returncode == 1
    assert "apiVersion: required field is missing" in proc.stdout


def test_pre_commit_hook_runs_validate_on_yaml_files() -> None:
    (hook,) = yaml.safe_load((paths.PROJECT_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"] == "sandbox validate --marked-only"
    assert hook["language"] == "python" and hook["types"] == ["yaml"]
