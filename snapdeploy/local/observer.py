"""Watch the bus from a test: the public client's subscription, on a connection of its own."""

from __future__ import annotations

from collections.abc import Callable

from contracts.envelope import Envelope
from snapdeploy.client import BusClient, Subscription


class Observer:
    """``async with Observer(url, (exchange, key), ...) as seen``: a subscription (default: every
    event); ``queue=`` names its queue; ``bound=False``: no bindings and no exchange declared (a
    producer's reply queue, all its permissions allow). ``seen.client`` is the client behind it."""

    def __init__(self, url: str, *bindings: tuple[str, str], queue: str | None = None, bound: bool = True):
        self.client = BusClient(url, name="observer")
        self.bindings, self.queue, self.bound = bindings, queue, bound

    async def __aenter__(self) -> Subscription:
        await self.client.connect()
        if self.bound:
            await self.client.bus.declare([])  # the exchanges, in case no service has declared them yet
        return await self.client.subscribe(*self.bindings, history=None, queue=self.queue, bound=self.bound)

    async def __aexit__(self, *exc) -> None:
        await self.client.close()


def of_type(name: str, **payload) -> Callable[[Envelope], bool]:
    return lambda e: e.type == name and all(e.payload.get(k) == v for k, v in payload.items())
