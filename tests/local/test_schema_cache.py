"""Pre-migrated databases: a new sandbox restores the migrated Airflow and MLflow schemas dumped once per
platform env (``sandbox/backends/local/schemas.py``) instead of migrating, and a dump that does not load
falls back to migrating (and is made again). Real Postgres, ``airflow db migrate`` and MLflow (slow).

The cache is the machine's own (per platform env, shared by every sandbox): the test leaves it complete.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.backends.local.backend import LocalBackend
from sandbox.backends.local.schemas import SchemaCache
from sandbox.envs import ensure_platform_env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
MIGRATED = ("airflow-migrate", "ready", "schema already migrated")


def _up(name: str, state_root: Path) -> tuple[LocalBackend, list[tuple[str, str, str]]]:
    events: list[tuple[str, str, str]] = []
    backend = LocalBackend(
        f"{name}{os.getpid()}",
        services=["airflow-migrate", "mlflow"],
        state_root=state_root,
        progress=lambda service, event, detail: events.append((service, event, detail)),
    )
    backend.up()
    return backend, events


def _migration_heads(backend: LocalBackend) -> dict[str, list[str]]:
    heads = {}
    for database in ("airflow", "mlflow"):
        session = backend.sql_session(database)
        try:
            heads[database] = session.execute("SELECT version_num FROM alembic_version;")
        finally:
            session.close()
    return heads


def test_a_new_sandbox_restores_the_schemas_and_a_broken_dump_falls_back_to_migrating(tmp_path: Path) -> None:
    first, _ = _up("schema-a", tmp_path)  # makes the dumps if this platform env has none yet
    try:
        migrated = _migration_heads(first)
    finally:
        first.down(purge=True)
    cache = SchemaCache(ensure_platform_env(), first.config().postgres.databases)
    assert cache.complete(), f"no dumps in {cache.dir} after a first start"
    assert all(migrated.values()), migrated

    second, events = _up("schema-b", tmp_path)
    try:
        assert MIGRATED in events, events  # restored: `airflow db migrate` never ran
        assert _migration_heads(second) == migrated
    finally:
        second.down(purge=True)

    dump = cache.dir / "airflow.sql"
    dump.write_text("this is not a dump;\n")  # e.g. truncated by a full disk
    third, events = _up("schema-c", tmp_path)
    try:
        assert MIGRATED not in events and ("airflow-migrate", "starting", "") in events, events
        assert _migration_heads(third) == migrated
        assert cache.complete() and "not a dump" not in dump.read_text(), "the bad dump was not made again"
    finally:
        third.down(purge=True)
