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
from sandbox.tools import find_tool, parse_version, require


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
        pytest.skip("helm is not installed in .tools/bin: run `bash .ci/install-helm`")
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
    with pytest.raises(PreflightError, match="Docker daemon is not reachable") as err:
        preflight.docker_daemon(require("docker"))
    assert "docker info" in err.value.fix


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


def test_gpu_runtime_config_check(tmp_path: Path) -> None:
    """The host-side nvkind settings, checked on a real GPU host only (NVML must see a GPU first)."""
    if not gpu.detect().available:
        pytest.skip(f"needs an NVIDIA GPU: {gpu.detect().reason}")
    config = tmp_path / "config.toml"
    config.write_text("accept-nvidia-visible-devices-as-volume-mounts = false\n")
    with pytest.raises(PreflightError):
        preflight.gpu_host(require("docker"), runtime_config=config)


def test_env_path_is_respected() -> None:
    assert find_tool("sh", path=os.defpath) is not None
