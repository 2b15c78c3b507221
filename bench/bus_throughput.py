"""Publish-with-confirm and consume throughput of one process, against raw aio-pika in the same run.

    python -m bench.bus_throughput [--messages N]

Runs in a vhost and a database of its own (created and removed here). Prints messages per
second for each path and its ratio to the raw aio-pika baseline of the same shape:
- publish: sequential confirmed publishes (raw channel vs ``Bus.publish``), and the outbox
  relay draining N committed rows (batches published concurrently, then deleted);
- consume: raw ``message.ack()`` consumer vs the snapdeploy dispatcher with a transactional
  handler (inbox row + effect row + reply in the outbox, one transaction per message).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import ClassVar

import aio_pika
import asyncpg

from bench.support import raw_consume, scratch_vhost
from contracts.base import Command, Succeeded
from contracts.catalogue import CATALOGUE, specs_of
from contracts.envelope import Envelope
from contracts.topology import QueueSpec
from shared import logging as snap_logging
from shared.bus import Bus, Dispatcher
from shared.db import create_pool, outbox
from shared.db.migrations import migrate
from shared.db.outbox import OutboxRelay
from shared.effects import TransactionalEffects
from shared.identity import Identity
from shared.messaging import HandlerContext, command_out
from shared.metrics import Metrics
from shared.settings import ServiceSettings


class BenchTick(Command):
    """A command whose handler records one row."""

    service: ClassVar[str] = "bench"
    n: int


class BenchTickSucceeded(Succeeded):
    """The row exists."""

    n: int


async def tick(command: BenchTick, ctx: HandlerContext) -> BenchTickSucceeded:
    await ctx.conn.execute("INSERT INTO ticks (n) VALUES ($1)", command.n)
    return BenchTickSucceeded(n=command.n)


class CountingEffects(TransactionalEffects):
    """Sets ``all_committed`` once ``expected`` messages have been committed."""

    def __init__(self, expected: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected
        self.all_committed = asyncio.Event()

    async def apply(self, *args) -> str:
        outcome = await super().apply(*args)
        self.expected -= 1
        if self.expected == 0:
            self.all_committed.set()
        return outcome


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


async def raw_publish(url: str, queue: str, n: int, body: bytes) -> float:
    connection = await aio_pika.connect(url)
    channel = await connection.channel(publisher_confirms=True)
    started = time.perf_counter()
    for _ in range(n):
        await channel.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue
        )
    elapsed = time.perf_counter() - started
    await connection.close()
    return rate(n, elapsed)


async def main(url: str, n: int) -> None:
    snap_logging.configure("bench", "WARNING")  # one JSON line per message would measure stdout, not the bus
    settings = ServiceSettings()
    database = f"snapdeploy_bench_{uuid.uuid4().hex[:8]}"
    admin_url = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    db_url = settings.database_url.rsplit("/", 1)[0] + "/" + database
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    migrations = Path(__file__).with_name("migrations")
    try:
        body = Envelope.wrap(BenchTick(n=0), source="bench").to_bytes()
        spec = QueueSpec("bench.commands", (), prefetch=64)
        bus = Bus(url, name="bench")
        await bus.connect()
        await bus.declare([spec, QueueSpec("raw")])

        results: list[tuple[str, float, float]] = []

        # warm-up: the first publishes into a new vhost are slower
        await raw_publish(url, "raw", max(n // 5, 1), body)
        base_pub = await raw_publish(url, "raw", n, body)
        started = time.perf_counter()
        for i in range(n):
            command = BenchTick(n=i)
            out = command_out(Envelope.wrap(command, source="bench"), command)
            await bus.publish(out.__class__(out.envelope, "", spec.name))
        results.append(("publish, sequential confirms", base_pub, rate(n, time.perf_counter() - started)))

        pool = await create_pool(db_url, "bench", max_size=20)
        async with pool.acquire() as conn:
            await migrate(conn, "bench", migrations)
            await conn.execute("DELETE FROM ticks")
        # the relay drains committed rows into a scratch queue (the commands above stay for the consumer)
        async with pool.acquire() as conn, conn.transaction():
            rows = []
            for i in range(n):
                command = BenchTick(n=i)
                out = command_out(Envelope.wrap(command, source="bench"), command)
                rows.append(out.__class__(out.envelope, "", "raw"))
            await outbox.add(conn, rows)
        relay = OutboxRelay(pool, bus, batch=settings.outbox_batch, metrics=Metrics())
        started = time.perf_counter()
        while await relay.publish_pending():
            pass
        results.append(("publish, outbox relay", base_pub, rate(n, time.perf_counter() - started)))

        base_consume = await raw_consume(url, "raw", n + max(n // 5, 1) + n, prefetch=64)

        catalogue = CATALOGUE.extend(specs_of("bench", sys.modules[__name__]))
        effects = CountingEffects(n, pool, relay, consumer="bench", source="bench")
        dispatcher = Dispatcher(
            consumer="bench", source="bench", queue=spec, catalogue=catalogue,
            handlers={BenchTick: tick}, effects=effects, metrics=Metrics(), namespace="bench",
            identity=Identity(settings.service_users(), pool),
        )  # fmt: skip
        started = time.perf_counter()
        await bus.consume(spec, dispatcher, prefetch=64)
        await effects.all_committed.wait()
        elapsed = time.perf_counter() - started
        results.append(("consume, transactional handler", base_consume, rate(n, elapsed)))
        await bus.close()
        await pool.close()

        print(f"messages: {n} per path, one process, persistent, quorum queues")
        print(f"{'path':34} {'baseline msg/s':>15} {'snapdeploy msg/s':>17} {'ratio':>7}")
        for name, baseline, ours in results:
            print(f"{name:34} {baseline:15.0f} {ours:17.0f} {ours / baseline:7.2f}")
        print("baseline: raw aio-pika (publish: one confirm per message; consume: ack only, no database)")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    with scratch_vhost() as url:
        asyncio.run(main(url, parser.parse_args().messages))
