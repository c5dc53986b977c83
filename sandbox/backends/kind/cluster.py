"""The kind cluster: generated config (pinned node image, host port mappings, GPU mounts), create/delete.

GPU follows NVIDIA's nvkind (github.com/NVIDIA/nvkind, pkg/nvkind/node.go and cluster.go as of 2026-06,
commit 24c190e): the host's nvidia-container-runtime (with ``accept-nvidia-visible-devices-as-volume-mounts
= true`` and nvidia as docker's default runtime) injects the GPUs into the node when ``/dev/null`` is mounted
at ``/var/run/nvidia-container-devices/all``; inside the node the NVIDIA Container Toolkit is installed and
registered with containerd as the ``nvidia`` runtime (``--config-source=file``: ``--config-source=command``
writes an invalid drop-in under containerd 2.x with a version-2 config, today's kind nodes), and an
``nvidia`` RuntimeClass selects it. It is not made the default runtime: the device plugin and the GPU train
pod ask for it by ``runtimeClassName``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import ConfigError, ServiceError

# kind v0.33.0 release notes: "Images pre-built for this release" (digest-pinned, as kind requires).
NODE_IMAGE = "kindest/node:v1.35.8@sha256:07b2536e30b803ed61d1677a79df6115f798ce64c80f9e22f6ed45afd09323c0"
# Service NodePorts (the sandbox overlays pin them) -> default loopback ports on the host.
NODE_PORTS: dict[str, int] = {"airflow": 30080, "mlflow": 30500, "s3": 30333}
DEFAULT_HOST_PORTS: dict[str, int] = {"airflow": 28080, "mlflow": 25000, "s3": 28333}
DAGS_NODE_PATH = "/mlops/dags"  # values-sandbox.yaml mounts this hostPath into the Airflow pods
GPU_DEVICES_MOUNT = "/var/run/nvidia-container-devices/all"
GPU_NODE_LABELS = {"nvidia.com/gpu.present": "true"}  # the DAG's GPU node selector

RUNTIME_CLASS = "nvidia"  # nvkind's RuntimeClass and handler; the GPU overlay's MLOPS_GPU_RUNTIME_CLASS
# Run inside the GPU node after creation (nvkind's InstallContainerToolkit / ConfigureContainerRuntime /
# PatchProcDriverNvidia). The node reaches NVIDIA's apt repository.
GPU_NODE_SCRIPTS: tuple[tuple[str, str], ...] = (
    ("install the NVIDIA Container Toolkit in the node", " && ".join((
        "apt-get update", "apt-get install -y gpg curl",
        "curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey"
        " | gpg --dearmor --yes -o /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg",
        "curl -fsSL https://nvidia.github.io/libnvidia-container/stable/deb/nvidia-container-toolkit.list"
        " | sed 's#deb https://#deb [signed-by=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg]"
        " https://#g' > /etc/apt/sources.list.d/nvidia-container-toolkit.list",
        "apt-get update", "apt-get install -y nvidia-container-toolkit",
    ))),
    ("register the nvidia runtime with containerd",
     "nvidia-ctk runtime configure --runtime=containerd --config-source=file"
     " && systemctl restart containerd"),
    ("stop the driver recreating device nodes (toolkit < 1.19 only)",
     "grep -q '^ModifyDeviceFiles: 0' /proc/driver/nvidia/params || { umount -R /proc/driver/nvidia"
     " && cp /proc/driver/nvidia/params /root/gpu-params"
     " && sed -i 's/^ModifyDeviceFiles: 1$/ModifyDeviceFiles: 0/' /root/gpu-params"
     " && mount --bind /root/gpu-params /proc/driver/nvidia/params; }"),
)  # fmt: skip

_NAME_RE = re.compile(r"[^a-z0-9-]+")


def cluster_name(sandbox_name: str) -> str:
    """kind cluster name for a sandbox: ``mlops-<name>``, lowercased, only [a-z0-9-]."""
    slug = _NAME_RE.sub("-", sandbox_name.lower()).strip("-")
    if not slug:
        raise ConfigError(
            f"Sandbox name {sandbox_name!r} gives no valid kind cluster name.", "Use e.g. --name dev."
        )
    return f"mlops-{slug}"[:50]


def kube_context(name: str) -> str:
    """The kube context kind writes for a cluster."""
    return f"kind-{name}"


def node_container(name: str) -> str:
    """Docker container of the (single) node."""
    return f"{name}-control-plane"


def host_ports(overrides: Mapping[str, int] | None = None) -> dict[str, int]:
    """Host ports per service: defaults with ``overrides``; rejects unknown keys and bad ports."""
    unknown = set(overrides or {}) - set(DEFAULT_HOST_PORTS)
    if unknown:
        raise ConfigError(
            f"Unknown port key(s): {', '.join(sorted(unknown))}.",
            f"Use some of: {', '.join(DEFAULT_HOST_PORTS)}.",
        )
    ports = {**DEFAULT_HOST_PORTS, **dict(overrides or {})}
    bad = {k: v for k, v in ports.items() if not 1024 <= int(v) <= 65535}
    if bad or len(set(ports.values())) != len(ports):
        raise ConfigError(f"Invalid or duplicate host ports: {ports}.", "Use distinct ports in 1024-65535.")
    return ports


def kind_config(name: str, *, gpu: bool, dags_dir: Path, ports: Mapping[str, int]) -> dict[str, Any]:
    """The kind Cluster config: one node, loopback port mappings, the DAG folder, GPU mounts with ``gpu``."""
    mounts: list[dict[str, Any]] = [
        {"hostPath": str(dags_dir.resolve()), "containerPath": DAGS_NODE_PATH, "readOnly": True}
    ]
    node: dict[str, Any] = {
        "role": "control-plane",
        "image": NODE_IMAGE,
        "extraPortMappings": [
            {
                "containerPort": NODE_PORTS[svc],
                "hostPort": int(ports[svc]),
                "listenAddress": "127.0.0.1",
                "protocol": "TCP",
            }
            for svc in NODE_PORTS
        ],
        "extraMounts": mounts,
    }
    if gpu:
        mounts.append({"hostPath": "/dev/null", "containerPath": GPU_DEVICES_MOUNT})
        node["labels"] = dict(GPU_NODE_LABELS)
    return {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": name, "nodes": [node]}


def render_config(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False)


def create_argv(kind_bin: str, name: str, config_path: Path) -> list[str]:
    return [kind_bin, "create", "cluster", "--name", name, "--config", str(config_path), "--wait", "180s"]


def delete_argv(kind_bin: str, name: str) -> list[str]:
    return [kind_bin, "delete", "cluster", "--name", name]


def gpu_setup_argv(docker_bin: str, name: str) -> list[tuple[str, list[str]]]:
    """``(title, argv)`` per nvkind post-create step, run in the node container."""
    node = node_container(name)
    return [(title, [docker_bin, "exec", node, "bash", "-c", script]) for title, script in GPU_NODE_SCRIPTS]


def runtime_class_manifest() -> str:
    """nvkind's RuntimeClass (``RegisterNvidiaRuntimeClass``): pods with ``runtimeClassName: nvidia``."""
    doc = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": RUNTIME_CLASS},
           "handler": RUNTIME_CLASS}  # fmt: skip
    return yaml.safe_dump(doc, sort_keys=False)


def exists(kind_bin: str, name: str) -> bool:
    """Whether kind knows a cluster of this name."""
    out = subprocess.run(
        [kind_bin, "get", "clusters"], capture_output=True, text=True, timeout=60, check=False
    )
    if out.returncode != 0:
        raise ServiceError(
            "`kind get clusters` failed.", "Check that docker is running.", detail=out.stderr[-2000:]
        )
    return name in out.stdout.split()
