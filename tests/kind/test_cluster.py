"""Generated kind config, cluster names and host ports, and the job image's content-hash tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.backends.kind import cluster
from sandbox.errors import ConfigError
from sandbox.images.tag import image_tag


def _node(gpu: bool, ports: dict[str, int] | None = None) -> dict:
    config = cluster.kind_config("mlops-t", gpu=gpu, dags_dir=Path("dags"), ports=cluster.host_ports(ports))
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4" and config["name"] == "mlops-t"
    (node,) = config["nodes"]
    return node


def test_node_image_pinned_by_digest() -> None:
    image = _node(False)["image"]
    assert (
        image.startswith("kindest/node:v1.") and "@sha256:" in image and len(image.split("@sha256:")[1]) == 64
    )


def test_port_mappings_on_loopback() -> None:
    mappings = _node(False, {"mlflow": 25555})["extraPortMappings"]
    assert {(m["containerPort"], m["hostPort"]) for m in mappings} == {
        (30080, 28080),
        (30500, 25555),
        (30333, 28333),
    }
    assert all(m["listenAddress"] == "127.0.0.1" and m["protocol"] == "TCP" for m in mappings)


def test_dags_mount_always_gpu_mount_only_with_gpu() -> None:
    cpu, gpu = _node(False), _node(True)
    assert cpu["extraMounts"] == [
        {"hostPath": str(Path("dags").resolve()), "containerPath": "/mlops/dags", "readOnly": True}
    ]
    assert "labels" not in cpu
    assert {"hostPath": "/dev/null", "containerPath": "/var/run/nvidia-container-devices/all"} in gpu[
        "extraMounts"
    ]
    assert gpu["labels"] == {"nvidia.com/gpu.present": "true"}
    assert "nvidia" not in cluster.render_config({"nodes": [cpu]})


@pytest.mark.parametrize(("name", "expected"), [("dev", "mlops-dev"), ("My_Box.1", "mlops-my-box-1")])
def test_cluster_name(name: str, expected: str) -> None:
    assert cluster.cluster_name(name) == expected
    assert cluster.kube_context(expected) == f"kind-{expected}"


def test_host_ports_rejects_unknown_duplicate_and_privileged() -> None:
    with pytest.raises(ConfigError, match="Unknown port key"):
        cluster.host_ports({"postgres": 5432})
    with pytest.raises(ConfigError, match="duplicate"):
        cluster.host_ports({"mlflow": 28080})
    with pytest.raises(ConfigError):
        cluster.host_ports({"s3": 80})


def test_image_tag_is_a_content_hash(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11-slim\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    tag = image_tag(tmp_path)
    assert tag.startswith("mlops-jobs:") and len(tag.split(":")[1]) == 12
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    assert image_tag(tmp_path) == tag, "caches must not change the tag"
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert image_tag(tmp_path) != tag
