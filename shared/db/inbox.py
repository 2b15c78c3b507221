"""Inbox: ``(consumer, message_id)`` recorded in the effect's transaction, so a redelivered
message finds its row and has no second effect. Two concurrent deliveries of one message
serialise on the primary key: the second waits for the first to commit, then sees it."""

from __future__ import annotations

import uuid

import asyncpg


async def claim(conn: asyncpg.Connection, consumer: str, message_id: uuid.UUID, type_name: str) -> bool:
    """True when this message is new for this consumer (and now recorded in this transaction)."""
    row = await conn.fetchrow(
        """INSERT INTO inbox (consumer, message_id, type) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING 1""",
        consumer,
        message_id,
        type_name,
    )
    return row is not None
