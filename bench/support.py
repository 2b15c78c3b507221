"""What the benchmarks share: a scratch RabbitMQ vhost with snapdeploy's users, removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator

import aio_pika

from shared.settings import ServiceSettings
from snapdeploy.broker_users import definitions, import_definitions
from snapdeploy.local.users import TEST_SERVICE_USERS, as_user, snapdeploy_users


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


@contextlib.contextmanager
def scratch_vhost() -> Iterator[str]:
    """An AMQP URL of a new vhost that exists for the duration of the block (as the harness user;
    services started by ``ServiceProcess`` connect as their own users)."""
    vhost = f"snapdeploy-bench-{uuid.uuid4().hex[:8]}"
    import_definitions(definitions(vhost, snapdeploy_users()))
    os.environ["BUS_SERVICE_USERS"] = TEST_SERVICE_USERS
    try:
        url = as_user(ServiceSettings().amqp_url.rsplit("/", 1)[0] + "/" + vhost, "snapdeploy-test")
        for _ in range(200):  # the import is asynchronous
            try:
                asyncio.run(_open(url))
                break
            except Exception:
                time.sleep(0.05)
        yield url
    finally:
        rabbitmqctl("delete_vhost", vhost)


async def _open(url: str) -> None:
    await (await aio_pika.connect(url)).close()


async def raw_consume(url: str, queue: str, n: int, prefetch: int) -> float:
    """The baseline consumer: plain aio-pika, ack only, no database. Messages per second over ``n``."""
    connection = await aio_pika.connect(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    q = await channel.get_queue(queue)
    done = asyncio.Event()
    seen = 0

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        nonlocal seen
        await message.ack()
        seen += 1
        if seen == n:
            done.set()

    started = time.perf_counter()
    await q.consume(on_message)
    await done.wait()
    elapsed = time.perf_counter() - started
    await connection.close()
    return n / elapsed
