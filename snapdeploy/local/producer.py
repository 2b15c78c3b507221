"""An outside bus producer: its own RabbitMQ user (the script's producer permissions), its own
reply queue, commands and queries only; what it may do is what its registered principal may."""

from __future__ import annotations

import urllib.parse
import uuid

from contracts.topology import producer_queue_prefix
from snapdeploy.local.driver import Driver
from snapdeploy.local.observer import Observer
from snapdeploy.local.users import register_principal


class Producer(Driver):
    def __init__(self, url: str):
        self.url = url
        self.user = urllib.parse.unquote(urllib.parse.urlsplit(url).username)
        self.queue = producer_queue_prefix(self.user) + "replies"
        self._observer = Observer(url, queue=self.queue, bound=False)

    async def __aenter__(self) -> Producer:
        replies = await self._observer.__aenter__()  # one connection: its client sends, the queue replies
        super().__init__(replies.client, replies, reply_to=self.queue)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._observer.__aexit__(*exc)


async def register(admin: Driver, producer: Producer, account_id: uuid.UUID, role: str = "user") -> None:
    """An admin maps the producer's broker user to a principal; wait until every service knows it."""
    await register_principal(admin, producer.user, producer, account_id, role)
