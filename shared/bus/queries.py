"""Queries over the bus: request/reply through RabbitMQ's direct reply-to.

A query is published to ``snapdeploy.queries`` with ``reply_to = amq.rabbitmq.reply-to`` and
``correlation_id`` = its message id; the answering service publishes the result (or a
``QueryFailed``) straight back. Queries are side-effect free, so nothing is stored: a lost
answer is a timeout, and asking again is safe.
"""

from __future__ import annotations

import asyncio
import contextlib

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from contracts.base import Query, QueryResult
from contracts.catalogue import CATALOGUE, Catalogue
from contracts.envelope import SYSTEM, Actor, Envelope
from contracts.topology import DIRECT_REPLY_TO, QUERIES, query_routing_key
from shared.errors import DomainError


class QueryClient:
    """Ask another service a question and wait (with a deadline) for its answer."""

    def __init__(self, bus, *, source: str, catalogue: Catalogue = CATALOGUE):
        self.bus = bus
        self.source = source
        self.catalogue = catalogue
        self._channel: AbstractChannel | None = None
        self._waiting: dict[str, asyncio.Future[Envelope]] = {}
        self._lock = asyncio.Lock()

    async def _ready_channel(self) -> AbstractChannel:
        # Direct reply-to needs the consumer and the publisher on one channel; a new one is
        # opened whenever the last was lost with its connection.
        async with self._lock:
            while self._channel is None or self._channel.is_closed:
                await self.bus.connection.connected.wait()  # a robust connection may be reconnecting
                try:
                    channel = await self.bus.connection.channel()
                    replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
                    await replies.consume(self._on_reply, no_ack=True)
                    self._channel = channel
                except (RuntimeError, aio_pika.exceptions.AMQPError):  # lost again meanwhile
                    await asyncio.sleep(0.2)
            return self._channel

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        waiter = self._waiting.pop(message.correlation_id or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(Envelope.model_validate_json(message.body))

    async def ask(self, query: Query, *, timeout: float = 10.0, actor: Actor = SYSTEM) -> QueryResult:
        """The typed answer; ``QueryFailed`` raises ``DomainError``; no answer in time raises TimeoutError."""
        envelope = Envelope.wrap(query, source=self.source, actor=actor)
        key = str(envelope.message_id)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        try:
            async with asyncio.timeout(timeout):
                answer = await self._ask(envelope, query, waiter)
        finally:
            self._waiting.pop(key, None)
        if answer.type == "QueryFailed":
            raise DomainError(answer.payload["error_code"], answer.payload["error_text"])
        spec = self.catalogue.resolve(answer.type, answer.source)
        if spec is None:
            raise DomainError(530, f"unknown answer type {answer.type} to {query.type_name()}")
        return spec.model.model_validate(answer.payload)

    async def _ask(self, envelope: Envelope, query: Query, waiter: asyncio.Future[Envelope]) -> Envelope:
        key = str(envelope.message_id)
        message = aio_pika.Message(
            envelope.to_bytes(),
            content_type="application/json",
            message_id=key,
            correlation_id=key,
            type=envelope.type,
            reply_to=DIRECT_REPLY_TO,
            app_id=self.source,
            user_id=self.bus.user,
        )
        while True:  # bounded by the caller's deadline
            channel = await self._ready_channel()
            try:
                exchange = await channel.get_exchange(QUERIES.name, ensure=False)
                await exchange.publish(message, routing_key=query_routing_key(query), mandatory=True)
                return await waiter
            except aio_pika.exceptions.AMQPError:
                # A channel restored after a reconnect has lost its direct reply-to consumer
                # (the broker refuses the publish: "fast reply consumer does not exist"): ask
                # again on a new channel with a new consumer.
                await self._forget(channel)
                await asyncio.sleep(0.1)

    async def _forget(self, channel: AbstractChannel) -> None:
        async with self._lock:
            if self._channel is channel:
                self._channel = None
        with contextlib.suppress(Exception):  # it is being closed by the broker already
            await channel.close()
