"""Replies a service waits for: send a command, remember what it was for, take that when its
reply comes (the reply's ``causation_id`` is the command's ``message_id``).

One mechanism for every service (storage's agent calls, the planner's saga steps). Taking
deletes: a second reply to the same command (a redelivery, or a late one to a command sent
again) finds nothing and has no effect. All of it happens in the caller's transaction, with
the command in the outbox.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts.base import Command
from contracts.envelope import Envelope
from shared.messaging import HandlerContext


async def send(
    ctx: HandlerContext,
    command: Command,
    *,
    reply_to: str,
    operation: str,
    resource_id: uuid.UUID,
    instead: bool = False,
    **detail: Any,
) -> Envelope:
    """Send ``command`` (replied to ``reply_to``); remember it was for ``operation`` on the resource.

    ``instead``: in place of what was sent before for it (as ``forget`` then ``send``, in one
    statement)."""
    envelope = ctx.send(command, reply_to=reply_to)
    before = (
        "WITH gone AS (DELETE FROM awaited_replies WHERE operation = $2 AND resource_id = $3) "
        if instead
        else ""
    )
    await ctx.conn.execute(
        before
        + "INSERT INTO awaited_replies (message_id, operation, resource_id, detail) VALUES ($1, $2, $3, $4)",
        envelope.message_id,
        operation,
        resource_id,
        detail,
    )
    return envelope


async def take(conn: asyncpg.Connection, message_id: uuid.UUID | None) -> asyncpg.Record | None:
    """What the command answered by this reply was for (removed: a second reply finds nothing)."""
    return await conn.fetchrow("DELETE FROM awaited_replies WHERE message_id = $1 RETURNING *", message_id)


async def in_flight(conn: asyncpg.Connection, resource_id: uuid.UUID) -> str | None:
    """The operation awaiting a reply on the resource, if any."""
    return await conn.fetchval(
        "SELECT operation FROM awaited_replies WHERE resource_id = $1 LIMIT 1", resource_id
    )


async def forget(conn: asyncpg.Connection, operation: str, resource_id: uuid.UUID) -> None:
    """No reply is awaited any more for ``operation`` on the resource (sent again, or given up)."""
    await conn.execute(
        "DELETE FROM awaited_replies WHERE operation = $1 AND resource_id = $2", operation, resource_id
    )
