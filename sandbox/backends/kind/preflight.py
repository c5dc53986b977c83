"""Preflight for the kind backend: tools present and new enough, docker reachable, and for ``--gpu``
a GPU on the host (NVML) with the NVIDIA container runtime set up the way nvkind needs it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sandbox import gpu as gpu_mod
from sandbox.errors import PreflightError
from sandbox.images import engine
from sandbox.tools import TOOLS_BIN, Tool, require

NVIDIA_RUNTIME_CONFIG = Path("/etc/nvidia-container-runtime/config.toml")
GPU_SETUP_FIX = (
    "Set up the NVIDIA Container Toolkit for kind (nvkind's README): `sudo nvidia-ctk runtime configure "
    "--runtime=docker --set-as-default --cdi.enabled && sudo nvidia-ctk config --set "
    "accept-nvidia-visible-devices-as-volume-mounts=true --in-place && sudo systemctl restart docker`."
)


@dataclass(frozen=True)
class Toolset:
    docker: Tool
    helm: Tool
    kubectl: Tool
    kind: Tool | None  # None when targeting an existing cluster by kube context


def tools(*, need_kind: bool = True, path: str | None = None, tools_dir: Path | None = TOOLS_BIN) -> Toolset:
    """Find every tool; one PreflightError listing all that are missing or too old."""
    names = ["docker", "kind", "helm", "kubectl"] if need_kind else ["docker", "helm", "kubectl"]
    found: dict[str, Tool] = {}
    problems: list[PreflightError] = []
    for name in names:
        try:
            found[name] = require(name, path=path, tools_dir=tools_dir)
        except PreflightError as exc:
            problems.append(exc)
    if problems:
        raise PreflightError(
            "The kind backend needs tools that are missing: " + " ".join(p.what for p in problems),
            "; ".join(p.fix for p in problems) + ".",
        )
    return Toolset(found["docker"], found["helm"], found["kubectl"], found.get("kind"))


def docker_daemon(docker: Tool, timeout: float = 20) -> str:
    """The daemon's server version; PreflightError (not running, permission denied) when unusable."""
    return engine.check("The kind backend runs its cluster in Docker containers", docker=docker.path,
                        timeout=timeout).version  # fmt: skip


def gpu_host(
    docker: Tool, *, detect: Callable[[], gpu_mod.GpuInfo] = gpu_mod.detect,
    runtime_config: Path = NVIDIA_RUNTIME_CONFIG,
) -> gpu_mod.GpuInfo:  # fmt: skip
    """NVML sees a GPU, docker's default runtime is nvidia, and volume-mount device selection is on."""
    info = detect()
    if not info.available:
        raise PreflightError(
            f"--gpu needs an NVIDIA GPU visible to NVML on this host: {info.reason}.",
            "Install the NVIDIA driver (`nvidia-smi -L` must list a GPU), or run without --gpu.",
        )
    out = subprocess.run(
        [str(docker.path), "info", "--format", "{{.DefaultRuntime}}"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    if out.stdout.strip() != "nvidia":
        raise PreflightError(
            f"Docker's default runtime is {out.stdout.strip() or 'unknown'!r}, not 'nvidia'.", GPU_SETUP_FIX
        )
    text = runtime_config.read_text() if runtime_config.exists() else ""
    if not any(
        line.replace(" ", "") == "accept-nvidia-visible-devices-as-volume-mounts=true"
        for line in text.splitlines()
    ):
        raise PreflightError(
            f"{runtime_config} does not set accept-nvidia-visible-devices-as-volume-mounts = true "
            "(kind nodes get their GPUs through a /dev/null volume mount).",
            GPU_SETUP_FIX,
        )
    return info


def gpu_skip_reason(detect: Callable[[], gpu_mod.GpuInfo] = gpu_mod.detect) -> str | None:
    """Why GPU scenarios/tests must skip here (None when NVML sees a GPU)."""
    info = detect()
    return None if info.available else f"no NVIDIA GPU: {info.reason}"
