"""The Postgres data dir outlives a deleted state folder (root layout: it lives in /var/tmp); a new
sandbox at the same path must not trip over it.

Found by CI: a fresh clone at the path of an earlier one found the earlier run's data dir, whose
password the new secrets did not know, and every scenario failed with "password authentication
failed".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sandbox.backends.local.backend import LocalBackend


def _data_dir(backend: LocalBackend) -> Path:
    saved = backend.state.load()
    assert saved is not None
    return Path(saved.postgres_data) if saved.postgres_data else backend.state.dir / "postgres" / "data"


def _sql(backend: LocalBackend, statement: str) -> str:
    session = backend.sql_session("postgres")
    try:
        return "\n".join(session.execute(statement))
    finally:
        session.close()


def test_up_replaces_a_data_dir_left_by_a_deleted_sandbox_at_the_same_path(tmp_path: Path) -> None:
    name = f"pgdata{os.getpid()}"
    first = LocalBackend(name, services=["postgres"], state_root=tmp_path)
    second = LocalBackend(name, services=["postgres"], state_root=tmp_path)
    try:
        first.up()
        left_behind = _data_dir(first)
        first.down()  # keeps the data, as after a scenario run
        shutil.rmtree(tmp_path / name)  # the checkout's .sandbox is gone (fresh clone, git clean)

        second.up()  # new secrets: the old data dir's password is unknown to them
        assert _data_dir(second) == left_behind, "the same path must map to the same data dir"
        _sql(second, "CREATE TABLE kept (x int);")
        second.down()
        second.up()  # its own data dir is kept on a restart, not replaced again
        assert "kept" in _sql(second, "SELECT tablename FROM pg_tables WHERE tablename = 'kept';")
    finally:
        second.down(purge=True)
        first.down(purge=True)
    assert not left_behind.exists(), "purge must delete the data dir"
