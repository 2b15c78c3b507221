"""A client for bus producers: send commands, ask queries, wait for conditions, watch events.

    async with BusClient("amqp://me:secret@rabbit:5672/") as bus:
        done = await bus.call(DeployVirtualMachine(...), timeout=300)   # DeployVirtualMachineSucceeded
        vms = await bus.ask(ListVirtualMachines())                       # ListVirtualMachinesResult
        await bus.until(ListVirtualMachines(), lambda r: r.vms, timeout=30)
        async with bus.subscribe(("snapdeploy.events", "planner.action_event.#")) as events:
            async for envelope in events: ...

Who you are comes from the broker connection (the user and password in the AMQP URL): the client
never sets an envelope ``actor`` of its own, so a caller that is not a snapdeploy service needs
none, and sees and acts on what its broker user's account may.

Every command goes with ``reply_to`` = a quorum queue of this client's own,
``producer.<broker user>.<name>.<id>`` (a producer's permissions cover only its own queues; the
queue survives a lost connection, and the broker removes it ``INBOX_EXPIRY_MS`` after the client
is gone), and its one terminal reply, ``<Command>Succeeded`` or ``<Command>Failed``, comes back
there. Queries use direct reply-to. Every wait has a deadline. Subscribing to events needs a
broker user that may read the exchange (an operator's, a service's): producers may not.
"""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TypeVar

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from contracts.base import Command, CommandFailed, Event, Query, QueryResult, Succeeded, snake
from contracts.catalogue import CATALOGUE, Catalogue, failed_reply, succeeded_reply
from contracts.envelope import SYSTEM, Actor, Envelope
from contracts.topology import EVENTS, producer_queue_prefix
from shared.bus import Bus
from shared.bus.queries import QueryClient
from shared.errors import DomainError
from shared.messaging import command_out

__all__ = ["BusClient", "CommandRefused", "DomainError", "Subscription"]

INBOX_EXPIRY_MS = 10 * 60 * 1000  # an abandoned client's queues go away after ten minutes unused
RECONNECT_WAIT_S = 10.0  # how long closing a subscription waits for a connection being restored
REMEMBERED_REPLIES = 10_000  # replies kept for a reply() asked after they came

R = TypeVar("R", bound=QueryResult)
E = TypeVar("E", bound=Event)
Binding = tuple[str, str]  # (exchange, routing-key pattern)


class CommandRefused(DomainError):
    """The command's terminal reply was ``<Command>Failed``: its code, text, fault, and the reply."""

    def __init__(self, reply: Envelope):
        failed = CommandFailed.model_validate(reply.payload)
        super().__init__(failed.error_code, failed.error_text, fault=failed.fault, retryable=failed.retryable)
        self.reply = reply

    def __str__(self) -> str:
        return f"{self.reply.type} ({self.code}): {self.text}"


def queue_prefix(amqp_url: str) -> str:
    """A bus producer declares, reads and gets replies on its own queues only: ``producer.<broker user>.``."""
    return producer_queue_prefix(urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).username or "guest"))


def is_terminal_reply(envelope: Envelope) -> bool:
    return envelope.causation_id is not None and envelope.type.endswith(("Succeeded", "Failed"))


