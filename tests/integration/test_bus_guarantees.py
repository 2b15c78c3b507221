"""The foundation's guarantees, shown against the real RabbitMQ and PostgreSQL.

Each test runs the probe service (tests/integration/probe) as a real process through the
shared runner, in a vhost and a database of its own.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid

import aio_pika
import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.envelope import Envelope
from contracts.topology import COMMANDS
from shared.bus import Bus
from shared.bus.queries import QueryClient
from shared.errors import DomainError
from shared.messaging import command_out
from snapdeploy.local.observer import Observer, of_type
from tests.integration.probe import CountEffects, RecordProbe
from tests.integration.probe import catalogue as probe_catalogue
from tests.support.processes import ROOT, ServiceProcess

pytestmark = pytest.mark.integration


def probe(env: dict[str, str], **extra: str) -> ServiceProcess:
    return ServiceProcess("tests.integration.probe", {**env, **extra}, name="probe").start()


async def effects(database_url: str, key: str | None = None) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT key FROM probe.effects ORDER BY id")
    finally:
        await conn.close()
    return [r["key"] for r in rows if key is None or r["key"] == key]


async def metric(port: int, name: str, **labels: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


async def wait_metric(port: int, name: str, at_least: float, timeout: float = 20.0, **labels: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await metric(port, name, **labels)) < at_least:
        if loop.time() > deadline:
            raise AssertionError(f"{name}{labels} stayed at {value} < {at_least} for {timeout}s")
        await asyncio.sleep(0.05)


async def send(bus: Bus, command: RecordProbe, *, message_id: uuid.UUID | None = None) -> Envelope:
    envelope = Envelope.wrap(command, source="test", correlation_id=uuid.uuid4(), message_id=message_id)
    await bus.publish_until_confirmed(command_out(envelope, command))
    return envelope


async def queue_depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count
    finally:
        await connection.close()


async def where_are_they(vhost, database_url: str, broker) -> str:
    """What a lost-message failure needs to be diagnosed: effects, outbox, queues and consumers."""
    conn = await asyncpg.connect(database_url)
    try:
        counts = {
            t: await conn.fetchval(f"SELECT count(*) FROM probe.{t}") for t in ("effects", "outbox", "inbox")
        }
    finally:
        await conn.close()
    queues = await asyncio.to_thread(
        broker.ctl, "list_queues", "-p", vhost.name, "name", "messages", "consumers"
    )
    return f"rows: {counts}\nqueues:\n{queues}"


@pytest.fixture
async def bus(vhost):
    bus = Bus(vhost.url, name="test")
    await bus.connect()
    yield bus
    await bus.close()


async def test_message_committed_then_publisher_killed_is_delivered_once_after_restart(
    service_env, vhost, database_url
):
    key = f"crash-{uuid.uuid4().hex[:6]}"
    writer = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tests.integration.probe.crash_writer", key],
        cwd=ROOT,
        env={**service_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert writer.returncode == -signal.SIGKILL, writer.stderr
    message_id = uuid.UUID(writer.stdout.strip().splitlines()[-1])
    async with Observer(vhost.url, ("snapdeploy.events", "#"), (COMMANDS.name, "#")) as seen:
        service = probe(service_env)
        try:
            service.wait_started()
            await seen.wait_for(of_type("RecordProbeSucceeded", key=key))
        finally:
            assert service.stop() == 0
        assert await effects(database_url, key) == [key]
        assert [e.message_id for e in seen.matching(of_type("RecordProbe"))] == [message_id]
        assert len(seen.matching(of_type("RecordProbeSucceeded"))) == 1
    assert await queue_depth(vhost.url, "probe.commands") == 0


async def test_a_row_whose_writer_died_before_publishing_it_is_published_once_its_claim_runs_out(
    service_env, vhost, database_url
):
    """A handler's rows are claimed by their writer, which publishes them itself once committed;
    a writer killed in between leaves them to the relays of the replicas still running. Twice:
    the first row may be taken by the pass a relay makes once after it starts, the second only
    by the pass its claim's NOTIFY asks for."""
    keys = [f"claimed-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    async with Observer(vhost.url, ("snapdeploy.events", "#"), (COMMANDS.name, "#")) as seen:
        service = probe(service_env)
        try:
            service.wait_started()
            sent = []
            for key in keys:
                writer = await asyncio.to_thread(
                    subprocess.run,
                    [sys.executable, "-m", "tests.integration.probe.crash_writer", key, "--claimed"],
                    cwd=ROOT, env={**service_env}, capture_output=True, text=True, timeout=60,
                    check=False,
                )  # fmt: skip
                assert writer.returncode == -signal.SIGKILL, writer.stderr
                sent.append(uuid.UUID(writer.stdout.strip().splitlines()[-1]))
                await seen.wait_for(of_type("RecordProbeSucceeded", key=key), timeout=30)
        finally:
            assert service.stop() == 0
        for key in keys:
            assert await effects(database_url, key) == [key]
        assert [e.message_id for e in seen.matching(of_type("RecordProbe"))] == sent


async def test_same_message_delivered_twice_has_one_effect(service_env, vhost, database_url, bus):
    service = probe(service_env)
    try:
        port = service.wait_started()
        async with Observer(vhost.url) as seen:
            command = RecordProbe(key="twice")
            first = await send(bus, command)
            await send(bus, command, message_id=first.message_id)
            await wait_metric(
                port, "snapdeploy_messages_handled_total", 1, type="RecordProbe", outcome="duplicate"
            )
            await wait_metric(port, "snapdeploy_messages_handled_total", 1, type="RecordProbe", outcome="ok")
            await send(bus, RecordProbe(key="sentinel"))
            await seen.wait_for(of_type("RecordProbeSucceeded", key="sentinel"))
            assert len(seen.matching(of_type("RecordProbeSucceeded", key="twice"))) == 1
        assert await effects(database_url, "twice") == ["twice"]
    finally:
        assert service.stop() == 0


async def test_malformed_messages_go_to_the_dlq_with_a_failure_reply_and_the_next_is_handled(
    service_env, vhost, database_url, bus
):
    service = probe(service_env)
    try:
        service.wait_started()
        async with Observer(vhost.url) as seen:
            not_json = str(uuid.uuid4())
            await bus.publish_raw(
                COMMANDS.name, "probe.record_probe", b"{not json", message_id=not_json, type="RecordProbe"
            )
            bad_payload = Envelope.wrap(RecordProbe(key="x"), source="test", correlation_id=uuid.uuid4())
            bad_payload = bad_payload.model_copy(update={"payload": {"kee": "typo"}})
            await bus.publish_raw(
                COMMANDS.name,
                "probe.record_probe",
                bad_payload.to_bytes(),
                message_id=str(bad_payload.message_id),
                type="RecordProbe",
                correlation_id=str(bad_payload.correlation_id),
            )
            await send(bus, RecordProbe(key="good"))

            failures = await seen.wait_for(of_type("RecordProbeFailed", error_code=431), count=2)
            texts = " | ".join(f.payload["error_text"] for f in failures)
            assert "not a snapdeploy envelope" in texts
            assert "invalid RecordProbe: key is required" in texts
            assert any(f.correlation_id == bad_payload.correlation_id for f in failures)
            await seen.wait_for(of_type("RecordProbeSucceeded", key="good"))
        assert await effects(database_url) == ["good"]
        assert await queue_depth(vhost.url, "probe.commands.dlq") == 2
    finally:
        assert service.stop() == 0


async def test_refused_command_replies_failed_and_leaves_no_effect(service_env, vhost, database_url, bus):
    service = probe(service_env)
    try:
        service.wait_started()
        async with Observer(vhost.url) as seen:
            await send(bus, RecordProbe(key="no", refuse=True))
            [failed] = await seen.wait_for(of_type("RecordProbeFailed"))
        assert failed.payload["error_text"] == "probe no refused"
        assert failed.payload["retryable"] is False
        assert await effects(database_url) == []
        assert await queue_depth(vhost.url, "probe.commands.dlq") == 0
    finally:
        assert service.stop() == 0


async def test_always_transient_failure_is_dead_lettered_after_the_delivery_limit(
    service_env, vhost, database_url, bus
):
    service = probe(service_env, PROBE_DELIVERY_LIMIT="3", RETRY_BACKOFF_BASE="0.05")
    try:
        port = service.wait_started()
        async with Observer(vhost.url) as seen:
            await send(bus, RecordProbe(key="flaky", fail_transiently=True))
            [failed] = await seen.wait_for(of_type("RecordProbeFailed"))
            assert failed.payload["error_code"] == 530
            assert failed.payload["retryable"] is True
            assert "gave up after 3 attempts" in failed.payload["error_text"]
            assert (
                await metric(port, "snapdeploy_messages_handled_total", type="RecordProbe", outcome="retried")
                == 2
            )
            await send(bus, RecordProbe(key="after"))
            await seen.wait_for(of_type("RecordProbeSucceeded", key="after"))
        assert await queue_depth(vhost.url, "probe.commands.dlq") == 1
        assert await effects(database_url) == ["after"]
    finally:
        assert service.stop() == 0


async def distinct_replies(seen, total: int, *, timeout: float) -> set[str]:
    """The keys replied to, once ``total`` distinct ones have been: a reply whose confirm a closed
    connection lost is published again, and both copies are on the bus (consumers' inboxes drop
    the second)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        replies = seen.matching(of_type("RecordProbeSucceeded"))
        keys = {e.payload["key"] for e in replies}
        if len(keys) >= total:
            return keys
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"{len(keys)} of {total} keys replied to in {timeout}s")
        await seen.wait_for(of_type("RecordProbeSucceeded"), count=len(replies) + 1, timeout=left)


async def test_closing_every_connection_mid_stream_loses_nothing(
    service_env, vhost, database_url, broker, bus
):
    total = 300
    service = probe(service_env)
    try:
        service.wait_started()
        async with Observer(vhost.url) as seen:

            async def publish_all() -> None:
                for i in range(total):
                    await send(bus, RecordProbe(key=f"k{i}"))

            publishing = asyncio.create_task(publish_all())
            await seen.wait_for(of_type("RecordProbeSucceeded"), count=total // 4, timeout=60)
            await asyncio.to_thread(broker.ctl, "close_all_connections", "-p", vhost.name, "test: chaos")
            await publishing
            try:
                replied = await distinct_replies(seen, total, timeout=60)
            except TimeoutError as missing:
                raise AssertionError(
                    f"{missing}\n{await where_are_they(vhost, database_url, broker)}"
                ) from None
        assert replied == {f"k{i}" for i in range(total)}
        done = await effects(database_url)
        assert sorted(done) == sorted(f"k{i}" for i in range(total)), "each message has exactly one effect"
    finally:
        assert service.stop() == 0


async def test_sigterm_during_a_handler_lets_it_finish_and_ack(service_env, vhost, database_url, bus):
    service = probe(service_env)
    port = service.wait_started()
    async with Observer(vhost.url) as seen:
        await send(bus, RecordProbe(key="slow", sleep_ms=2000))
        await wait_metric(port, "snapdeploy_messages_in_flight", 1)
        service.signal(signal.SIGTERM)
        assert await asyncio.to_thread(service.wait, 30) == 0
        await seen.wait_for(of_type("RecordProbeSucceeded", key="slow"))
    assert await effects(database_url, "slow") == ["slow"]
    assert await queue_depth(vhost.url, "probe.commands") == 0
    service.wait_for_log("outbox flushed", timeout=1)


async def test_queries_are_answered_on_direct_reply_to_and_failures_are_typed(
    service_env, vhost, bus, broker
):
    service = probe(service_env)
    try:
        service.wait_started()
        async with Observer(vhost.url) as seen:
            await send(bus, RecordProbe(key="q"))
            await seen.wait_for(of_type("RecordProbeSucceeded", key="q"))
        client = QueryClient(bus, source="test", catalogue=probe_catalogue())
        answer = await client.ask(CountEffects(key="q"))
        assert (answer.key, answer.count) == ("q", 1)
        with pytest.raises(DomainError, match="key must not be empty") as refused:
            await client.ask(CountEffects(key=""))
        assert refused.value.code == 431
        await asyncio.to_thread(broker.ctl, "close_all_connections", "-p", vhost.name, "test: chaos")
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # the first ask after the cut may be lost with the old channel: ask again
            try:
                assert (await client.ask(CountEffects(key="q"), timeout=2)).count == 1
                break
            except (TimeoutError, aio_pika.exceptions.AMQPError, RuntimeError):
                assert asyncio.get_running_loop().time() < deadline, "queries did not recover"
    finally:
        assert service.stop() == 0
