"""The public bus client's queue names: a producer's permissions cover only ``producer.<user>.*``."""

from snapdeploy.client import BusClient, queue_prefix


def test_a_clients_queues_are_its_broker_users_own():
    assert queue_prefix("amqp://team-a:secret@rabbit:5672/") == "producer.team-a."
    assert queue_prefix("amqps://ops%40example.org:pw@rabbit/snapdeploy") == "producer.ops@example.org."
    assert queue_prefix("amqp://rabbit/") == "producer.guest.", "aio-pika's default user"
    client = BusClient("amqp://team-a:secret@rabbit:5672/", name="billing")
    assert client.inbox.startswith("producer.team-a.billing.")
    assert client.inbox != BusClient("amqp://team-a:secret@rabbit:5672/", name="billing").inbox
