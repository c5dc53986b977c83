"""The job image's tag: a hash of every file under ``jobs/`` (no caches), so unchanged job code finds the
image already built (and, on kind, already on the node) and a change of any file gets a new tag."""

from __future__ import annotations

import hashlib
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
