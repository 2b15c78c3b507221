"""Watch the bus from a test: collect envelopes from chosen exchanges and wait for them with a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika

from contracts.envelope import Envelope


class Observer:
    """A durable quorum queue of the test's own (it survives connection loss), bound to keys
    (events by default; none with ``bound=False``: a producer's reply queue)."""

    def __init__(
        self, url: str, *bindings: tuple[str, str], queue: str = "test.observer", bound: bool = True
    ):
        self.url = url
        self.bindings = (bindings or (("snapdeploy.events", "#"),)) if bound else ()
        self.queue_name = queue
        self.seen: list[Envelope] = []
        self._changed = asyncio.Condition()
        # Replies by the message they answer: waiting for one costs no scan of everything seen.
        self._by_cause: dict[object, list[Envelope]] = {}
        self._cause_waiters: dict[object, list[tuple[set[str], asyncio.Future]]] = {}

    async def __aenter__(self) -> Observer:
        self.connection = await aio_pika.connect_robust(self.url)
        channel = await self.connection.channel()
        queue = await channel.declare_queue(
            self.queue_name, durable=True, arguments={"x-queue-type": "quorum"}
        )
        for exchange, key in self.bindings:
            ex = await channel.declare_exchange(exchange, "topic", durable=True)
            await queue.bind(ex, key)
        await queue.consume(self._on_message)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.connection.close()

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            envelope = Envelope.model_validate_json(message.body)
            async with self._changed:
                self.seen.append(envelope)
                if envelope.causation_id is not None:
                    self._by_cause.setdefault(envelope.causation_id, []).append(envelope)
                    for types, waiter in self._cause_waiters.get(envelope.causation_id, []):
                        if envelope.type in types and not waiter.done():
                            waiter.set_result(envelope)
                self._changed.notify_all()

    async def caused_by(self, message_id, types: set[str], *, timeout: float = 20.0) -> Envelope:
        """The first envelope of one of ``types`` caused by ``message_id`` (e.g. a command's reply)."""
        for envelope in self._by_cause.get(message_id, []):
            if envelope.type in types:
                return envelope
        waiter = asyncio.get_running_loop().create_future()
        waiting = self._cause_waiters.setdefault(message_id, [])
        waiting.append((types, waiter))
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            kinds = [e.type for e in self.seen[-20:]]
            raise AssertionError(f"waited {timeout}s for one of {sorted(types)}; last: {kinds}") from None
        finally:
            waiting.remove((types, waiter))
            if not waiting:
                self._cause_waiters.pop(message_id, None)

    def matching(self, predicate: Callable[[Envelope], bool]) -> list[Envelope]:
        return [e for e in self.seen if predicate(e)]

    async def wait_for(
        self, predicate: Callable[[Envelope], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Envelope]:
        async def _until() -> list[Envelope]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.matching(predicate)) >= count)
                return self.matching(predicate)

        try:
            return await asyncio.wait_for(_until(), timeout)
        except TimeoutError:
            kinds = [e.type for e in self.seen[-20:]]
            raise AssertionError(
                f"waited {timeout}s for {count} matching message(s); last seen: {kinds}"
            ) from None


def of_type(name: str, **payload) -> Callable[[Envelope], bool]:
    return lambda e: e.type == name and all(e.payload.get(k) == v for k, v in payload.items())
