"""The job image: built from ``jobs/`` with a content-hash tag and ``kind load``ed into the node.

The tag is a hash of every file under ``jobs/`` (no caches), so a warm re-run with unchanged job code
finds the image already built and already on the node, and skips both steps.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

REPOSITORY = "mlops-jobs"
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def content_hash(context: Path) -> str:
    """12 hex chars of sha256 over the relative paths and bytes of every file in ``context``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        rel = path.relative_to(context)
        if _SKIP_DIRS.intersection(rel.parts) or path.suffix in (".pyc", ".pyo"):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_tag(context: Path) -> str:
    return f"{REPOSITORY}:{content_hash(context)}"


def build_argv(docker_bin: str, tag: str, context: Path) -> list[str]:
    return [docker_bin, "build", "--tag", tag, "--file", str(context / "Dockerfile"), str(context)]


def load_argv(kind_bin: str, tag: str, cluster: str) -> list[str]:
    return [kind_bin, "load", "docker-image", tag, "--name", cluster]


def built(docker_bin: str, tag: str) -> bool:
    """Whether the local docker daemon already has the tag."""
    out = subprocess.run([docker_bin, "image", "inspect", tag], capture_output=True, timeout=60, check=False)
    return out.returncode == 0


def on_node(docker_bin: str, node: str, tag: str) -> bool:
    """Whether the kind node's containerd already has the image (``crictl inspecti``)."""
    ref = tag if "/" in tag.split(":")[0] else f"docker.io/library/{tag}"
    out = subprocess.run(
        [docker_bin, "exec", node, "crictl", "inspecti", ref], capture_output=True, timeout=60, check=False
    )
    return out.returncode == 0
