"""What the benchmarks share: a scratch RabbitMQ vhost, removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections.abc import Iterator

import aio_pika

from shared.settings import ServiceSettings


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


@contextlib.contextmanager
def scratch_vhost() -> Iterator[str]:
    """An AMQP URL of a new vhost that exists for the duration of the block."""
    vhost = f"snapdeploy-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield ServiceSettings().amqp_url.rsplit("/", 1)[0] + "/" + vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)


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
