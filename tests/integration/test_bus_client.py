"""The public bus client (snapdeploy.client) against a real service: what a bus producer relies on."""

from __future__ import annotations

import asyncio

import pytest

from contracts.topology import commands_queue
from snapdeploy.client import BusClient, CommandRefused
from tests.integration.probe import CountEffects, CountEffectsResult, RecordProbe, RecordProbeSucceeded
from tests.integration.probe import catalogue as probe_catalogue
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration


@pytest.fixture
async def probe(service_env):
    process = ServiceProcess("tests.integration.probe", service_env, name="probe").start()
    process.wait_started()
    yield process
    assert process.stop() == 0, process.output()


async def test_call_returns_the_typed_success_and_a_refusal_raises_with_its_code(probe, vhost):
    async with BusClient(vhost.url, name="producer", catalogue=probe_catalogue()) as bus:
        done = await bus.call(RecordProbe(key="typed"), timeout=30)
        assert done == RecordProbeSucceeded(key="typed")

        with pytest.raises(CommandRefused) as refused:
            await bus.call(RecordProbe(key="nope", refuse=True), timeout=30)
        assert (refused.value.code, refused.value.text) == (431, "probe nope refused")
        assert refused.value.reply.type == "RecordProbeFailed"

        answer = await bus.ask(CountEffects(key="typed"))
        assert answer == CountEffectsResult(key="typed", count=1)


async def test_until_waits_for_the_condition_and_says_what_did_not_hold(probe, vhost):
    async with BusClient(vhost.url, name="producer", catalogue=probe_catalogue()) as bus:
        sent = await bus.send(RecordProbe(key="later", sleep_ms=300))
        answer = await bus.until(CountEffects(key="later"), lambda a: a.count == 1, timeout=30)
        assert answer.count == 1
        assert (await bus.reply(sent, timeout=30)).type == "RecordProbeSucceeded"

        with pytest.raises(TimeoutError, match=r"two effects did not hold within 0\.5s"):
            await bus.until(
                CountEffects(key="later"), lambda a: a.count == 2, timeout=0.5, what="two effects"
            )


async def test_a_reply_that_does_not_come_fails_at_its_deadline(vhost):
    async with BusClient(vhost.url, name="producer") as bus:
        await bus.bus.declare([commands_queue("probe")])  # a queue takes it; no service consumes it
        sent = await bus.send(RecordProbe(key="nobody"))
        with pytest.raises(TimeoutError, match="no reply to RecordProbe"):
            await bus.reply(sent, timeout=0.5)


async def test_subscribers_see_events_as_they_happen(probe, vhost):
    async with BusClient(vhost.url, name="watcher", catalogue=probe_catalogue()) as bus:
        events = await bus.subscribe(("snapdeploy.events", "probe.#"))
        arrived = []

        async def take_two():
            async for envelope in events:
                arrived.append(envelope)
                if len(arrived) == 2:
                    return

        taking = asyncio.create_task(take_two())
        first = await bus.send(RecordProbe(key="a"))
        second = await bus.send(RecordProbe(key="b"))
        await asyncio.wait_for(taking, 30)
        assert {e.causation_id for e in arrived} == {first.message_id, second.message_id}
        assert all(e.type == "RecordProbeSucceeded" for e in arrived)
        # the replies came to the client's own queue too, and were kept for whoever asks
        assert (await bus.reply(first, timeout=5)).payload == {"key": "a"}