class Subscription:
    """Envelopes from the exchanges and keys it is bound to, in arrival order.

    ``async for envelope in subscription`` takes them one by one; ``wait_for`` waits (with a
    deadline) until enough of them match; ``seen`` keeps the last ``history`` that arrived."""

    def __init__(self, client: BusClient, bindings: Iterable[Binding], *, history: int | None, name: str):
        self.client = client
        self.bindings = tuple(bindings)
        self.queue_name = name
        self.seen: deque[Envelope] = deque(maxlen=history)
        self.skipped = 0  # bodies that were not envelopes
        self._new: asyncio.Queue[Envelope] | None = None  # from the first ``async for`` on
        self._changed = asyncio.Condition()
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None

    async def open(self) -> Subscription:
        self._channel = await self.client.bus.connection.channel()
        self._queue = await self._channel.declare_queue(
            self.queue_name,
            durable=True,
            arguments={"x-queue-type": "quorum", "x-expires": INBOX_EXPIRY_MS},
        )
        for exchange, key in self.bindings:  # declared by the services; binding needs read on it
            await self._queue.bind(exchange, key)
        self._tag = await self._queue.consume(self._on_message)
        return self

    async def close(self) -> None:
        if self in self.client._subscriptions:
            self.client._subscriptions.remove(self)
        if self._channel is not None and not self._channel.is_closed:
            # A connection the broker closed is being restored (with this channel): cancelling on
            # it now would fail, so wait for it first; the queue's expiry covers a restore that
            # never comes.
            connection = self.client.bus.connection
            if connection is not None and not connection.connected.is_set():
                try:
                    await asyncio.wait_for(connection.connected.wait(), RECONNECT_WAIT_S)
                except TimeoutError:
                    return
            await self._queue.cancel(self._tag)
            await self._queue.delete(if_unused=False, if_empty=False)
            await self._channel.close()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            try:
                envelope = Envelope.model_validate_json(message.body)
            except ValidationError:
                # Anyone may publish anything on a command or event key: a body that is not an
                # envelope is not this subscriber's to read, and must not break its consumer.
                self.skipped += 1
                return
            self.client.take_reply(envelope)
            async with self._changed:
                self.seen.append(envelope)
                if self._new is not None:
                    self._new.put_nowait(envelope)
                self._changed.notify_all()

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Envelope]:
        """What arrives from now on (what came before is in ``seen``)."""
        if self._new is None:
            self._new = asyncio.Queue()
        while True:
            yield await self._new.get()

    def matching(self, predicate: Callable[[Envelope], bool]) -> list[Envelope]:
        return [e for e in self.seen if predicate(e)]

    async def wait_for(
        self, predicate: Callable[[Envelope], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Envelope]:
        """Every envelope seen that matches, once at least ``count`` have; TimeoutError after ``timeout``."""

        async def enough() -> list[Envelope]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.matching(predicate)) >= count)
                return self.matching(predicate)

        try:
            return await asyncio.wait_for(enough(), timeout)
        except TimeoutError:
            kinds = [e.type for e in list(self.seen)[-20:]]
            raise TimeoutError(
                f"waited {timeout}s for {count} matching message(s); last seen: {kinds}"
            ) from None


