"""Outgoing messages, the handler context, and how a command's reply is produced."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from contracts.base import Command, CommandFailed, Event, Message, Succeeded
from contracts.catalogue import MessageSpec, failed_reply, succeeded_reply
from contracts.envelope import Envelope
from contracts.events import ActionEvent
from contracts.topology import COMMANDS, EVENTS, command_routing_key, event_routing_key
from shared.errors import DomainError

# uuid5 namespace for ids derived from another message's id (replies), so a reply produced
# twice (redelivery after a crash) has one message_id and is deduplicated downstream.
_DERIVED = uuid.UUID("6f1d3c55-2b8e-4f7a-9d0e-5a4c1b2e8f90")


def derived_id(cause: uuid.UUID, purpose: str) -> uuid.UUID:
    return uuid.uuid5(_DERIVED, f"{cause}:{purpose}")


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: where it goes and the envelope it carries."""

    envelope: Envelope
    exchange: str
    routing_key: str
    reply_to: str | None = None
    mandatory: bool = False


def awaited_first(outgoing: list[Outgoing]) -> list[Outgoing]:
    """Commands and replies sent to a queue (what a step waits for) ahead of the events beside
    them, each kind in its order: the broker takes a channel's messages one after another."""
    return sorted(outgoing, key=lambda out: out.exchange == EVENTS.name)


def event_out(envelope: Envelope, event: Event) -> Outgoing:
    return Outgoing(envelope, EVENTS.name, event_routing_key(envelope.source, event))


def command_out(envelope: Envelope, command: Command, reply_to: str | None = None) -> Outgoing:
    # Commands must reach a queue: an unroutable one is returned and stays in the outbox.
    return Outgoing(envelope, COMMANDS.name, command_routing_key(command), reply_to=reply_to, mandatory=True)


def reply_out(cause: Envelope, reply: Event, *, source: str, reply_to: str | None) -> list[Outgoing]:
    """A command's terminal reply: on the events exchange, and to ``reply_to`` when set."""
    envelope = cause.caused(reply, source=source, message_id=derived_id(cause.message_id, "reply"))
    out = [event_out(envelope, reply)]
    if reply_to:
        out.append(Outgoing(envelope, "", reply_to))
    return out


def failure(command: type[Command], error: DomainError) -> CommandFailed:
    return failed_reply(command)(
        error_code=error.code, error_text=error.text, retryable=error.retryable, fault=error.fault
    )


@dataclass
class HandlerContext:
    """What a handler gets besides its message: the transaction, and a way to emit messages."""

    envelope: Envelope
    source: str
    reply_to: str | None = None
    conn: asyncpg.Connection | None = None
    outgoing: list[Outgoing] = field(default_factory=list)
    log: Any = field(default_factory=lambda: structlog.get_logger("handler"))
    # Publications a handler of a service without an outbox started and did not wait for: they
    # are confirmed together with ``outgoing``, before the delivery is acked.
    confirming: list[Awaitable[None]] = field(default_factory=list)

    def emit(self, event: Event, *, message_id: uuid.UUID | None = None) -> Envelope:
        envelope = self.envelope.caused(event, source=self.source, message_id=message_id)
        self.outgoing.append(event_out(envelope, event))
        return envelope

    def action(
        self,
        event_type: str,
        state: str,
        resource_type: str,
        resource_id: uuid.UUID,
        name: str | None,
        description: str,
        *,
        account_id: uuid.UUID | None = None,
        failed: bool = False,
    ) -> None:
        """Emit an ``ActionEvent`` (CloudStack's audit vocabulary); a failure is logged at ERROR."""
        state = "Failed" if failed else state
        self.emit(
            ActionEvent(
                event_type=event_type,
                state=state,
                level="ERROR" if state == "Failed" else "INFO",
                resource_type=resource_type,
                resource_id=resource_id,
                resource_name=name,
                account_id=account_id or self.envelope.actor.account_id,
                description=description,
            )
        )

    def send(
        self, command: Command, *, reply_to: str | None = None, message_id: uuid.UUID | None = None
    ) -> Envelope:
        envelope = self.envelope.caused(command, source=self.source, message_id=message_id)
        self.outgoing.append(command_out(envelope, command, reply_to))
        return envelope


class _Deferred:
    """Returned by a command handler whose reply is sent later (see ``shared.db.pending``)."""

    def __repr__(self) -> str:
        return "DEFERRED"


DEFERRED = _Deferred()

Handler = Callable[[Any, HandlerContext], Awaitable[Succeeded | _Deferred | None]]
Handlers = dict[type[Message], Handler]


async def call_handler(
    handler: Handler,
    spec: MessageSpec,
    message: Message,
    ctx: HandlerContext,
    scope: Callable[[], AbstractAsyncContextManager[Any]] = contextlib.nullcontext,
) -> str:
    """Run a command's handler inside ``scope``, and append its terminal reply.

    Returns the outcome label. A DomainError from a command handler leaves ``scope`` (a
    savepoint, for a transactional service: the handler's writes are undone) and becomes the
    ``<Command>Failed`` reply. An event handler runs as it is: whatever it raises propagates
    and undoes the whole transaction, so it needs no scope of its own."""
    if spec.kind != "command":
        await handler(message, ctx)
        return "ok"
    command = spec.model
    try:
        async with scope():
            result = await handler(message, ctx)
    except DomainError as error:
        ctx.outgoing.clear()
        ctx.outgoing.extend(
            reply_out(ctx.envelope, failure(command, error), source=ctx.source, reply_to=ctx.reply_to)
        )
        ctx.log.info("command refused", error_code=error.code, error_text=error.text, fault=error.fault)
        return "failed"
    if result is DEFERRED:
        return "deferred"
    expected = succeeded_reply(command)
    if not isinstance(result, expected):
        raise TypeError(
            f"handler of {command.type_name()} returned {type(result).__name__}, not {expected.__name__}"
        )
    ctx.outgoing.extend(reply_out(ctx.envelope, result, source=ctx.source, reply_to=ctx.reply_to))
    return "ok"
