"""Drive services through the bus as a client would: send a command, wait for its one reply."""

from __future__ import annotations

import asyncio
import uuid

from contracts.agent import SyncInventory
from contracts.base import Command, Query, QueryResult
from contracts.envelope import SYSTEM, Actor, Envelope
from contracts.vsphere import VmInfo
from shared.bus import Bus
from shared.bus.queries import QueryClient
from shared.messaging import command_out
from tests.support.observer import Observer


class Driver:
    """``actor``: on whose behalf its messages say they run (the broker decides whether they do);
    ``reply_to``: the queue its replies come to (a producer's own), else they are watched on events."""

    def __init__(self, bus: Bus, events: Observer, *, actor: Actor = SYSTEM, reply_to: str | None = None):
        self.bus, self.events = bus, events
        self.actor, self.reply_to = actor, reply_to
        self.job = uuid.uuid4()
        self.queries = QueryClient(bus, source="test")

    async def send(
        self, command: Command, *, message_id: uuid.UUID | None = None, actor: Actor | None = None
    ) -> Envelope:
        envelope = Envelope.wrap(
            command, source="test", correlation_id=self.job, message_id=message_id, actor=actor or self.actor
        )
        await self.bus.publish_until_confirmed(command_out(envelope, command, self.reply_to))
        return envelope

    async def reply(self, sent: Envelope, timeout: float = 60) -> Envelope:
        """The terminal reply (``<Command>Succeeded`` or ``<Command>Failed``) to a sent command."""
        wanted = {f"{sent.type}Succeeded", f"{sent.type}Failed"}
        [reply] = await self.events.wait_for(
            lambda e: e.causation_id == sent.message_id and e.type in wanted, timeout=timeout
        )
        return reply

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
        return await self.queries.ask(query, timeout=timeout, actor=actor or self.actor)

    async def until(
        self, query: Query, check, *, timeout: float = 30, what: str = "condition"
    ) -> QueryResult:
        """Ask ``query`` until ``check(answer)`` holds, up to ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            answer = await self.ask(query)
            if check(answer):
                return answer
            if loop.time() > deadline:
                raise AssertionError(f"{what} did not hold within {timeout}s; last answer: {answer}")
            await asyncio.sleep(0.1)

    async def inventory(self, zone_id: str = "zone1") -> tuple[dict[str, VmInfo], dict]:
        """Sync the zone: its VMs by name, as vCenter has them now, and the InventorySynced payload."""
        sent = await self.send(SyncInventory(zone_id=zone_id))
        await self.reply(sent)
        [synced] = await self.events.wait_for(
            lambda e: e.type == "InventorySynced" and e.causation_id == sent.message_id
        )
        return {v["name"]: VmInfo.model_validate(v) for v in synced.payload["vms"]}, synced.payload
