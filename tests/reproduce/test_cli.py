"""The ``reproduce`` command line: registered in ``sandbox``, and it masks credentials in all it prints."""

from __future__ import annotations

import pytest

from sandbox.cli import main
from sandbox.ports import LOOPBACK, free_ports

SECRET = "pr0d-Secret-Value"


def test_reproduce_is_a_sandbox_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "--dag-run-id" in out and "--copy-data" in out and "MLOPS_REPRO_AIRFLOW_TOKEN" in out


def test_a_credential_that_reaches_a_message_is_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Here through the URL the user typed (an unreachable endpoint's message repeats it)."""
    monkeypatch.setenv("MLOPS_REPRO_AIRFLOW_USERNAME", "viewer")
    monkeypatch.setenv("MLOPS_REPRO_AIRFLOW_PASSWORD", SECRET)
    url = f"http://{LOOPBACK}:{free_ports(1)[0]}/{SECRET}"
    assert main(["reproduce", "--airflow-url", url, "--dag-run-id", "manual__x"]) == 2
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert "is unreachable" in out.err and "/***" in out.err and "/***" in out.out
