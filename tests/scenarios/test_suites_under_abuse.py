"""Scenario suites as users run them, under abuse: real pytest sessions, real local stacks (slow).

Two named sandboxes run the suite side by side, each on its own stack, ports and report; one
session is killed with -9 mid-DAG, the other passes undisturbed, the killed one's scenario then
passes on the stack it left behind, and ``down`` stops everything. (One test, to start two stacks
once: the suite's time in CI is counted.)
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


def test_two_sandboxes_side_by_side_one_killed_mid_dag(tmp_path: Path) -> None:
    """A and B run the suite at once, each on its own stack. A's session is killed with -9 while
    train_model runs: B passes undisturbed, and A's scenario then passes on the stack A left."""
    a, b = (LocalBackend(name, state_root=tmp_path) for name in ("side-a", "side-b"))
    first_a, session_b = suite(tmp_path, a.sandbox_name), suite(tmp_path, b.sandbox_name)
    try:
        assert first_a.stdout is not None
        seen: list[str] = []
        deadline = time.monotonic() + 900  # a hang guard: two stack starts on a slow machine
        for line in first_a.stdout:
            seen.append(line)
            if "train_model: running" in line:
                break
            assert time.monotonic() < deadline, "".join(seen[-40:])
        else:
            pytest.fail("A's session ended before train_model ran:\n" + "".join(seen[-60:]))
        os.kill(first_a.pid, signal.SIGKILL)
        first_a.wait(timeout=60)
        assert running(a), "killing the session should leave its stack running (nothing stopped it)"

        out_b = session_b.communicate(timeout=1500)[0]
        assert session_b.returncode == 0, out_b[-6000:]
        assert "2 passed" in out_b  # the stack item and happy_path
        # B's session started its stack, so it stopped it at its end; A's stack is untouched.
        assert not running(b), "B's session left processes running"
        assert all(s.healthy for s in a.status()), a.status()

        again_a = suite(tmp_path, a.sandbox_name)
        out_a = again_a.communicate(timeout=1500)[0]
        assert again_a.returncode == 0, out_a[-6000:]
        assert "2 passed" in out_a  # the stack item (reused) and happy_path
        assert "reused a running stack" in out_a  # the orphaned stack, healthy, was taken over

        ports = [set(backend.state.load().ports.values()) for backend in (a, b)]  # type: ignore[union-attr]
        assert not ports[0] & ports[1], "two sandboxes shared a port"
        reports = {p.name: p.read_text() for p in (tmp_path / "reports").glob("scenarios-*.md")}
        for backend in (a, b):
            (text,) = [t for name, t in reports.items() if name.endswith(f"-{backend.sandbox_name}.md")]
            assert f"sandbox `{backend.sandbox_name}`" in text and "| happy_path | passed |" in text
    finally:
        for proc in (first_a, session_b):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        stacks = running(a) + running(b)
        for backend in (a, b):
            backend.down(purge=True)
    _, alive = psutil.wait_procs(stacks, timeout=10)
    assert not alive, f"still running after down: {alive}"
    assert not running(a) and not running(b)
