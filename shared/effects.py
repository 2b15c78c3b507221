"""The two ways a service commits what a handler did.

``TransactionalEffects`` (services with a schema): inbox claim, the handler's writes and the
messages it emits in one PostgreSQL transaction; the relay publishes them.
``DirectEffects`` (the agent, whose truth is vCenter): the handler is idempotent against
vCenter itself, and what it emits is published with confirms before the delivery is acked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from typing import Any

import asyncpg

from contracts.base import Message
from contracts.catalogue import MessageSpec
from contracts.envelope import Envelope
from shared.db import inbox, outbox
from shared.db.outbox import OutboxRelay
from shared.messaging import Handler, HandlerContext, Outgoing, awaited_first, call_handler


class TransactionalEffects:
    """``replayable``: message types whose handler brings records to the state the message states
    (an inventory sync) and may run twice with one effect: they take no inbox row, so one that
    changes nothing writes nothing."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        relay: OutboxRelay,
        *,
        consumer: str,
        source: str,
        replayable: Collection[type[Message]] = (),
    ):
        self.pool = pool
        self.relay = relay
        self.consumer = consumer
        self.source = source
        self.replayable = frozenset(replayable)

    async def apply(
        self, envelope: Envelope, spec: MessageSpec, message: Message, handler: Handler, reply_to: str | None
    ) -> str:
        async with self.pool.acquire() as conn, conn.transaction():
            claim = spec.model not in self.replayable
            if claim and not await inbox.claim(conn, self.consumer, envelope.message_id, envelope.type):
                return "duplicate"
            ctx = HandlerContext(envelope, self.source, reply_to=reply_to, conn=conn)
            outcome = await call_handler(handler, spec, message, ctx, scope=conn.transaction)
            rows = await outbox.add(conn, ctx.outgoing, claim=True)
        self.relay.publish_claimed(rows)  # committed: out at once
        return outcome

    async def emit(self, outgoing: list[Outgoing]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await outbox.add(conn, outgoing, claim=True)
        self.relay.publish_claimed(rows)

    async def read(self, envelope: Envelope, message: Message, handler: Handler) -> Any:
        """Answer a query in a read-only transaction (one consistent view, no writes)."""
        async with self.pool.acquire() as conn, conn.transaction(readonly=True, isolation="repeatable_read"):
            return await handler(message, HandlerContext(envelope, self.source, conn=conn))


class DirectEffects:
    def __init__(self, bus, *, source: str):
        self.bus = bus
        self.source = source

    async def apply(
        self, envelope: Envelope, spec: MessageSpec, message: Message, handler: Handler, reply_to: str | None
    ) -> str:
        ctx = HandlerContext(envelope, self.source, reply_to=reply_to)
        outcome = await call_handler(handler, spec, message, ctx)
        await self.emit(ctx.outgoing, ctx.confirming)
        return outcome

    async def emit(self, outgoing: list[Outgoing], confirming: list[Awaitable[None]] = ()) -> None:
        """Publish every message at once and wait until all are confirmed: the confirms overlap,
        and the reply is not held behind the confirm of an event that went before it."""
        results = await asyncio.gather(
            *(self.bus.publish_until_confirmed(out) for out in awaited_first(outgoing)),
            *confirming,
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def read(self, envelope: Envelope, message: Message, handler: Handler) -> Any:
        return await handler(message, HandlerContext(envelope, self.source))
