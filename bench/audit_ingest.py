"""Audit ingest throughput: N mixed messages stored, against raw aio-pika in the same run.

    python -m bench.audit_ingest [--messages N]

Runs in a vhost and a database of its own (created and removed here). N messages of a busy
cloud's mix (action events, vCenter tasks, commands, replies) wait in ``audit.ingest``; the
audit service (in this process, with its default settings: batches of 500, CloudStack
republish on) is started and timed until every one is stored, then until every CloudStack
copy is published. The baseline drains the same N bodies from a plain quorum queue with a
raw aio-pika consumer that only acks (same prefetch, no database).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg

from bench.support import raw_consume, scratch_vhost
from contracts.agent import PowerOnVm, PowerOnVmSucceeded
from contracts.envelope import Actor, Envelope
from contracts.events import ActionEvent, VcenterTask
from contracts.topology import TOPOLOGY, QueueSpec
from shared import logging as snap_logging
from shared.bus import Bus
from shared.messaging import Outgoing, command_out, event_out, reply_out
from shared.service import Service
from shared.settings import ServiceSettings

ACTOR = Actor(account_id=uuid.uuid4(), role="user")
EVENT_TYPES = ("VM.CREATE", "VOLUME.CREATE", "NIC.CREATE", "VM.START", "TEMPLATE.CREATE")


def mixed(n: int) -> list[Outgoing]:
    """Per job of 10: 4 action events, 2 vCenter tasks, 2 commands, 2 replies."""
    out: list[Outgoing] = []
    while len(out) < n:
        job = uuid.uuid4()
        power = PowerOnVm(zone_id="zone1", vm_ref="vm-7")
        command = Envelope.wrap(power, source="planner", correlation_id=job, actor=ACTOR)
        out.append(command_out(command, power))
        for i in range(4):
            action = ActionEvent(
                event_type=EVENT_TYPES[i], state="Completed", resource_type="VirtualMachine",
                resource_id=uuid.uuid4(), resource_name="web-1", account_id=ACTOR.account_id,
                description="created web-1",
            )  # fmt: skip
            out.append(event_out(command.caused(action, source="planner"), action))
        for _ in range(2):
            now = datetime.now(UTC)
            task = VcenterTask(
                zone_id="zone1", task_key="task-1", name="PowerOnVM_Task", entity="vm-7", state="success",
                started_at=now, completed_at=now, duration_ms=800,
            )  # fmt: skip
            out.append(event_out(command.caused(task, source="agent"), task))
        out.extend(reply_out(command, PowerOnVmSucceeded(vm_ref="vm-7"), source="agent", reply_to=None))
        again = Envelope.wrap(power, source="planner", correlation_id=job, actor=ACTOR)
        out.append(command_out(again, power))
        out.extend(reply_out(again, PowerOnVmSucceeded(vm_ref="vm-7"), source="agent", reply_to=None))
    return out[:n]


async def publish(bus: Bus, messages: list[Outgoing], exchange: str | None = None) -> None:
    """Concurrent confirmed publishes, in chunks (setup, not measured)."""
    for start in range(0, len(messages), 1000):
        chunk = messages[start : start + 1000]
        await asyncio.gather(
            *(
                bus.publish(out if exchange is None else Outgoing(out.envelope, exchange, "raw"))
                for out in chunk
            )
        )


async def wait_until(conn: asyncpg.Connection, sql: str, target: int) -> float:
    started = time.perf_counter()
    while True:  # a measurement: polled, with the poll interval well below the times measured
        if await conn.fetchval(sql) == target:
            return time.perf_counter() - started
        await asyncio.sleep(0.01)


async def main(url: str, n: int) -> None:
    snap_logging.configure("bench", "WARNING")  # no per-message log lines in the measurement
    settings = ServiceSettings()
    database = f"snapdeploy_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(settings.database_url.rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'CREATE DATABASE "{database}"')
    db_url = settings.database_url.rsplit("/", 1)[0] + "/" + database
    try:
        messages = mixed(n)
        actions = sum(1 for m in messages if m.envelope.type == "ActionEvent")
        bus = Bus(url, name="bench")
        await bus.connect()
        raw = QueueSpec("raw")
        await bus.declare([*TOPOLOGY.queues, raw])

        await publish(bus, messages, exchange="")
        baseline = await raw_consume(url, raw.name, n, prefetch=1000)

        await publish(bus, messages)
        os.environ.update({"AMQP_URL": url, "DATABASE_URL": db_url, "HTTP_PORT": "0"})
        from services.audit.main import build  # reads its settings from the environment

        definition, audit_settings = build()
        service = Service(definition, audit_settings)
        running = asyncio.create_task(service.run())
        await service.ready.wait()
        conn = await asyncpg.connect(db_url)
        stored_s = await wait_until(conn, "SELECT count(*) FROM audit.events", n)
        outbox_s = await wait_until(conn, "SELECT count(*) FROM audit.cloudstack_outbox", 0)
        republished = await conn.fetchval("SELECT count(*) FROM audit.events WHERE event_type IS NOT NULL")
        await conn.close()
        service.stop()
        await running
        await bus.close()

        results = [
            ("ingest: stored (batch txn, dedupe, outbox)", n / stored_s),
            ("ingest + CloudStack copies published", n / (stored_s + outbox_s)),
        ]
        print(f"messages: {n} mixed ({actions} ActionEvents republished to cloudstack-events), one process")
        print(f"{'path':44} {'baseline msg/s':>15} {'audit msg/s':>12} {'ratio':>7}")
        for name, ours in results:
            print(f"{name:44} {baseline:15.0f} {ours:12.0f} {ours / baseline:7.2f}")
        print(f"stored {n} in {stored_s:.2f} s; {republished} CloudStack copies out {outbox_s:.2f} s later")
        print("baseline: raw aio-pika consumer, ack only, no database, prefetch 1000, same bodies")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    with scratch_vhost() as url:
        asyncio.run(main(url, parser.parse_args().messages))
