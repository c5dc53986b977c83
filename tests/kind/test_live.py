"""A real kind sandbox: runs only where docker, kind, helm and kubectl work (never faked)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from sandbox.backends.kind.backend import KindBackend
from sandbox.errors import PreflightError

pytestmark = pytest.mark.needs_kind


def _skip_reason() -> str | None:
    from sandbox.backends.kind import preflight

    try:
        tools = preflight.tools()
        preflight.docker_daemon(tools.docker)
    except PreflightError as exc:
        return exc.what
    if not os.environ.get("MLOPS_KIND_E2E"):
        return "set MLOPS_KIND_E2E=1 to create a kind cluster (minutes, pulls images)"
    return None


def test_up_reuse_down() -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    backend = KindBackend(sandbox_name=f"t{os.getpid()}")
    try:
        first = backend.up()
        assert all(s.healthy for s in first.services), first.services
        second = backend.up()
        assert second.reused  # how fast a reuse is: a benchmark, not an assert
    finally:
        backend.down(purge=True)
    kind = shutil.which("kind") or "kind"
    assert (
        backend.cluster
        not in subprocess.run([kind, "get", "clusters"], capture_output=True, text=True).stdout
    )
