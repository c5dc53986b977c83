"""The ``sandbox`` command as a user runs it, with its output piped (as in CI or ``| less``).

Piped output stays plain: log lines come out whole, ``up`` reports each step as it happens, and a
sandbox that does not exist is named as such.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.backends.local.backend import SERVICES, LocalBackend

LONG_LINE = (
    'INFO 127.0.0.1:53422 - "GET /api/2.0/mlflow/experiments/search?max_results=1&filter=name%20LIKE'
    '%20%27sbx-happy-path-%25%27&order_by=creation_time%20DESC HTTP/1.1" 200 OK'
)


def sandbox(home: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "MLOPS_SANDBOX_HOME": str(home), "COLUMNS": "80"},
    )


def test_status_of_a_sandbox_that_does_not_exist_says_so(tmp_path: Path) -> None:
    proc = sandbox(tmp_path, "status", "--name", "nosuch")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no local sandbox named 'nosuch' exists" in proc.stderr
    assert "sandbox up --name nosuch" in proc.stderr
    assert "unhealthy" not in proc.stdout  # not shown as a stopped sandbox
    assert sandbox(tmp_path, "logs", "--name", "nosuch").returncode == 3
    assert not (tmp_path / "nosuch").exists()


def test_logs_are_written_whole_and_masked_when_piped(tmp_path: Path) -> None:
    """A 160-character line with a URL is one line of output (a console wrapped it at 80 columns)."""
    backend = LocalBackend("piped", state_root=tmp_path)
    password = backend.secrets.load_or_create_secrets()["AIRFLOW_PASSWORD"]  # what `up` writes first
    log = backend.logs_path("mlflow")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"starting mlflow\n{LONG_LINE}\nlogin with {password} [not markup]\n")
    assert len(LONG_LINE) > 150

    proc = sandbox(tmp_path, "logs", "mlflow", "--name", "piped")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["starting mlflow", LONG_LINE, "login with *** [not markup]"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_up_prints_progress_as_it_goes_then_status_and_down(tmp_path: Path) -> None:
    name = f"cli{os.getpid()}"
    env = {**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path)}
    errors = open(tmp_path / "up.stderr", "w+")  # noqa: SIM115 - closed in finally
    up = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "up", "--name", name],
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        env=env,
    )
    backend = LocalBackend(name, state_root=tmp_path)
    try:
        assert up.stdout is not None
        first = up.stdout.readline()
        # The first line arrives while `up` is still at work: progress, not a report at the end.
        still_running = up.poll() is None and not all(s.healthy for s in backend.status())
        rest = up.stdout.read()  # the same buffered reader: communicate() would skip what it holds
        up.wait(timeout=600)
        errors.seek(0)
        err = errors.read()
        assert up.returncode == 0, first + rest + err
        lines = [first.rstrip("\n"), *rest.splitlines()]
        assert still_running, lines
        for service in SERVICES:
            assert any(line.startswith(f"{service}: starting") for line in lines), (service, lines)
            assert any(line.startswith(f"{service}: ready in ") for line in lines), (service, lines)
        assert any(line.startswith(f"Sandbox {name} (local): started in ") for line in lines), lines
        assert any(line.startswith("Airflow UI / API: http://127.0.0.1:") for line in lines), lines
        assert "\x1b[" not in first + rest, "no terminal control codes in piped output"

        status = sandbox(tmp_path, "status", "--name", name)
        assert status.returncode == 0, status.stdout + status.stderr
        health = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[2:] if line.strip()}
        assert health == dict.fromkeys(SERVICES, "healthy"), status.stdout
    finally:
        errors.close()
        down = sandbox(tmp_path, "down", "--name", name, timeout=300)
    assert down.returncode == 0, down.stderr
    stopped = sandbox(tmp_path, "status", "--name", name)
    assert stopped.returncode == 1, stopped.stdout  # exists, stopped: unhealthy (not "no such sandbox")
    assert sandbox(tmp_path, "down", "--name", name, "--purge", timeout=300).returncode == 0
    assert sandbox(tmp_path, "status", "--name", name).returncode == 3
