"""Scenario suites as users run them, under abuse: real pytest sessions, real local stacks (slow).

- two named sandboxes run the suite side by side: each its own stack, ports and report, and both
  stacks are gone afterwards;
- the session running a scenario is killed with -9 mid-DAG: the same scenario then passes on the
  stack it left behind, and ``down`` stops everything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from sandbox import paths
from sandbox.backends.local.backend import LocalBackend
from sandbox.backends.local.process import marked_processes

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SCENARIO = paths.SCENARIOS_DIR / "happy_path.yaml"


def suite(home: Path, name: str) -> subprocess.Popen[str]:
    """``pytest happy_path.yaml --sandbox-name NAME`` with its output piped.

    The project's happy path with a generous per-run deadline: these tests are about isolation and
    recovery, and two stacks on a small loaded machine can take longer than the file's 180 s.
    """
    scenario = home / "suite" / SCENARIO.name
    if not scenario.exists():
        scenario.parent.mkdir(parents=True, exist_ok=True)
        text = SCENARIO.read_text()
        assert "\ntimeout:" not in text, "happy_path.yaml sets a timeout now: update this helper"
        scenario.write_text(text + "timeout: 900\n")
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", str(scenario), "-p", "sandbox.pytest_plugin",
         "-p", "no:cacheprovider", "--rootdir", str(paths.PROJECT_ROOT), "--sandbox-name", name, "-rA"],
        cwd=paths.PROJECT_ROOT,
        env={**os.environ, "MLOPS_SANDBOX_HOME": str(home), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip


def running(backend: LocalBackend) -> list[psutil.Process]:
    """Live processes carrying the sandbox's marker (every process its stack started)."""
    return marked_processes(backend.state.marker)


def test_two_named_sandboxes_run_the_suite_side_by_side(tmp_path: Path) -> None:
    names = ("side-a", "side-b")
    sessions = {name: suite(tmp_path, name) for name in names}
    outputs = {name: proc.communicate(timeout=1500)[0] for name, proc in sessions.items()}
    for name, proc in sessions.items():
        assert proc.returncode == 0, f"{name}:\n{outputs[name][-6000:]}"
        assert "1 passed" in outputs[name], outputs[name][-3000:]
    backends = [LocalBackend(name, state_root=tmp_path) for name in names]
    try:
        ports = []
        for backend in backends:
            state = backend.state.load()
            assert state is not None and state.ports
            ports.append(set(state.ports.values()))
            # Each session started its stack, so each stopped it at its end.
            assert not running(backend), f"{backend.sandbox_name} left processes running"
            assert all(not s.healthy for s in backend.status())
        assert not ports[0] & ports[1], "two sandboxes shared a port"
        reports = {p.name for p in (tmp_path / "reports").glob("scenarios-*.md")}
        for name in names:
            (report,) = [r for r in reports if r.endswith(f"-{name}.md")]
            text = (tmp_path / "reports" / report).read_text()
            assert f"sandbox `{name}`" in text and "| happy_path | passed |" in text
    finally:
        for backend in backends:
            backend.down(purge=True)


def test_a_run_killed_mid_dag_leaves_a_stack_the_same_scenario_then_passes_on(tmp_path: Path) -> None:
    name = "killed"
    backend = LocalBackend(name, state_root=tmp_path)
    first = suite(tmp_path, name)
    seen: list[str] = []
    try:
        assert first.stdout is not None
        deadline = time.monotonic() + 900  # a hang guard: stack start plus preprocess, on a slow machine
        for line in first.stdout:
            seen.append(line)
            if "train_model: running" in line:
                break
            assert time.monotonic() < deadline, "".join(seen[-40:])
        else:
            pytest.fail("the first session ended before train_model ran:\n" + "".join(seen[-60:]))
        os.kill(first.pid, signal.SIGKILL)  # mid-DAG: train_model is running
        first.wait(timeout=60)
        left = running(backend)
        assert left, "killing the session should leave its stack running (nothing stopped it)"

        second = suite(tmp_path, name)
        out = second.communicate(timeout=1200)[0]
        assert second.returncode == 0, out[-6000:]
        assert "1 passed" in out
        assert "reused a running stack" in out  # the orphaned stack, healthy, was taken over
    finally:
        stack = running(backend)
        backend.down(purge=True)
    _, alive = psutil.wait_procs(stack, timeout=10)
    assert not alive, f"still running after down: {alive}"
    assert not running(backend)
