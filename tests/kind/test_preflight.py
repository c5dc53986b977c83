"""Preflight errors from the real environment: tools hidden by PATH, a too-old binary, the docker daemon,
and NVML (no GPU on this machine: the GPU checks run against the real nvidia-ml-py)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from sandbox import gpu
from sandbox.backends.kind import preflight
from sandbox.errors import PreflightError
from sandbox.tools import Tool, find_tool, parse_version, require
from tests.support import missing


def test_missing_tools_are_all_named_with_fixes(tmp_path: Path) -> None:
    with pytest.raises(PreflightError) as err:
        preflight.tools(path=str(tmp_path), tools_dir=None)
    for tool in ("docker", "kind", "helm", "kubectl"):
        assert f"`{tool}` was not found" in err.value.what
    assert "bash .ci/install-helm" in err.value.fix and "kind.sigs.k8s.io" in err.value.fix


def test_existing_context_does_not_need_kind(tmp_path: Path) -> None:
    with pytest.raises(PreflightError) as err:
        preflight.tools(need_kind=False, path=str(tmp_path), tools_dir=None)
    assert "`kind`" not in err.value.what


def test_too_old_tool(tmp_path: Path) -> None:
    fake = tmp_path / "kind"
    fake.write_text("#!/bin/sh\necho 'kind v0.20.0 go1.20.4 linux/amd64'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(PreflightError, match=r"`kind` 0\.20\.0 .* too old \(need >= 0\.33\.0\)"):
        require("kind", path=str(tmp_path), tools_dir=None)


def test_tools_dir_fallback_finds_installed_helm() -> None:
    helm = find_tool("helm", path="")
    if helm is None:
        missing("helm is not installed in .tools/bin: run `bash .ci/install-helm`")
    assert require("helm", path="").version >= (3, 19, 0)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("v3.19.0+g3d8990f", (3, 19, 0)),
        ("kind v0.33.0 go1.24 linux/amd64", (0, 33, 0)),
        ("Client Version: v1.33.9", (1, 33, 9)),
        ("28.2", (28, 2, 0)),
    ],
)
def test_parse_version(text: str, version: tuple[int, int, int]) -> None:
    assert parse_version(text) == version


def _daemon_up(docker: Path) -> bool:
    out = subprocess.run([str(docker), "info"], capture_output=True, timeout=30, check=False)
    return out.returncode == 0


def test_unreachable_docker_daemon_is_a_preflight_error() -> None:
    docker = find_tool("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    if _daemon_up(docker):
        pytest.skip("a docker daemon is reachable here; nothing to refuse")
    with pytest.raises(PreflightError, match="Docker daemon is not running") as err:
        preflight.docker_daemon(require("docker"))
    assert "docker version" in err.value.fix


def test_gpu_preflight_names_nvml_when_no_gpu() -> None:
    info = gpu.detect()
    if info.available:
        pytest.skip(f"this host has a GPU ({', '.join(info.names)})")
    docker = find_tool("docker")
    if docker is None:
        pytest.skip("docker CLI not installed")
    with pytest.raises(PreflightError, match="NVML") as err:
        preflight.gpu_host(require("docker"))
    assert "nvidia-smi" in err.value.fix and "without --gpu" in err.value.fix
    reason = preflight.gpu_skip_reason()
    assert reason is not None and ("NVML" in reason or "nvidia-ml-py" in reason)


RUNTIME_CONFIG_ERROR = r"does not set accept-nvidia-visible-devices-as-volume-mounts = true"


def test_gpu_runtime_config_check(tmp_path: Path) -> None:
    """The host-side nvkind settings on a real GPU host whose docker defaults to the nvidia runtime."""
    info = gpu.detect()
    if not info.available:
        pytest.skip(f"needs an NVIDIA GPU: {info.reason}")
    if find_tool("docker") is None:
        pytest.skip("docker CLI not installed")
    docker = require("docker")  # outside pytest.raises: a missing docker must not pass the test
    runtime = subprocess.run(
        [str(docker.path), "info", "--format", "{{.DefaultRuntime}}"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    if runtime != "nvidia":
        pytest.skip(
            f"docker's default runtime here is {runtime or 'unknown'!r}, not nvidia (set up per docs/kind.md)"
        )
    config = tmp_path / "config.toml"
    config.write_text("accept-nvidia-visible-devices-as-volume-mounts = false\n")
    with pytest.raises(PreflightError, match=RUNTIME_CONFIG_ERROR):
        preflight.gpu_host(docker, runtime_config=config)


def test_gpu_host_checks_nvml_then_docker_runtime_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every branch, on any host. No GPU and no NVIDIA docker runtime exist here, so NVML's answer
    and ``docker info`` are stood in for: a GpuInfo, and a script answering as docker would."""
    fake = tmp_path / "docker"
    fake.write_text('#!/bin/sh\necho "$FAKE_DOCKER_RUNTIME"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    docker = Tool("docker", fake, (28, 0, 0))
    one_gpu = gpu.GpuInfo(1, ("NVIDIA H100",))
    config = tmp_path / "config.toml"
    config.write_text("accept-nvidia-visible-devices-as-volume-mounts = true\n")
    monkeypatch.setenv("FAKE_DOCKER_RUNTIME", "nvidia")
    assert preflight.gpu_host(docker, detect=lambda: one_gpu, runtime_config=config) == one_gpu
    with pytest.raises(PreflightError, match="NVML"):
        preflight.gpu_host(docker, detect=lambda: gpu.GpuInfo(0, reason="no driver"), runtime_config=config)
    config.write_text("accept-nvidia-visible-devices-as-volume-mounts = false\n")
    with pytest.raises(PreflightError, match=RUNTIME_CONFIG_ERROR):
        preflight.gpu_host(docker, detect=lambda: one_gpu, runtime_config=config)
    monkeypatch.setenv("FAKE_DOCKER_RUNTIME", "runc")
    with pytest.raises(PreflightError, match="default runtime is 'runc', not 'nvidia'"):
        preflight.gpu_host(docker, detect=lambda: one_gpu, runtime_config=config)


def test_env_path_is_respected() -> None:
    assert find_tool("sh", path=os.defpath) is not None
