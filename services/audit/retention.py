"""Retention: rows older than the configured age are archived (or purged) by a periodic job.

Each pass moves at most ``batch`` rows per transaction and loops until nothing is left, so a
large backlog never holds one long transaction. Rows are claimed with ``FOR UPDATE SKIP
LOCKED``: several audit replicas run the job at once without moving a row twice or waiting
on each other.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
import structlog

from services.audit.rows import COLUMNS

log = structlog.get_logger("audit.retention")

Mode = Literal["archive", "purge"]

_CLAIM = "SELECT id FROM events WHERE occurred_at < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"
_MOVED = ", ".join(("id", "recorded_at", *COLUMNS))  # by name: the archive's columns are in another order
ARCHIVE = f"""
    WITH moved AS (DELETE FROM events WHERE id IN ({_CLAIM}) RETURNING *)
    INSERT INTO events_archive ({_MOVED}) SELECT {_MOVED} FROM moved ON CONFLICT (id) DO NOTHING"""
# What the CloudStack republish remembers of actions goes with the same age (the VMs of VM
# snapshots stay: a snapshot outlives any retention).
FORGET = ("DELETE FROM cloudstack_actions WHERE updated < $1",)
PURGE = f"DELETE FROM events WHERE id IN ({_CLAIM})"


async def apply_once(pool: asyncpg.Pool, *, older_than: datetime, mode: Mode, batch: int) -> int:
    """Move (or delete) every row older than ``older_than``; returns how many."""
    statement = ARCHIVE if mode == "archive" else PURGE
    total = 0
    while True:
        async with pool.acquire() as conn:
            status = await conn.execute(statement, older_than, batch)
        done = int(status.rsplit(" ", 1)[-1])
        total += done
        if done < batch:
            async with pool.acquire() as conn:
                for statement in FORGET:
                    await conn.execute(statement, older_than)
            return total


async def run_periodically(
    pool: asyncpg.Pool, *, days: float, mode: Mode, interval: float, batch: int
) -> None:
    log.info("retention on", days=days, mode=mode, interval_s=interval)
    while True:
        cutoff = datetime.now(UTC) - timedelta(days=days)
        try:
            moved = await apply_once(pool, older_than=cutoff, mode=mode, batch=batch)
            if moved:
                log.info("retention pass", mode=mode, rows=moved, older_than=cutoff.isoformat())
        except Exception as error:  # the next pass tries again
            log.warning("retention pass failed", error=repr(error))
        await asyncio.sleep(interval)
