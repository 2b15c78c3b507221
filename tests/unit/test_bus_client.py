"""The public bus client: its queue names (a producer's permissions cover only ``producer.<user>.*``),
and what its subscriptions do with what they receive."""

import contextlib

from contracts.envelope import Envelope
from contracts.events import QueryFailed
from snapdeploy.client import BusClient, Subscription, queue_prefix


def test_a_clients_queues_are_its_broker_users_own():
    assert queue_prefix("amqp://team-a:secret@rabbit:5672/") == "producer.team-a."
    assert queue_prefix("amqps://ops%40example.org:pw@rabbit/snapdeploy") == "producer.ops@example.org."
    assert queue_prefix("amqp://rabbit/") == "producer.guest.", "aio-pika's default user"
    client = BusClient("amqp://team-a:secret@rabbit:5672/", name="billing")
    assert client.inbox.startswith("producer.team-a.billing.")
    assert client.inbox != BusClient("amqp://team-a:secret@rabbit:5672/", name="billing").inbox


class FakeMessage:
    def __init__(self, body: bytes):
        self.body, self.type, self.processed = body, "Junk", []

    @contextlib.asynccontextmanager
    async def process(self):
        try:
            yield
        except Exception as error:
            self.processed.append(("rejected", error))
            raise
        self.processed.append("acked")


async def test_a_subscriber_skips_a_body_that_is_not_an_envelope_and_reads_on():
    """Regression (contract fuzz): anyone may publish bytes on a command key; a subscription bound
    to it raised in its consumer callback for each one (a traceback per message)."""
    client = BusClient("amqp://team-a:secret@rabbit:5672/")
    events = Subscription(client, [], history=10, name="x")
    junk = [FakeMessage(b"\x00garbage"), FakeMessage(b"[]")]
    for message in junk:
        await events._on_message(message)
    reply = Envelope.wrap(QueryFailed(query="ListHosts", error_code=531, error_text="no"), source="planner")
    good = FakeMessage(reply.to_bytes())
    await events._on_message(good)
    assert [m.processed for m in junk] == [["acked"], ["acked"]] and good.processed == ["acked"]
    assert events.skipped == 2 and [e.message_id for e in events.seen] == [reply.message_id]
