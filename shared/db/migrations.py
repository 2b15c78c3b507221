"""Ordered SQL migrations per service schema, applied at start.

Files are named ``NNNN_description.sql``. The infrastructure tables (outbox, inbox) come
first, from ``shared/db/migrations``; then the service's own. A transaction-scoped advisory
lock per schema makes two replicas starting at once apply each file exactly once.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import structlog

SHARED_MIGRATIONS = Path(__file__).with_name("migrations")

log = structlog.get_logger(__name__)


def migration_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.sql"))
    versions = [f.name.split("_", 1)[0] for f in files]
    if len(set(versions)) != len(versions):
        raise ValueError(f"two migrations share a version number in {directory}")
    return files


async def migrate(conn: asyncpg.Connection, schema: str, own: Path | None = None) -> list[str]:
    """Apply what is missing; returns the names applied by this call."""
    sources = [("shared", SHARED_MIGRATIONS)] + ([("own", own)] if own else [])
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"snapdeploy.migrate.{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   name text PRIMARY KEY,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        for origin, directory in sources:
            for path in migration_files(directory):
                name = f"{origin}/{path.name}"
                if name in done:
                    continue
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
    if applied:
        log.info("migrations applied", schema=schema, applied=applied)
    return applied
