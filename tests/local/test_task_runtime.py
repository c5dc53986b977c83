"""Choosing the local backend's task runtime (``--task-runtime``, ``$MLOPS_SANDBOX_TASK_RUNTIME``), the DAG's
docker deployment config, and the Docker engine errors, without starting anything (a live engine is
exercised in tests/image and `tox -e image`)."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox import backend_options, cli, paths
from sandbox.backends.local.backend import LocalBackend
from sandbox.errors import ConfigError, PreflightError
from sandbox.images import engine

sys.path.insert(0, str(paths.DAGS_DIR))
from mlops_pipeline.containers import cpu_count, image_uid, memory_bytes
from mlops_pipeline.steps import Deployment


@pytest.fixture(autouse=True)
def _private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_SANDBOX_HOME", str(tmp_path))
    for var in ("GPU", "CONTEXT", "JOB_IMAGE", "BACKEND", "TASK_RUNTIME", "WARM_JOBS"):
        monkeypatch.delenv(f"MLOPS_SANDBOX_{var}", raising=False)


@pytest.mark.parametrize("command", ["up", "down", "status"])
def test_commands_build_the_local_backend_with_the_runtime(command: str) -> None:
    backend = cli._backend(cli.build_parser().parse_args([command, "--task-runtime", "docker"]))
    assert isinstance(backend, LocalBackend) and backend.task_runtime == "docker"
    assert "job-image" in {s.name for s in backend.services}
    assert "job-server" not in {s.name for s in backend.services}  # warm jobs are the local runtime's
    default = cli._backend(cli.build_parser().parse_args([command]))
    assert default.task_runtime == "local" and "job-image" not in {s.name for s in default.services}
    assert "job-server" in {s.name for s in default.services}


def test_warm_jobs_can_be_turned_off_for_measuring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(backend_options.WARM_JOBS_ENV, "0")
    cold = cli._backend(cli.build_parser().parse_args(["up"]))
    assert "job-server" not in {s.name for s in cold.services}
    monkeypatch.setenv(backend_options.WARM_JOBS_ENV, "1")
    assert "job-server" in {s.name for s in cli._backend(cli.build_parser().parse_args(["up"])).services}


def test_the_runtime_is_a_local_option() -> None:
    with pytest.raises(ConfigError, match="--task-runtime applies only to the local backend"):
        cli._backend(cli.build_parser().parse_args(["up", "--backend", "kind", "--task-runtime", "docker"]))
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["up", "--task-runtime", "podman"])


def test_environment_fallback_and_its_errors() -> None:
    env = {backend_options.TASK_RUNTIME_ENV: "Docker"}
    assert backend_options.resolve("local", gpu=None, context=None, job_image=None, environ=env) == {
        "task_runtime": "docker"
    }
    with pytest.raises(ConfigError, match="is not a task runtime"):
        backend_options.resolve("local", gpu=None, context=None, job_image=None,
                                environ={backend_options.TASK_RUNTIME_ENV: "podman"})  # fmt: skip


def test_run_passes_the_runtime_to_the_pytest_session(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_run(paths: Any, backend: str, name: str, keep: bool, extra: list[str]) -> int:
        seen.update(backend=backend, extra=extra)
        return 0

    monkeypatch.setattr("sandbox.scenarios.runner.run_scenarios", fake_run)
    assert cli.main(["run", "--task-runtime", "docker"]) == 0
    assert seen == {"backend": "local", "extra": ["--task-runtime", "docker"]}


def test_dag_deployment_config_of_the_docker_runtime() -> None:
    d = Deployment.from_env({"MLOPS_TASK_RUNTIME": "docker", "MLOPS_DOCKER_LABELS": '{"owner": "mlops"}'})
    assert (d.runtime, dict(d.docker_labels)) == ("docker", {"owner": "mlops"})
    with pytest.raises(ValueError, match="MLOPS_DOCKER_LABELS is not valid JSON"):
        Deployment.from_env({"MLOPS_DOCKER_LABELS": "{owner"})
    with pytest.raises(ValueError, match="expected an object of strings"):
        Deployment.from_env({"MLOPS_DOCKER_LABELS": '{"n": 1}'})
    with pytest.raises(ValueError, match="expected one of kubernetes, local, docker"):
        Deployment.from_env({"MLOPS_TASK_RUNTIME": "podman"})


def test_pod_quantities_become_container_limits() -> None:
    assert [memory_bytes(q) for q in ("512Mi", "1Gi", "1G", "1048576")] == [2**29, 2**30, 10**9, 1048576]
    assert [cpu_count(q) for q in ("250m", "2", "0.5")] == [0.25, 2.0, 0.5]
    with pytest.raises(ValueError, match="not a memory quantity"):
        memory_bytes("lots")
    assert (image_uid("10001:10001"), image_uid(""), image_uid("mlops")) == (10001, 0, None)


def _fake_docker(folder: Path, stderr: str) -> Path:
    """A ``docker`` CLI whose daemon half fails as a real one does (stands in for a broken engine)."""
    script = folder / "docker"
    script.write_text(f"#!/bin/sh\n[ \"$1\" = context ] && {{ echo unix:///run/x.sock; exit 0; }}\n"
                      f"echo {stderr!r} >&2\nexit 1\n")  # fmt: skip
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_docker_missing_daemon_down_and_permission_denied_name_their_fix(tmp_path: Path) -> None:
    with pytest.raises(PreflightError, match="`docker` command is not installed") as err:
        engine.check("Purpose", path=str(tmp_path))
    assert "apt-get install docker.io" in err.value.fix
    down = _fake_docker(tmp_path, "Cannot connect to the Docker daemon at unix:///run/x.sock. Is the docker "
                        "daemon running?")  # fmt: skip
    with pytest.raises(PreflightError, match=r"not running \(nothing answers at unix:///run/x\.sock") as err:
        engine.check("Purpose", docker=down)
    assert "dockerd" in err.value.fix
    denied = _fake_docker(tmp_path, "permission denied while trying to connect to the Docker daemon "
                          "socket at unix:///run/x.sock")  # fmt: skip
    with pytest.raises(PreflightError, match="permission denied on its socket") as err:
        engine.check("Purpose", docker=denied)
    assert "usermod -aG docker" in err.value.fix
