"""Dumps of freshly migrated databases (one per database in the Postgres chart's list), per platform env.

Restoring them (~1 s) replaces ``airflow db migrate`` (~7 s) and MLflow's own table creation on every
later first start. A dump is taken right after the service that migrated it is ready, before anything
else writes to it; it holds schema and migration rows only: no secrets, no owners.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sandbox import paths
from sandbox.backends.local import postgres
from sandbox.backends.local.service import StackContext
from sandbox.errors import ServiceError


class SchemaCache:
    def __init__(self, env_dir: Path, databases: list[str]) -> None:
        self.dir = paths.cache_root() / "schemas" / env_dir.name
        self.databases = list(databases)

    def has(self, database: str) -> bool:
        return (self.dir / f"{database}.sql").is_file()

    def complete(self) -> bool:
        return all(self.has(db) for db in self.databases)

    def save(self, database: str, sql: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{database}.sql.{os.getpid()}"
        tmp.write_text(sql)
        tmp.replace(self.dir / f"{database}.sql")

    def restore(self, c: postgres.Connection) -> bool:
        """Load every dump; on any error start from empty databases (and drop the bad cache)."""
        try:
            for db in self.databases:
                postgres.restore_schema(
                    c.lay, c.port, c.user, c.password, db, (self.dir / f"{db}.sql").read_text()
                )
            return True
        except (ServiceError, OSError):
            for db in self.databases:
                postgres.recreate_database(c.lay, c.port, c.user, c.password, db)
                with contextlib.suppress(OSError):
                    (self.dir / f"{db}.sql").unlink()
            return False


def save_if_pristine(ctx: StackContext, database: str) -> None:
    """Dump ``database`` into the cache when this start created every database and it is not cached."""
    cache = SchemaCache(ctx.env_dir, ctx.config.postgres.databases)
    if ctx.pristine() and not cache.has(database):
        c = postgres.connection(ctx)
        cache.save(database, postgres.dump_schema(c.lay, c.port, c.user, c.password, database))
