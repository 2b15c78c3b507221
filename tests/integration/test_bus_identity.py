"""What the broker itself refuses a producer: the users and permissions of snapdeploy/broker_users.py.

The vhost has snapdeploy's service users with their real permissions; each test adds a producer
user the way the script does, and tries what an outside producer should never manage.
"""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq
import pytest

from contracts.envelope import Envelope
from contracts.planner import ListHosts
from contracts.topology import COMMANDS, EVENTS, QUERIES, TOPOLOGY, agent_commands_queue
from shared.bus import Bus

pytestmark = pytest.mark.integration

REFUSED = (aiormq.exceptions.ChannelAccessRefused, aiormq.exceptions.ChannelPreconditionFailed)


@pytest.fixture
async def topology(vhost):
    """The queues every service declares at start, declared by the planner's own user."""
    bus = Bus(vhost.url_for("snapdeploy-planner"), name="planner")
    await bus.connect()
    await bus.declare([*TOPOLOGY.queues, agent_commands_queue("zone1")])
    yield bus
    await bus.close()


async def attempt(action, *, url: str, expect_refusal: bool = False):
    """What ``action(channel)`` does as the user of ``url``; the broker's refusal when expected."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await action(channel)
            await asyncio.wait_for(channel.get_exchange(QUERIES.name), 5)  # a round trip: refusals arrive
        except REFUSED as error:
            if expect_refusal:
                return error
            raise
        if expect_refusal:
            raise AssertionError("the broker allowed it")
        return None
    finally:
        await connection.close()


def publish(exchange: str, routing_key: str, *, user_id: str | None):
    async def action(channel):
        target = await channel.get_exchange(exchange, ensure=False) if exchange else channel.default_exchange
        body = Envelope.wrap(ListHosts(), source="test").to_bytes()
        await target.publish(aio_pika.Message(body, user_id=user_id), routing_key=routing_key)

    return action


async def ignore(message) -> None:
    pass


def consume(queue: str):
    async def action(channel):
        declared = await channel.get_queue(queue, ensure=False)
        await declared.consume(ignore)

    return action


async def test_a_forged_user_id_is_refused_by_the_broker(vhost, topology):
    url = await vhost.producer()
    for forged in ("snapdeploy-planner", "snapdeploy-api", "someone-else"):
        error = await attempt(
            publish(COMMANDS.name, "planner.deploy_virtual_machine", user_id=forged), url=url,
            expect_refusal=True,
        )  # fmt: skip
        assert "PRECONDITION_FAILED" in str(error) and "user_id" in str(error)
    assert await queue_depth(topology, "planner.commands") == 0, "nothing reached the planner"


async def test_a_producer_cannot_consume_a_service_queue(vhost, topology):
    url = await vhost.producer()
    for queue in ("planner.commands", "storage.commands", "agent.zone1.commands", "audit.ingest",
                  "planner.queries", "planner.commands.dlq"):  # fmt: skip
        error = await attempt(consume(queue), url=url, expect_refusal=True)
        assert "ACCESS_REFUSED" in str(error), queue


async def test_a_producer_cannot_publish_events_agent_commands_or_through_the_default_exchange(
    vhost, topology
):
    url = await vhost.producer()
    user = url.split("//", 1)[1].split(":", 1)[0]
    for exchange, key in [
        (EVENTS.name, "planner.deploy_virtual_machine_succeeded"),
        (EVENTS.name, "agent.inventory_synced"),
        (COMMANDS.name, "agent.zone1.destroy_vm"),
        (COMMANDS.name, "audit.anything"),
        ("", "planner.replies"),
        ("", "planner.commands"),
    ]:
        error = await attempt(publish(exchange, key, user_id=user), url=url, expect_refusal=True)
        assert "ACCESS_REFUSED" in str(error), (exchange, key)
    assert await queue_depth(topology, "planner.replies") == 0
    assert await queue_depth(topology, "agent.zone1.commands") == 0


async def test_a_producer_publishes_planner_and_storage_commands_and_queries_and_reads_its_own_queue(
    vhost, topology
):
    url = await vhost.producer()
    user = url.split("//", 1)[1].split(":", 1)[0]
    for exchange, key in [
        (COMMANDS.name, "planner.deploy_virtual_machine"),
        (COMMANDS.name, "storage.create_volume_from_vm_snapshot"),
        (QUERIES.name, "audit.get_deployment_trail"),
    ]:
        await attempt(publish(exchange, key, user_id=user), url=url)

    async def own_queue(channel):
        queue = await channel.declare_queue(
            f"producer.{user}.replies", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.consume(ignore)

    await attempt(own_queue, url=url)
    assert await queue_depth(topology, "planner.commands") == 1
    assert await queue_depth(topology, "storage.commands") == 1
    other = await vhost.producer()
    error = await attempt(consume(f"producer.{user}.replies"), url=other, expect_refusal=True)
    assert "ACCESS_REFUSED" in str(error), "another producer cannot read this one's replies"


async def queue_depth(bus: Bus, queue: str) -> int:
    channel = await bus.connection.channel()
    try:
        return (await channel.declare_queue(queue, passive=True)).declaration_result.message_count
    finally:
        await channel.close()
