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
                self._changed.notify_all()

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
