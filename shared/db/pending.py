"""Commands answered later: a handler parks the request here and returns ``DEFERRED``; whichever
handler finishes the work (usually on another service's reply) takes the parked requests of
that resource and answers each, in the same transaction as its own effect.

Several requests may wait on one resource (concurrent seedings of one snapshot): all get the
same answer.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts.base import Event
from contracts.envelope import Actor, Envelope
from shared.messaging import HandlerContext, Outgoing, reply_out


async def park(ctx: HandlerContext, resource_id: object, operation: str) -> None:
    """Remember the command in ``ctx`` so it can be answered when ``operation`` on the resource ends."""
    env = ctx.envelope
    await ctx.conn.execute(
        """INSERT INTO pending_replies
               (resource_id, operation, message_id, command, correlation_id, actor, reply_to)
           VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING""",
        str(resource_id),
        operation,
        env.message_id,
        env.type,
        env.correlation_id,
        env.actor.model_dump(mode="json"),
        ctx.reply_to,
    )


async def answer(
    conn: asyncpg.Connection, resource_id: object, operation: str, reply: Event, *, source: str
) -> list[Outgoing]:
    """Take the requests parked on the resource; the replies to publish (success or failure alike)."""
    rows = await conn.fetch(
        "DELETE FROM pending_replies WHERE resource_id = $1 AND operation = $2 RETURNING *",
        str(resource_id),
        operation,
    )
    out: list[Outgoing] = []
    for row in rows:
        cause = Envelope(
            message_id=row["message_id"],
            type=row["command"],
            schema_version=1,
            correlation_id=row["correlation_id"],
            occurred_at=datetime.now(UTC),
            source="pending",
            actor=Actor.model_validate(row["actor"]),
            payload={},
        )
        out.extend(reply_out(cause, reply, source=source, reply_to=row["reply_to"]))
    return out