class BusClient:
    """One connection to snapdeploy's bus; see the module docstring for a tour."""

    def __init__(
        self,
        amqp_url: str,
        *,
        name: str = "client",
        publish_timeout: float = 30.0,
        catalogue: Catalogue = CATALOGUE,
    ):
        """``amqp_url`` carries who you are (user and password); ``name`` shows in the broker and
        as the envelopes' ``source``; ``catalogue`` is where answers to queries are typed from."""
        self.name = name
        self.catalogue = catalogue
        self.bus = Bus(amqp_url, name=name, publish_timeout=publish_timeout)
        self.inbox = f"{queue_prefix(amqp_url)}{name}.{uuid.uuid4().hex[:12]}"
        self._waiting: dict[uuid.UUID, asyncio.Future[Envelope]] = {}
        self._replies: OrderedDict[uuid.UUID, Envelope] = OrderedDict()
        self._subscriptions: list[Subscription] = []
        self._queries: QueryClient | None = None

    async def __aenter__(self) -> BusClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def connect(self) -> None:
        await self.bus.connect()
        self._queries = QueryClient(self.bus, source=self.name, catalogue=self.catalogue)
        # The inbox takes replies sent to reply_to (the default exchange routes by queue name).
        self._inbox = await Subscription(self, [], history=0, name=self.inbox).open()

    async def close(self) -> None:
        for subscription in [*self._subscriptions, self._inbox]:
            await subscription.close()
        await self.bus.close()

    # -- commands ----------------------------------------------------------------------------------

    async def send(
        self,
        command: Command,
        *,
        job: uuid.UUID | None = None,
        message_id: uuid.UUID | None = None,
        actor: Actor = SYSTEM,
        reply_to: str | None = None,
    ) -> Envelope:
        """Publish ``command`` (broker-confirmed) as a job of its own, or of ``job``; the envelope sent.

        ``actor``: leave it; who you are is your broker user. Only a snapdeploy service user (the
        api acting for its caller) may state another, and a message claiming one is refused (531).
        ``reply_to``: another queue of yours for the reply (default: this client's own); ``reply``
        finds it when a subscription of this client reads that queue."""
        envelope = Envelope.wrap(
            command, source=self.name, correlation_id=job or uuid.uuid4(), message_id=message_id, actor=actor
        )
        out = command_out(envelope, command, reply_to=reply_to or self.inbox)
        await self.bus.publish_until_confirmed(out)
        return envelope

    async def reply(self, sent: Envelope, *, timeout: float = 60.0) -> Envelope:
        """The terminal reply to a sent command (``<Command>Succeeded`` or ``<Command>Failed``).

        Also finds replies to commands published some other way, when a subscription of this
        client is bound to where they go (``snapdeploy.events``)."""
        if (known := self._replies.get(sent.message_id)) is not None:
            return known
        waiter = self._waiting.setdefault(sent.message_id, asyncio.get_running_loop().create_future())
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            raise TimeoutError(f"no reply to {sent.type} {sent.message_id} within {timeout}s") from None
        finally:
            self._waiting.pop(sent.message_id, None)

    def take_reply(self, envelope: Envelope) -> None:
        """Called with every envelope received: resolves whoever waits for it as a reply."""
        if not is_terminal_reply(envelope):
            return
        waiter = self._waiting.get(envelope.causation_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(envelope)
        # Remembered either way: asking for the same reply again answers at once.
        self._replies[envelope.causation_id] = envelope
        while len(self._replies) > REMEMBERED_REPLIES:
            self._replies.popitem(last=False)

    async def call(
        self, command: Command, *, timeout: float = 60.0, job: uuid.UUID | None = None, actor: Actor = SYSTEM
    ) -> Succeeded:
        """Send and await the terminal reply: the typed ``<Command>Succeeded``, or CommandRefused."""
        reply = await self.reply(await self.send(command, job=job, actor=actor), timeout=timeout)
        if reply.type == failed_reply(type(command)).type_name():
            raise CommandRefused(reply)
        return succeeded_reply(type(command)).model_validate(reply.payload)

    async def call_caused(
        self, command: Command, event: type[E], *, timeout: float = 60.0, job: uuid.UUID | None = None
    ) -> E:
        """Call ``command`` and return the ``event`` it caused (e.g. SyncInventory -> InventorySynced)."""
        key = f"#.{snake(event.type_name())}.#"  # <source>.<event>[.<detail>]
        async with await self.subscribe((EVENTS.name, key), history=1000) as events:
            sent = await self.send(command, job=job)
            reply = await self.reply(sent, timeout=timeout)
            if reply.type.endswith("Failed"):
                raise CommandRefused(reply)
            [caused] = await events.wait_for(
                lambda e: e.type == event.type_name() and e.causation_id == sent.message_id, timeout=timeout
            )
        return event.model_validate(caused.payload)

    # -- queries -----------------------------------------------------------------------------------

    async def ask(self, query: Query, *, timeout: float = 10.0, actor: Actor = SYSTEM) -> QueryResult:
        """The typed answer; a ``QueryFailed`` raises DomainError, no answer in time TimeoutError.

        Answers are what your broker user's account may see (``actor`` as for ``send``)."""
        return await self._queries.ask(query, timeout=timeout, actor=actor)

    async def until(
        self,
        query: Query,
        check: Callable[[QueryResult], object],
        *,
        timeout: float = 30.0,
        interval: float = 0.2,
        what: str = "the condition",
    ) -> QueryResult:
        """Ask ``query`` until ``check(answer)`` is true; that answer, or TimeoutError (with the last one)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            answer = await self.ask(query)
            if check(answer):
                return answer
            if loop.time() > deadline:
                raise TimeoutError(f"{what} did not hold within {timeout}s; last answer: {answer}")
            await asyncio.sleep(interval)

    # -- events ------------------------------------------------------------------------------------

    async def subscribe(
        self, *bindings: Binding, history: int | None = 10_000, queue: str | None = None, bound: bool = True
    ) -> Subscription:
        """A subscription bound to ``(exchange, routing key)`` pairs (default: every event), consuming now.

        ``queue``: its name (default: one under this client's inbox; a producer's must start
        ``producer.<broker user>.``); ``bound=False``: no binding at all, a queue that takes what
        is sent to it by name (replies). Usable as ``async with await bus.subscribe(...) as
        events``; closed with the client otherwise."""
        name = queue or f"{self.inbox}.events.{len(self._subscriptions)}"
        bindings = (bindings or ((EVENTS.name, "#"),)) if bound else ()
        subscription = await Subscription(self, bindings, history=history, name=name).open()
        self._subscriptions.append(subscription)
        return subscription
