"""One robust connection per process; one confirming channel to publish, one channel per consumer."""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
    AbstractRobustQueue,
)

from contracts.topology import DEAD_LETTER, EXCHANGES, Exchange, QueueSpec
from shared.bus import failover
from shared.messaging import Outgoing

log = structlog.get_logger(__name__)

OnMessage = Callable[[AbstractIncomingMessage], Awaitable[None]]


class Consumer:
    """A running consumer; ``cancel`` stops new deliveries (in-flight ones finish)."""

    def __init__(self, channel: AbstractRobustChannel, queue: AbstractRobustQueue, tag: str):
        self.channel, self.queue, self.tag = channel, queue, tag

    async def cancel(self) -> None:
        if not self.channel.is_closed:
            await self.queue.cancel(self.tag)


def broker_user(url: str) -> str:
    """The RabbitMQ user an AMQP URL connects as (aio-pika's default when it names none)."""
    first = failover.parse_urls(url)[0]  # a cluster's URLs all name the same user
    return urllib.parse.unquote(urllib.parse.urlsplit(first).username or "guest")


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Verify the broker against ``ca_file`` (hostname included); None: aio-pika's defaults."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


class Bus:
    def __init__(self, url: str, *, name: str, publish_timeout: float = 30.0, ca_file: str | None = None):
        self.url = url
        self.name = name
        # Every publish names the connection's user: RabbitMQ refuses a message whose user_id is
        # not, so a consumer can trust it to say who sent the message (shared.identity).
        self.user = broker_user(url)
        self.ssl_context = tls_context(ca_file)
        # A confirm that never comes (a channel lost mid-publish) must not stall the caller for
        # ever: the publish fails, and the caller's retry sends it again with the same message id.
        self.publish_timeout = publish_timeout
        self.connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._exchanges: dict[str, aio_pika.abc.AbstractExchange] = {}

    async def connect(self) -> None:
        # ``url`` may list the nodes of a cluster, comma-separated: they are tried in turn.
        self.connection = await failover.connect(
            self.url,
            client_properties={"connection_name": self.name},
            reconnect_interval=1.0,
            ssl_context=self.ssl_context,
        )
        # on_return_raises: a mandatory message no queue takes fails its publish (it stays in the outbox).
        self._channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)

    @property
    def is_connected(self) -> bool:
        return (
            self.connection is not None
            and not self.connection.is_closed
            and self.connection.connected.is_set()
        )

    async def declare(self, queues: Iterable[QueueSpec], exchanges: Iterable[Exchange] = EXCHANGES) -> None:
        """Declare exchanges, quorum queues with their DLQs, and bindings (idempotent)."""
        channel = await self.connection.channel()
        try:
            declared = {}
            for exchange in exchanges:
                declared[exchange.name] = await channel.declare_exchange(
                    exchange.name, exchange.type, durable=True
                )
            dead_letter = declared.get(DEAD_LETTER.name) or await channel.declare_exchange(
                DEAD_LETTER.name, DEAD_LETTER.type, durable=True
            )
            for spec in queues:
                queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
                dlq = await channel.declare_queue(spec.dlq, durable=True, arguments=spec.dlq_arguments())
                await dlq.bind(dead_letter, routing_key=spec.name)
                for binding in spec.bindings:
                    exchange = declared.get(binding.exchange.name) or await channel.declare_exchange(
                        binding.exchange.name, binding.exchange.type, durable=True
                    )
                    await queue.bind(exchange, routing_key=binding.routing_key)
        finally:
            await channel.close()

    async def _exchange(self, name: str) -> aio_pika.abc.AbstractExchange:
        if name == "":
            return self._channel.default_exchange
        exchange = self._exchanges.get(name)
        if exchange is None:
            exchange = await self._channel.get_exchange(name, ensure=False)
            self._exchanges[name] = exchange
        return exchange

    async def publish(self, out: Outgoing) -> None:
        """Publish persistently and wait for the broker's confirm (raises if refused or returned)."""
        await self.publish_raw(
            out.exchange,
            out.routing_key,
            out.envelope.to_bytes(),
            message_id=str(out.envelope.message_id),
            type=out.envelope.type,
            correlation_id=str(out.envelope.correlation_id) if out.envelope.correlation_id else None,
            reply_to=out.reply_to,
            mandatory=out.mandatory,
        )

    async def publish_raw(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        *,
        message_id: str | None = None,
        type: str | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        mandatory: bool = False,
        headers: dict | None = None,
        content_type: str = "application/json",
    ) -> None:
        message = aio_pika.Message(
            body,
            content_type=content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            type=type,
            correlation_id=correlation_id,
            reply_to=reply_to,
            app_id=self.name,
            user_id=self.user,
            headers=headers or {},
        )
        target = await self._exchange(exchange)
        await asyncio.wait_for(
            target.publish(message, routing_key=routing_key, mandatory=mandatory), self.publish_timeout
        )

    async def publish_until_confirmed(self, out: Outgoing, *, deadline: float = 300.0) -> None:
        """For services without an outbox: retry through reconnects until confirmed or the deadline."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        delay = 0.1
        while True:
            try:
                await self.publish(out)
                return
            except (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError):
                if loop.time() > give_up:
                    raise
                log.warning("publish failed, retrying", routing_key=out.routing_key, delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def consume(
        self, spec: QueueSpec, on_message: OnMessage, *, prefetch: int | None = None
    ) -> Consumer:
        """Consume a declared queue on a channel of its own, with manual acks."""
        channel = await self.connection.channel()
        await channel.set_qos(prefetch_count=prefetch or spec.prefetch)
        # Declared (idempotently) on this channel, not fetched: a robust channel restores only
        # the queues it declared, and with them their consumers after a reconnect.
        queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.arguments())
        tag = await queue.consume(on_message, no_ack=False)
        return Consumer(channel, queue, tag)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
