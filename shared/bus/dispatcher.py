"""From a delivery to a handled message, with the failure classes of DESIGN section 4.

- Invalid message (not an envelope, unknown type, payload fails its model): a 431
  ``<Command>Failed`` when it was a command (a ``QueryFailed`` 431 to its reply-to when it was a
  query), then rejected to the queue's DLQ at once.
- Transient failure (anything else the handler raises): nacked for redelivery after a
  backoff; on the last delivery the queue allows, a retryable failure reply is published and
  the message is dead-lettered.
- A ``DomainError`` is an answer, not a failure: its reply is committed and the message acked.
- Who the message acts for comes from the broker's ``user_id`` (``shared.identity``): a message
  its sender may not send, or that claims an actor its sender is not, is refused with 531 before
  any handler runs, and has no effect.

The consumer never stops on a bad message. Acks happen after the effect is committed.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from contracts.base import Message, snake
from contracts.catalogue import Catalogue, MessageSpec, failed_reply
from contracts.envelope import Envelope
from contracts.errors import ErrorCode
from contracts.events import QueryFailed
from contracts.topology import COMMANDS, QUERIES, QueueSpec, command_routing_key, query_routing_key
from shared.bus.explain import clip, explain
from shared.errors import DomainError, InvalidMessage
from shared.identity import Identity
from shared.messaging import Handler, Handlers, Outgoing, failure, reply_out
from shared.metrics import Metrics

log = structlog.get_logger("dispatcher")


class Effects(Protocol):
    """How a service commits a handler's effect and the messages it emits."""

    async def apply(
        self, envelope: Envelope, spec: MessageSpec, message: Message, handler: Handler, reply_to: str | None
    ) -> str: ...

    async def emit(self, outgoing: list[Outgoing]) -> None: ...

    async def read(self, envelope: Envelope, message: Message, handler: Handler) -> Any: ...


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.base * 2**attempt) * random.uniform(0.8, 1.2)


