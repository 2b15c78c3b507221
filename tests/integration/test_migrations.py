"""Migrations on the real database: applied once, even when replicas start at the same moment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg

from shared.db.migrations import SHARED_MIGRATIONS, migrate, migration_files


async def test_replicas_starting_at_once_apply_each_migration_exactly_once(database_url, tmp_path: Path):
    (tmp_path / "0001_items.sql").write_text("CREATE TABLE items (id int PRIMARY KEY);")
    (tmp_path / "0002_seed.sql").write_text("INSERT INTO items VALUES (1), (2);")
    replicas = [await asyncpg.connect(database_url) for _ in range(5)]
    try:
        applied = await asyncio.gather(*(migrate(conn, "race", tmp_path) for conn in replicas))
        shared = [f"shared/{path.name}" for path in migration_files(SHARED_MIGRATIONS)]
        assert sorted(name for names in applied for name in names) == [
            "own/0001_items.sql",
            "own/0002_seed.sql",
            *shared,
        ]
        assert await replicas[0].fetchval("SELECT count(*) FROM race.items") == 2
        (tmp_path / "0003_more.sql").write_text("INSERT INTO items VALUES (3);")
        assert await migrate(replicas[1], "race", tmp_path) == ["own/0003_more.sql"]
        assert await migrate(replicas[2], "race", tmp_path) == []
    finally:
        await asyncio.gather(*(conn.close() for conn in replicas))
