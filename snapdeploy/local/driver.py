"""The public bus client as the tests, the demo and the benchmarks drive the stack: one job per
driver, payloads as dicts, every message watched."""

from __future__ import annotations

import uuid

from contracts.agent import SyncInventory
from contracts.base import Command, Query, QueryResult
from contracts.envelope import SYSTEM, Actor, Envelope
from contracts.events import InventorySynced
from contracts.vsphere import VmInfo
from snapdeploy.client import BusClient, Subscription


class Driver:
    """``actor``: on whose behalf its messages say they run (the broker decides whether they do);
    ``reply_to``: the queue its replies come to (a producer's own, read by ``events``), else the
    client's inbox."""

    def __init__(
        self, client: BusClient, events: Subscription, *, actor: Actor = SYSTEM, reply_to: str | None = None
    ):
        self.client, self.events = client, events
        self.actor, self.reply_to = actor, reply_to
        self.bus = client.bus  # for tests that publish by hand
        self.job = uuid.uuid4()

    async def send(
        self, command: Command, *, message_id: uuid.UUID | None = None, actor: Actor | None = None
    ) -> Envelope:
        return await self.client.send(
            command, job=self.job, message_id=message_id, actor=actor or self.actor, reply_to=self.reply_to
        )

    async def reply(self, sent: Envelope, timeout: float = 60) -> Envelope:
        """The terminal reply (``<Command>Succeeded`` or ``<Command>Failed``) to a sent command."""
        return await self.client.reply(sent, timeout=timeout)

    async def call(self, command: Command, **kw) -> dict:
        """Send and expect success; the reply's payload."""
        reply = await self.reply(await self.send(command, **kw))
        assert reply.type == f"{command.type_name()}Succeeded", reply.payload
        return reply.payload

    async def refused(self, command: Command, *, actor: Actor | None = None) -> dict:
        """Send and expect failure; the ``Failed`` payload."""
        reply = await self.reply(await self.send(command, actor=actor))
        assert reply.type == f"{command.type_name()}Failed", reply.payload
        return reply.payload

    async def ask(self, query: Query, timeout: float = 10, *, actor: Actor | None = None) -> QueryResult:
        return await self.client.ask(query, timeout=timeout, actor=actor or self.actor)

    async def until(
        self, query: Query, check, *, timeout: float = 30, what: str = "condition"
    ) -> QueryResult:
        """Ask ``query`` until ``check(answer)`` holds, up to ``timeout`` seconds."""
        return await self.client.until(query, check, timeout=timeout, interval=0.1, what=what)

    async def inventory(self, zone_id: str = "zone1") -> tuple[dict[str, VmInfo], dict]:
        """Sync the zone: its VMs by name, as vCenter has them now, and the InventorySynced payload."""
        synced = await self.client.call_caused(SyncInventory(zone_id=zone_id), InventorySynced, job=self.job)
        return {v.name: v for v in synced.vms}, synced.model_dump(mode="json")


async def watching(url: str, *, name: str = "test") -> tuple[BusClient, Subscription]:
    """A connected client and its subscription to every event and command (close the client after)."""
    client = BusClient(url, name=name)
    await client.connect()
    await client.bus.declare([])  # the exchanges, in case the test watches before any service runs
    events = await client.subscribe(("snapdeploy.events", "#"), ("snapdeploy.commands", "#"), history=None)
    return client, events
