"""An outside bus producer: its own RabbitMQ user (the script's producer permissions), its own
reply queue, commands and queries only; what it may do is what its registered principal may."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid

from contracts.audit import ListEvents
from contracts.planner import RegisterBusPrincipal
from contracts.storage import ListDiskOfferings
from scripts.broker_users import producer_queue_prefix
from shared.bus import Bus
from shared.errors import DomainError
from tests.support.driver import Driver
from tests.support.observer import Observer


class Producer(Driver):
    def __init__(self, url: str):
        self.url = url
        self.user = urllib.parse.unquote(urllib.parse.urlsplit(url).username)
        self.queue = producer_queue_prefix(self.user) + "replies"

    async def __aenter__(self) -> Producer:
        bus = Bus(self.url, name=self.user)
        await bus.connect()
        replies = await Observer(self.url, queue=self.queue, bound=False).__aenter__()
        super().__init__(bus, replies, reply_to=self.queue)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.events.__aexit__(*exc)
        await self.bus.close()


async def register(admin: Driver, producer: Producer, account_id: uuid.UUID, role: str = "user") -> None:
    """An admin maps the producer's broker user to a principal; wait until every service knows it."""
    await admin.call(RegisterBusPrincipal(broker_user=producer.user, account_id=account_id, role=role))
    await until_known(producer)


async def until_known(producer: Producer, timeout: float = 30) -> None:
    """Storage and audit learn principals from an event: ask each until it answers this producer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for query in (ListDiskOfferings(), ListEvents(page_size=1)):
        while True:
            try:
                await producer.ask(query)
                break
            except DomainError as refusal:
                if refusal.code != 531 or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)
