"""Bad input and faults: each a one-paragraph error with a fix, and nothing left running."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sandbox import cli
from sandbox.backends.local.backend import LocalBackend
from sandbox.backends.local.process import marked_processes
from sandbox.backends.local.state import StateError
from sandbox.errors import ConfigError, ServiceError


def _nothing_running(backend: LocalBackend) -> bool:
    return not marked_processes(backend.state.marker)


def test_port_in_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        backend = LocalBackend("ports", state_root=tmp_path, ports={"mlflow": port})
        with pytest.raises(ServiceError) as info:
            backend.up()
    assert f"127.0.0.1:{port}" in info.value.what and "mlflow" in info.value.what
    assert "pid" in info.value.what  # names the holder (this test process)
    assert info.value.fix
    assert _nothing_running(backend)


def test_corrupt_state_is_reported_and_purge_fixes_it(tmp_path: Path) -> None:
    backend = LocalBackend("corrupt", state_root=tmp_path)
    backend.state.dir.mkdir(parents=True)
    backend.state.state_file.write_text("{ not json")
    with pytest.raises(StateError) as info:
        backend.up()
    assert "corrupt" in info.value.what and "unreadable" in info.value.what
    assert "down --name corrupt --purge" in info.value.fix
    backend.down(purge=True)
    assert not backend.state.dir.exists()


def test_unknown_service_lists_the_valid_names(tmp_path: Path) -> None:
    backend = LocalBackend("names", state_root=tmp_path)
    with pytest.raises(ConfigError) as info:
        backend.logs_path("airflow-webserver")
    assert "airflow-webserver" in info.value.what
    assert "airflow-api-server" in info.value.fix


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Invalid sandbox name '\.\./escape'"):
        LocalBackend("../escape", state_root=tmp_path)
    with pytest.raises(ConfigError, match="Unknown port key"):
        LocalBackend("ok", state_root=tmp_path, ports={"webserver": 8080})
    with pytest.raises(ConfigError, match="Unknown timeout key"):
        LocalBackend("ok", state_root=tmp_path, timeouts={"nope": 1})


@pytest.mark.slow
def test_service_never_healthy_shows_log_tail_and_rolls_back(tmp_path: Path) -> None:
    # A deadline MLflow cannot meet (its imports alone take seconds): the error must carry its
    # log, and everything started so far (Postgres, S3, a running db migrate) must be stopped.
    backend = LocalBackend("unhealthy", state_root=tmp_path, timeouts={"mlflow": 0.5})
    with pytest.raises(ServiceError) as info:
        backend.up()
    assert "mlflow did not become healthy within 0.5s" in info.value.what
    assert "last lines of mlflow.log" in info.value.detail
    assert "starting mlflow" in info.value.detail
    assert _nothing_running(backend)
    assert all(not s.healthy for s in backend.status())
    backend.down(purge=True)


def test_cli_error_is_one_paragraph_with_exit_code_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))
    assert cli.main(["logs", "nope", "--name", "cli"]) == 2
    err = capsys.readouterr().err
    assert "Unknown service 'nope'" in err and "fix:" in err
    assert cli.main(["status", "--name", "cli"]) == 3  # never created: no such sandbox (see test_cli.py)


def test_cli_rejects_a_bad_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))
    assert cli.main(["status", "--name", "bad/name"]) == 2


@pytest.mark.slow
def test_ctrl_c_during_up_leaves_nothing_running(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from sandbox.backends.local.process import find, session_members

    backend = LocalBackend("ctrlc", state_root=tmp_path)
    env = {**os.environ, "MLOPS_SANDBOX_HOME": str(tmp_path)}
    cli_proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox.cli", "up", "--name", "ctrlc"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # As at a terminal: a background CI job inherits SIGINT ignored, and Python then never raises
        # KeyboardInterrupt (the Ctrl-C under test would be dropped, not handled).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        model = None
        while time.monotonic() < deadline and cli_proc.poll() is None:
            model = backend.state.load() if backend.state.state_file.exists() else None
            if model is not None and "mlflow" in model.services:
                break
            time.sleep(0.2)
        assert model is not None and "mlflow" in model.services, "up never reached MLflow"
        records = list(model.services.values())
        cli_proc.send_signal(signal.SIGINT)
        _, err = cli_proc.communicate(timeout=60)
        assert cli_proc.returncode == 130, err
        assert "interrupted" in err
        assert all(find(r) is None for r in records)
        assert not session_members(records)
        assert _nothing_running(backend)
    finally:  # a failed assertion must not leave the stack running
        if cli_proc.poll() is None:
            cli_proc.kill()
            cli_proc.wait()
        backend.down(purge=True)
