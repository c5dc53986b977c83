"""The kind options reach every command that reaches a backend, and the pytest plugin.

`sandbox up --backend kind --gpu` used to stop at argparse ("unrecognized arguments: --gpu").
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox import cli
from sandbox.backends.kind.backend import KindBackend
from sandbox.errors import ConfigError

KIND_ARGS = ["--backend", "kind", "--gpu", "--context", "ctx-a", "--job-image", "r.example/j:1"]


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))
    for var in ("GPU", "CONTEXT", "JOB_IMAGE", "BACKEND"):
        monkeypatch.delenv(f"MLOPS_SANDBOX_{var}", raising=False)


@pytest.mark.parametrize("command", ["up", "down", "status", "run", "plan"])
def test_every_backend_command_takes_the_kind_options(command: str) -> None:
    args = cli.build_parser().parse_args([command, *KIND_ARGS])
    assert (args.gpu, args.context, args.job_image) == (True, "ctx-a", "r.example/j:1")


@pytest.mark.parametrize("command", ["up", "down", "status"])
def test_commands_build_the_kind_backend_with_those_options(command: str) -> None:
    args = cli.build_parser().parse_args([command, *KIND_ARGS])
    backend = cli._backend(args)
    assert isinstance(backend, KindBackend)
    assert (backend.gpu, backend.kube_context, backend.job_image) == (True, "ctx-a", "r.example/j:1")


def test_kind_options_on_the_local_backend_are_an_error() -> None:
    args = cli.build_parser().parse_args(["up", "--gpu"])
    with pytest.raises(ConfigError, match="--gpu applies only to the kind backend") as err:
        cli._backend(args)
    assert "--backend kind" in err.value.fix
    assert cli.main(["status", "--context", "x"]) == 2


def test_commands_without_the_options_still_build_a_backend(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["logs", "--backend", "kind"])
    assert isinstance(cli._backend(args), KindBackend)


def test_environment_fallbacks() -> None:
    from sandbox import backend_options

    env = {backend_options.GPU_ENV: "true", backend_options.CONTEXT_ENV: "ctx-b"}
    opts = backend_options.resolve("kind", gpu=None, context=None, job_image=None, environ=env)
    assert opts == {"gpu": True, "kube_context": "ctx-b", "job_image": None}
    assert backend_options.resolve("local", gpu=None, context=None, job_image=None, environ={}) == {}


def test_run_passes_the_options_to_the_pytest_session(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(paths: Any, backend: str, name: str, keep: bool, extra: list[str]) -> int:
        seen.update(backend=backend, extra=extra)
        return 0

    monkeypatch.setattr("sandbox.scenarios.runner.run_scenarios", fake_run)
    assert cli.main(["run", *KIND_ARGS]) == 0
    assert seen["backend"] == "kind"
    assert seen["extra"] == ["--gpu", "--context", "ctx-a", "--job-image", "r.example/j:1"]


def test_pytest_plugin_offers_the_kind_options() -> None:
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "sandbox.pytest_plugin", "--help"],
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    for option in ("--backend", "--gpu", "--context=CTX", "--job-image=IMAGE"):
        assert option in out.stdout, option
