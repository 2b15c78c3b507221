"""A minimal service built on the shared runner, to test the bus guarantees end to end.

Its one command, ``RecordProbe``, records an effect row; flags make it fail transiently or
take time, so tests can drive each failure class through the real broker and database.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import ClassVar

from contracts.base import Command, Query, QueryResult, Succeeded
from contracts.catalogue import CATALOGUE, specs_of
from contracts.topology import QueueSpec, commands_queue, queries_queue
from shared.errors import DomainError, TransientError
from shared.messaging import HandlerContext
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class RecordProbe(Command):
    """Record one effect row for ``key``."""

    service: ClassVar[str] = "probe"

    key: str
    fail_transiently: bool = False
    refuse: bool = False
    sleep_ms: int = 0


class RecordProbeSucceeded(Succeeded):
    """The effect row exists."""

    key: str


async def record_probe(command: RecordProbe, ctx: HandlerContext) -> RecordProbeSucceeded:
    if command.fail_transiently:
        raise TransientError("probe dependency unavailable")
    await ctx.conn.execute(
        "INSERT INTO effects (key, message_id) VALUES ($1, $2)", command.key, ctx.envelope.message_id
    )
    if command.refuse:
        raise DomainError(431, f"probe {command.key} refused")
    if command.sleep_ms:
        await asyncio.sleep(command.sleep_ms / 1000)
    return RecordProbeSucceeded(key=command.key)


class CountEffects(Query):
    """How many effect rows ``key`` has."""

    service: ClassVar[str] = "probe"

    key: str


class CountEffectsResult(QueryResult):
    """The count."""

    key: str
    count: int


async def count_effects(query: CountEffects, ctx: HandlerContext) -> CountEffectsResult:
    if not query.key:
        raise DomainError(431, "key must not be empty")
    count = await ctx.conn.fetchval("SELECT count(*) FROM effects WHERE key = $1", query.key)
    return CountEffectsResult(key=query.key, count=count)


HANDLERS = {RecordProbe: record_probe, CountEffects: count_effects}


class ProbeSettings(ServiceSettings):
    http_port: int = 0
    probe_delivery_limit: int = 10


def queue(delivery_limit: int = 10) -> QueueSpec:
    spec = commands_queue("probe")
    return QueueSpec(spec.name, spec.bindings, delivery_limit=delivery_limit)


def catalogue():
    return CATALOGUE.extend(specs_of("probe", sys.modules[__name__]))


def build() -> tuple[ServiceDefinition, ProbeSettings]:
    settings = ProbeSettings()
    definition = ServiceDefinition(
        name="probe",
        handlers=HANDLERS,
        consumes=[
            Consumes(queue(settings.probe_delivery_limit), namespace="probe"),
            Consumes(queries_queue("probe"), namespace="probe"),
        ],
        migrations=Path(__file__).with_name("migrations"),
        catalogue=catalogue(),
        declares=(),
    )
    return definition, settings