class Dispatcher:
    """Callback for one queue's consumer."""

    def __init__(
        self,
        *,
        consumer: str,
        source: str,
        queue: QueueSpec,
        catalogue: Catalogue,
        handlers: Handlers,
        effects: Effects,
        metrics: Metrics,
        identity: Identity,
        namespace: str | None = None,
        retry: RetryPolicy | None = None,
        bus: Any = None,
    ):
        self.consumer = consumer
        self.source = source
        self.queue = queue
        self.catalogue = catalogue
        self.handlers = handlers
        self.effects = effects
        self.metrics = metrics
        self.identity = identity
        self.namespace = namespace
        self.retry = retry or RetryPolicy()
        self.bus = bus  # answers to queries go straight back on it
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def __call__(self, delivery: AbstractIncomingMessage) -> None:
        self._in_flight += 1
        self._idle.clear()
        self.metrics.in_flight.inc()
        try:
            with structlog.contextvars.bound_contextvars(
                queue=self.queue.name,
                message_id=delivery.message_id,
                correlation_id=delivery.correlation_id,
                type=delivery.type,
            ):
                await self._process(delivery)
        finally:
            self.metrics.in_flight.dec()
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    # -- steps -------------------------------------------------------------------------------------

    def _decode(self, delivery: AbstractIncomingMessage) -> tuple[Envelope, MessageSpec, Message]:
        try:
            envelope = Envelope.model_validate_json(delivery.body)
        except ValidationError as error:
            raise InvalidMessage(f"not a snapdeploy envelope: {explain(error)}") from None
        if self.namespace:
            spec = self.catalogue.get(self.namespace, envelope.type)
        else:
            spec = self.catalogue.resolve(envelope.type, envelope.source)
        if spec is None:
            raise InvalidMessage(f"unknown message type {clip(envelope.type)!r} on {self.queue.name}")
        if envelope.schema_version > spec.model.schema_version:
            raise InvalidMessage(
                f"{envelope.type} schema_version {envelope.schema_version} is newer than "
                f"{spec.model.schema_version}, the newest this service reads"
            )
        try:
            message = spec.model.model_validate(envelope.payload)
        except ValidationError as error:
            raise InvalidMessage(f"invalid {envelope.type}: {explain(error)}") from None
        _check_route(delivery, spec, message)
        return envelope, spec, message

    async def _process(self, delivery: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        try:
            envelope, spec, message = self._decode(delivery)
            handler = self.handlers.get(spec.model)
            if handler is None:
                raise InvalidMessage(f"{envelope.type} is not handled on {self.queue.name}")
        except InvalidMessage as error:
            await self._reject_invalid(delivery, str(error))
            return
        structlog.contextvars.bind_contextvars(source=envelope.source)
        if spec.kind == "query":
            await self._answer(delivery, envelope, spec, message, handler)
            return
        attempt = int(delivery.headers.get("x-delivery-count") or 0)
        try:
            envelope = await self.identity.resolve(delivery.user_id, envelope, spec, delivery.reply_to)
        except DomainError as refusal:
            await self._refuse(delivery, envelope, spec, refusal)
            return
        except Exception as error:  # the principals table unreachable: like any transient failure
            await self._retry_or_dead_letter(delivery, envelope, spec, attempt, error)
            return
        try:
            outcome = await self.effects.apply(envelope, spec, message, handler, delivery.reply_to)
        except Exception as error:  # transient by default: the delivery limit bounds the retries
            await self._retry_or_dead_letter(delivery, envelope, spec, attempt, error)
            return
        await self._settle(delivery.ack())
        self.metrics.handled.labels(envelope.type, outcome).inc()
        self.metrics.handle_seconds.labels(envelope.type).observe(time.perf_counter() - started)
        log.info("handled", outcome=outcome, duration_ms=round((time.perf_counter() - started) * 1000, 1))

    async def _answer(
        self,
        delivery: AbstractIncomingMessage,
        envelope: Envelope,
        spec: MessageSpec,
        message: Message,
        handler: Handler,
    ) -> None:
        """Queries: answer on the caller's reply-to and ack; a failure is an answer too."""
        try:
            envelope = await self.identity.resolve(delivery.user_id, envelope, spec, delivery.reply_to)
            answer = await self.effects.read(envelope, message, handler)
            outcome = "ok"
        except DomainError as error:
            answer, outcome = (
                QueryFailed(query=envelope.type, error_code=error.code, error_text=error.text),
                "failed",
            )
        except Exception as error:
            log.error("query failed", error=repr(error), exc_info=error)
            answer, outcome = (
                QueryFailed(query=envelope.type, error_code=530, error_text=str(error)),
                "failed",
            )
        if delivery.reply_to and self.identity.may_reply_to(delivery.user_id, delivery.reply_to):
            await self._send_answer(delivery, envelope.caused(answer, source=self.source))
        await self._settle(delivery.ack())
        self.metrics.handled.labels(envelope.type, outcome).inc()

    async def _refuse(
        self, delivery: AbstractIncomingMessage, envelope: Envelope, spec: MessageSpec, refusal: DomainError
    ) -> None:
        """Not for this sender: a command gets its ``<Command>Failed``; anything else is dead-lettered."""
        log.warning(
            "message refused: sender may not act so",
            user_id=delivery.user_id,
            error_code=refusal.code,
            error_text=refusal.text,
        )
        if spec.kind != "command":
            await self._settle(delivery.reject(requeue=False))
            self.metrics.handled.labels(envelope.type, "refused").inc()
            return
        reply = failure(spec.model, refusal)
        try:
            await self.effects.emit(
                reply_out(envelope, reply, source=self.source, reply_to=self._reply_to(delivery))
            )
        except Exception as error:  # the broker keeps the message; the next delivery tries again
            log.error("could not emit the refusal", error=repr(error))
            await self._settle(delivery.nack(requeue=True))
            return
        await self._settle(delivery.ack())
        self.metrics.handled.labels(envelope.type, "refused").inc()

    async def _reject_invalid(self, delivery: AbstractIncomingMessage, reason: str) -> None:
        command = self._meant(delivery, "command")
        query = None if command else self._meant(delivery, "query")
        if command is not None:
            cause = self._cause_of(delivery, command)
            reply = failed_reply(command)(error_code=ErrorCode.PARAM_ERROR, error_text=reason)
            await self.effects.emit(
                reply_out(cause, reply, source=self.source, reply_to=self._reply_to(delivery))
            )
        elif query is not None:
            await self._answer_invalid(delivery, query, reason)
        await self._settle(delivery.reject(requeue=False))
        # A label names a type of the catalogue: the AMQP type is the sender's to choose, and every
        # value a label takes is a time series held for ever.
        meant = command or query
        self.metrics.handled.labels(meant.type_name() if meant else "unknown", "rejected").inc()
        log.warning("message rejected to the dead-letter queue", reason=reason)

    async def _answer_invalid(
        self, delivery: AbstractIncomingMessage, query: type[Message], reason: str
    ) -> None:
        """An invalid query is answered at once (a ``QueryFailed`` 431), not left to its caller's timeout."""
        if not delivery.reply_to or self.bus is None or self._reply_to(delivery) is None:
            return
        answer = QueryFailed(query=query.type_name(), error_code=ErrorCode.PARAM_ERROR, error_text=reason)
        await self._send_answer(delivery, self._cause_of(delivery, query).caused(answer, source=self.source))

    async def _send_answer(self, delivery: AbstractIncomingMessage, reply: Envelope) -> None:
        """A query's answer to its caller's reply queue (direct reply-to), best effort."""
        try:
            await self.bus.publish_raw(
                "", delivery.reply_to, reply.to_bytes(), message_id=str(reply.message_id),
                type=reply.type, correlation_id=delivery.correlation_id,
            )  # fmt: skip
        except Exception as error:  # the caller times out and may ask again
            log.warning("could not send the answer", error=repr(error))

    async def _retry_or_dead_letter(
        self,
        delivery: AbstractIncomingMessage,
        envelope: Envelope,
        spec: MessageSpec,
        attempt: int,
        error: Exception,
    ) -> None:
        last = attempt + 1 >= self.queue.delivery_limit
        if not last:
            delay = self.retry.delay(attempt)
            log.warning(
                "transient failure, will retry",
                attempt=attempt + 1,
                delay_s=round(delay, 2),
                error=repr(error),
            )
            await asyncio.sleep(delay)
            await self._settle(delivery.nack(requeue=True))
            self.metrics.handled.labels(envelope.type, "retried").inc()
            return
        log.error(
            "delivery limit reached, dead-lettering", attempts=attempt + 1, error=repr(error), exc_info=error
        )
        if spec.kind == "command":
            reply = failed_reply(spec.model)(
                error_code=ErrorCode.INTERNAL_ERROR,
                error_text=f"gave up after {attempt + 1} attempts: {error}",
                retryable=True,
            )
            try:
                await self.effects.emit(
                    reply_out(envelope, reply, source=self.source, reply_to=self._reply_to(delivery))
                )
            except Exception as emit_error:  # the broker keeps the message; the next delivery tries again
                log.error("could not emit the failure reply", error=repr(emit_error))
                await self._settle(delivery.nack(requeue=True))
                return
        await self._settle(delivery.reject(requeue=False))
        self.metrics.handled.labels(envelope.type, "dead_lettered").inc()

    # -- helpers ----------------------------------------------------------------------------------

    def _reply_to(self, delivery: AbstractIncomingMessage) -> str | None:
        """Where a failure reply may go besides the events exchange: the sender's own queue only. A
        message refused before its identity was resolved (unreadable, or the principals unreachable)
        must not post a reply into a queue its sender does not own (a service's, another producer's)."""
        if self.identity.may_reply_to(delivery.user_id, delivery.reply_to):
            return delivery.reply_to
        log.warning("reply_to is not the sender's own queue: the reply goes to the events exchange only",
                    user_id=delivery.user_id, reply_to=(delivery.reply_to or "")[:255])  # fmt: skip
        return None

    def _meant(self, delivery: AbstractIncomingMessage, kind: str) -> type[Message] | None:
        """Which command (or query) of this queue an unreadable message was meant to be: its AMQP
        ``type`` or the last word of its routing key names it."""
        if not self.namespace:
            return None
        names = [delivery.type] if delivery.type else []
        if delivery.routing_key:
            names.append(delivery.routing_key.rsplit(".", 1)[-1])
        for spec in self.catalogue:
            mine = spec.namespace == self.namespace and spec.kind == kind
            if mine and (spec.type in names or snake(spec.type) in names):
                return spec.model
        return None

    @staticmethod
    def _cause_of(delivery: AbstractIncomingMessage, command: type[Message]) -> Envelope:
        def as_uuid(value: str | None) -> uuid.UUID | None:
            try:
                return uuid.UUID(value) if value else None
            except ValueError:
                return None

        return Envelope(
            message_id=as_uuid(delivery.message_id) or uuid.uuid4(),
            type=command.type_name(),
            schema_version=command.schema_version,
            correlation_id=as_uuid(delivery.correlation_id),
            occurred_at=datetime.now(UTC),
            source=delivery.app_id or "unknown",
            payload={},
        )

    @staticmethod
    async def _settle(settlement) -> None:
        """Ack/nack/reject; a closed channel means the broker redelivers, and the inbox dedupes."""
        try:
            await settlement
        except Exception as error:
            log.warning("could not settle delivery (will be redelivered)", error=repr(error))


def _check_route(delivery: AbstractIncomingMessage, spec: MessageSpec, message: Message) -> None:
    """A command or query travels under its own routing key (``planner.deploy_virtual_machine``,
    ``agent.<zone>.clone_from_snapshot``): one published under another key is refused, whichever
    queue that key reached, so what a key (and a topic permission on it) names is what runs."""
    exchange = getattr(delivery, "exchange", None)
    if exchange == COMMANDS.name:
        expected = command_routing_key(message) if spec.kind == "command" else None
    elif exchange == QUERIES.name:
        expected = query_routing_key(message) if spec.kind == "query" else None
    else:
        return  # events, and replies sent straight to a queue
    if delivery.routing_key != expected:
        raise InvalidMessage(
            f"{spec.type} is not sent under routing key {clip(delivery.routing_key or '')!r}"
            + (f" (its key is {expected!r})" if expected else f" (not a {exchange} message)")
        )
