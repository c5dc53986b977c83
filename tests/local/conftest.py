"""One real local stack per test session, in a private state root with a unique name."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.backends.local.backend import LocalBackend


@pytest.fixture(scope="session")
def state_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-state")


@pytest.fixture(scope="session")
def stack(state_root: Path) -> Iterator[LocalBackend]:
    backend = LocalBackend(f"t{os.getpid()}", state_root=state_root)
    try:
        backend.up()
        yield backend
    finally:
        backend.down(purge=True)
