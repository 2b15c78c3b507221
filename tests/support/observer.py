"""Watch the bus from a test: the public client's subscription, on a connection of its own."""

from __future__ import annotations

from collections.abc import Callable

from contracts.envelope import Envelope
from snapdeploy.client import BusClient, Subscription


class Observer:
    """``async with Observer(url, (exchange, key), ...) as seen``: a subscription (default: every event)."""

    def __init__(self, url: str, *bindings: tuple[str, str]):
        self.client = BusClient(url, name="observer")
        self.bindings = bindings

    async def __aenter__(self) -> Subscription:
        await self.client.connect()
        await self.client.bus.declare([])  # the exchanges, in case no service has declared them yet
        return await self.client.subscribe(*self.bindings, history=None)

    async def __aexit__(self, *exc) -> None:
        await self.client.close()


def of_type(name: str, **payload) -> Callable[[Envelope], bool]:
    return lambda e: e.type == name and all(e.payload.get(k) == v for k, v in payload.items())
