"""The pytest plugin, through a real pytest subprocess: collection, validation, capability skips.

Scenario files are collected where the user points: named on the command line, or found in a folder
because they declare ``apiVersion: mlops-sandbox/...``; other YAML (charts, test data) never is.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from sandbox import paths


def pytest_run(
    tmp_path: Path, files: dict[str, str], *args: str, folder: str = "scenarios", target: str | None = None
) -> subprocess.CompletedProcess[str]:
    root = tmp_path / folder
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    env = {**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "state")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            target or str(root),
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


GOOD = "apiVersion: mlops-sandbox/v1\nname: good one\nrequires: [gpu]\nexpect: {dag_run: success}\n"
VALUES = "replicas: 1\nimage: {repository: postgres, tag: '18.1'}\n"  # unrelated YAML, e.g. chart values


def test_a_bad_file_stops_the_session_at_collection_before_any_stack(tmp_path: Path) -> None:
    bad = "apiVersion: mlops-sandbox/v1\nname: bad\nexpect:\n  mlflow:\n    metrics: {accuracy: '>= abc'}\n"
    other = "apiVersion: mlops-sandbox/v2\nname: x\n"
    proc = pytest_run(tmp_path, {"a_good.yaml": GOOD, "b_bad.yaml": bad, "c_bad.yaml": other})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out  # interrupted: errors during collection
    assert "2 errors during collection" in out
    assert "scenarios/b_bad.yaml:5: expect.mlflow.metrics.accuracy: '>= abc': >= needs a number" in out
    assert "scenarios/c_bad.yaml:1: apiVersion: unsupported version 'mlops-sandbox/v2'" in out
    assert not (tmp_path / "state" / "plugin-test").exists(), "no stack may start when a file is invalid"


def test_gpu_scenarios_skip_with_the_nvml_reason(tmp_path: Path) -> None:
    from sandbox.gpu import detect

    if detect().available:
        pytest.skip("this host has a GPU: the gpu scenario would run (the e2e suite covers it there)")
    proc = pytest_run(tmp_path, {"gpu.yaml": GOOD}, "-rs")
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


def test_a_scenario_is_collected_wherever_it_lives_and_other_yaml_is_not(tmp_path: Path) -> None:
    """A folder not called ``scenarios`` (the old rule said "not found"); unrelated YAML next to it."""
    proc = pytest_run(
        tmp_path, {"x.yaml": GOOD, "values.yaml": VALUES}, "--collect-only", "-q", folder="some/other/dir"
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert [line.rsplit("/", 1)[-1] for line in proc.stdout.splitlines() if ".yaml::" in line] == [
        "x.yaml::good one"
    ], out
    assert "values.yaml" not in out


def test_a_yaml_file_named_on_the_command_line_is_taken_as_a_scenario(tmp_path: Path) -> None:
    # No apiVersion: collected all the same (it was named), so the user learns what is missing.
    (tmp_path / "elsewhere").mkdir()
    named = tmp_path / "elsewhere" / "mine.yml"
    named.write_text("name: mine\n")
    proc = pytest_run(tmp_path, {}, "--collect-only", "-q", target=str(named))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "mine.yml:1: apiVersion: required field is missing" in out


def test_a_folder_without_scenarios_says_so(tmp_path: Path) -> None:
    proc = pytest_run(tmp_path, {"values.yaml": VALUES}, folder="charts")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 5, out  # pytest's "no tests collected"
    assert "no scenario files (and no tests) found in" in out
    assert "apiVersion: mlops-sandbox/v1" in out


def test_the_test_suite_never_sweeps_up_its_own_yaml() -> None:
    """``pytest tests`` must not collect the scenario-file corpus (data for test_corpus.py)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/scenarios", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, timeout=120, cwd=paths.PROJECT_ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "test_corpus.py::" in proc.stdout
    assert not [line for line in proc.stdout.splitlines() if ".yaml::" in line]


def _tox_argv(env: str, posargs: list[str]) -> list[str]:
    """An env's command from tox.ini, with {posargs} expanded as tox expands it."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(paths.PROJECT_ROOT / "tox.ini")
    (command,) = [c for c in ini[f"testenv:{env}"]["commands"].strip().splitlines() if c.strip()]
    out: list[str] = []
    for word in shlex.split(command):
        match = re.fullmatch(r"\{posargs(?::(.*))?\}", word)
        if match:
            out += posargs or shlex.split(match.group(1) or "")
        else:
            out.append(word.replace("{toxinidir}", str(paths.PROJECT_ROOT)))
    return out


ALL = sorted(p.stem for p in paths.SCENARIOS_DIR.glob("*.yaml"))


@pytest.mark.parametrize(
    ("env", "posargs", "expected"),
    [
        ("e2e", ["scenarios/happy_path.yaml"], ["happy_path"]),
        ("e2e", [], ALL),
        (
            "kind",
            ["scenarios/happy_path.yaml", "scenarios/unknown_dataset.yaml"],
            ["happy_path", "unknown_dataset"],
        ),
        ("kind", [], ALL),
        ("gpu", ["scenarios/gpu_train.yaml"], ["gpu_train"]),
        ("gpu", [], ["gpu_train"]),  # -m gpu: the GPU scenarios only
    ],
)
def test_tox_runs_the_named_files_or_the_whole_suite(
    tmp_path: Path, env: str, posargs: list[str], expected: list[str]
) -> None:
    """Collection only: nothing starts (the kind envs would need Docker to run)."""
    argv = _tox_argv(env, posargs)
    assert argv[0] == "pytest"
    argv = [a for a in argv[1:] if not a.startswith("--junitxml")]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *argv, "--collect-only", "-q"],
        capture_output=True, text=True, timeout=120, cwd=paths.PROJECT_ROOT,
        env={**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path / "state")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    items = re.findall(r"^scenarios/(\w+)\.yaml::", proc.stdout, re.MULTILINE)
    assert sorted(items) == expected


def test_the_stack_start_is_its_own_item_row_and_junit_case(tmp_path: Path) -> None:
    """A stack that cannot start is one failed ``stack`` item ahead of the scenarios (a row of its own in
    the summary, a JUnit test case), not hidden in the first scenario's time; here the backend is unknown."""
    one = "apiVersion: mlops-sandbox/v1\nname: one\nexpect: {dag_run: success}\n"
    junit = tmp_path / "junit.xml"
    proc = pytest_run(tmp_path, {"a.yaml": one}, "--backend", "nosuch", f"--junitxml={junit}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "the stack did not start: Unknown backend 'nosuch'" in out
    assert re.search(r"\(stack start\)\s+│ failed", out), out
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert names == ["stack", "one"]
