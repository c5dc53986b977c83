"""The job image on kind: ``kind load``ed into the node (its tag and build: ``sandbox.images``).

A warm re-run with unchanged job code finds the image already built and already on the node, and skips
both steps.
"""

from __future__ import annotations

import subprocess


def load_argv(kind_bin: str, tag: str, cluster: str) -> list[str]:
    return [kind_bin, "load", "docker-image", tag, "--name", cluster]


def on_node(docker_bin: str, node: str, tag: str) -> bool:
    """Whether the kind node's containerd already has the image (``crictl inspecti``)."""
    ref = tag if "/" in tag.split(":")[0] else f"docker.io/library/{tag}"
    out = subprocess.run(
        [docker_bin, "exec", node, "crictl", "inspecti", ref], capture_output=True, timeout=60, check=False
    )
    return out.returncode == 0
