"""The dispatcher's failure classes, with an in-memory delivery and in-memory effects."""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from contracts.base import Command, Query, QueryResult, Succeeded
from contracts.catalogue import CATALOGUE, specs_of
from contracts.envelope import Actor, Envelope
from contracts.topology import QueueSpec
from shared.bus.dispatcher import Dispatcher, RetryPolicy
from shared.errors import DomainError
from shared.identity import Identity
from shared.messaging import HandlerContext, call_handler
from shared.metrics import Metrics


class Ping(Command):
    """Test command."""

    service: ClassVar[str] = "unit"
    text: str


class PingSucceeded(Succeeded):
    """Test reply."""

    text: str


class Look(Query):
    """Test query."""

    service: ClassVar[str] = "unit"
    text: str


class LookResult(QueryResult):
    """Test answer."""


CAT = CATALOGUE.extend(specs_of("unit", sys.modules[__name__]))


@dataclass
class FakeDelivery:
    body: bytes
    type: str | None = "Ping"
    routing_key: str = "unit.ping"
    exchange: str = "snapdeploy.commands"
    message_id: str | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    app_id: str | None = "test"
    user_id: str | None = "snapdeploy-test"
    headers: dict = field(default_factory=dict)
    settled: list = field(default_factory=list)

    async def ack(self):
        self.settled.append("ack")

    async def nack(self, requeue: bool = True):
        self.settled.append(("nack", requeue))

    async def reject(self, requeue: bool = False):
        self.settled.append(("reject", requeue))


class FakeEffects:
    """Runs the handler like the real effects do, keeping what would be published."""

    def __init__(self):
        self.published: list = []

    async def apply(self, envelope, spec, message, handler, reply_to):
        ctx = HandlerContext(envelope, "unit", reply_to=reply_to)
        outcome = await call_handler(handler, spec, message, ctx)
        self.published.extend(ctx.outgoing)
        return outcome

    async def emit(self, outgoing):
        self.published.extend(outgoing)


def dispatcher(handler, *, limit: int = 3) -> tuple[Dispatcher, FakeEffects]:
    effects = FakeEffects()
    d = Dispatcher(
        consumer="unit",
        source="unit",
        queue=QueueSpec("unit.commands", delivery_limit=limit),
        catalogue=CAT,
        handlers={Ping: handler},
        effects=effects,
        metrics=Metrics(),
        identity=Identity(frozenset({"snapdeploy-test"})),
        namespace="unit",
        retry=RetryPolicy(base=0.001, cap=0.001),
    )
    return d, effects


def delivery_of(command: Command, **kw) -> FakeDelivery:
    envelope = Envelope.wrap(command, source="test", correlation_id=uuid.uuid4())
    return FakeDelivery(envelope.to_bytes(), message_id=str(envelope.message_id), **kw)


async def echo(cmd: Ping, ctx: HandlerContext) -> PingSucceeded:
    return PingSucceeded(text=cmd.text)


async def test_handled_command_is_acked_after_its_reply_is_committed():
    d, effects = dispatcher(echo)
    delivery = delivery_of(Ping(text="hi"), reply_to="caller.replies")
    await d(delivery)
    assert delivery.settled == ["ack"]
    assert [(o.exchange, o.routing_key) for o in effects.published] == [
        ("snapdeploy.events", "unit.ping_succeeded"),
        ("", "caller.replies"),
    ]
    assert effects.published[0].envelope.payload == {"text": "hi"}


async def test_domain_error_is_a_failed_reply_not_a_retry():
    async def refuse(cmd, ctx):
        ctx.emit(PingSucceeded(text="must not be published"))
        raise DomainError(536, "resource in use", fault="ResourceInUse")

    d, effects = dispatcher(refuse)
    delivery = delivery_of(Ping(text="x"))
    await d(delivery)
    assert delivery.settled == ["ack"]
    [reply] = effects.published
    assert reply.envelope.type == "PingFailed"
    assert reply.envelope.payload["error_code"] == 536
    assert reply.envelope.payload["fault"] == "ResourceInUse"


async def test_invalid_payload_is_rejected_with_a_431_reply():
    d, effects = dispatcher(echo)
    envelope = Envelope.wrap(Ping(text="x"), source="test").model_copy(update={"payload": {"txt": "typo"}})
    delivery = FakeDelivery(envelope.to_bytes(), message_id=str(envelope.message_id))
    await d(delivery)
    assert delivery.settled == [("reject", False)]
    [reply] = effects.published
    assert reply.envelope.type == "PingFailed"
    assert reply.envelope.payload["error_code"] == 431
    assert "text is required" in reply.envelope.payload["error_text"]
    assert reply.envelope.causation_id == envelope.message_id


@pytest.mark.parametrize("key", ["unit.look", "unit.ping.extra", "unit"])
async def test_a_command_under_another_routing_key_is_refused_with_a_431_and_not_handled(key):
    handled = []

    async def record(cmd, ctx):
        handled.append(cmd)
        return PingSucceeded(text=cmd.text)

    d, effects = dispatcher(record)
    delivery = delivery_of(Ping(text="x"), routing_key=key)
    await d(delivery)
    assert handled == [] and delivery.settled == [("reject", False)]
    [reply] = effects.published
    assert (reply.envelope.type, reply.envelope.payload["error_code"]) == ("PingFailed", 431)
    assert (
        f"Ping is not sent under routing key '{key}' (its key is 'unit.ping')"
        in (reply.envelope.payload["error_text"])
    )


async def test_unreadable_bytes_are_rejected_and_answered_from_the_amqp_properties():
    d, effects = dispatcher(echo)
    job = uuid.uuid4()
    delivery = FakeDelivery(b"\x00garbage", type=None, correlation_id=str(job))
    await d(delivery)
    assert delivery.settled == [("reject", False)]
    assert effects.published[0].envelope.type == "PingFailed"
    assert effects.published[0].envelope.correlation_id == job


async def test_transient_failure_is_retried_then_dead_lettered_with_a_retryable_reply():
    async def broken(cmd, ctx):
        raise ConnectionError("database unreachable")

    d, effects = dispatcher(broken, limit=3)
    first = delivery_of(Ping(text="x"))
    await d(first)
    assert first.settled == [("nack", True)] and effects.published == []
    last = delivery_of(Ping(text="x"), headers={"x-delivery-count": 2})
    await d(last)
    assert last.settled == [("reject", False)]
    [reply] = effects.published
    assert reply.envelope.payload["retryable"] is True
    assert "gave up after 3 attempts: database unreachable" in reply.envelope.payload["error_text"]


async def test_handler_returning_the_wrong_reply_type_is_a_bug_not_a_success():
    async def wrong(cmd, ctx):
        return None

    d, effects = dispatcher(wrong, limit=1)
    delivery = delivery_of(Ping(text="x"))
    await d(delivery)
    assert delivery.settled == [("reject", False)]
    assert "returned NoneType, not PingSucceeded" in effects.published[0].envelope.payload["error_text"]


@pytest.mark.parametrize("limit", [1, 5])
async def test_consumer_keeps_going_after_a_bad_message(limit):
    d, _ = dispatcher(echo, limit=limit)
    await d(FakeDelivery(b"{}", type="Nope"))
    good = delivery_of(Ping(text="next"))
    await d(good)
    assert good.settled == ["ack"]


# -- who a message acts for (shared.identity) -------------------------------------------------------

ALICE = uuid.UUID("00000000-0000-4000-8000-0000000a11ce")


class KnownPrincipals(Identity):
    """Identity with principals in memory instead of a table."""

    async def principal(self, broker_user: str):
        return {"team-a": Actor(account_id=ALICE, role="user")}.get(broker_user)


def heard_by(handler) -> tuple[Dispatcher, FakeEffects]:
    d, effects = dispatcher(handler)
    d.identity = KnownPrincipals(frozenset({"snapdeploy-test"}))
    return d, effects


def as_sent(actor: Actor | None, user_id: str | None, reply_to: str | None = None) -> FakeDelivery:
    envelope = Envelope.wrap(Ping(text="hi"), source="test", **({"actor": actor} if actor else {}))
    return FakeDelivery(
        envelope.to_bytes(), message_id=str(envelope.message_id), user_id=user_id, reply_to=reply_to
    )


async def test_a_producer_acts_as_its_principal_whatever_it_leaves_out():
    actors = []

    async def record(cmd: Ping, ctx: HandlerContext) -> PingSucceeded:
        actors.append(ctx.envelope.actor)
        return PingSucceeded(text=cmd.text)

    d, effects = heard_by(record)
    await d(as_sent(None, "team-a"))
    await d(as_sent(Actor(account_id=ALICE, role="user"), "team-a"))
    assert actors == [Actor(account_id=ALICE, role="user")] * 2
    assert [o.envelope.actor for o in effects.published if o.exchange] == actors, "replies carry it on"


@pytest.mark.parametrize(
    ("actor", "user_id", "reply_to", "why"),
    [
        (Actor(account_id=uuid.uuid4(), role="admin"), "team-a", None, "the message claims account"),
        (Actor(account_id=ALICE, role="admin"), "team-a", None, "as user; the message claims"),
        (None, "nobody", None, "acts for no account"),
        (None, None, None, "has no user_id"),
        (None, "team-a", "planner.replies", "reply_to must be a queue of team-a's own (producer.team-a.*)"),
        (None, "team-a", "producer.team-b.replies", "reply_to must be a queue of team-a's own"),
    ],
)
async def test_a_sender_that_is_not_who_it_claims_gets_531_and_the_handler_never_runs(
    actor, user_id, reply_to, why
):
    ran = []

    async def record(cmd: Ping, ctx: HandlerContext) -> PingSucceeded:
        ran.append(cmd)
        return PingSucceeded(text=cmd.text)

    d, effects = heard_by(record)
    delivery = as_sent(actor, user_id, reply_to)
    await d(delivery)
    assert ran == [] and delivery.settled == ["ack"]
    [reply] = [o for o in effects.published if o.exchange]
    assert (reply.envelope.type, reply.envelope.payload["error_code"]) == ("PingFailed", 531)
    assert why in reply.envelope.payload["error_text"]
    assert [o for o in effects.published if not o.exchange] == [], "no reply into someone else's queue"


async def test_a_service_user_states_the_actor_it_runs_for():
    actors = []

    async def record(cmd: Ping, ctx: HandlerContext) -> PingSucceeded:
        actors.append(ctx.envelope.actor)
        return PingSucceeded(text=cmd.text)

    d, _ = heard_by(record)
    await d(as_sent(Actor(account_id=ALICE, role="admin"), "snapdeploy-test"))
    assert actors == [Actor(account_id=ALICE, role="admin")]


@pytest.mark.parametrize("reply_to", ["planner.replies", "producer.team-b.replies", "storage.commands"])
@pytest.mark.parametrize("body", [b"\x00garbage", b'{"type": "Ping"}', None])
async def test_an_unreadable_message_from_a_producer_is_never_answered_into_a_queue_not_its_own(
    reply_to, body
):
    """Regression (contract fuzz): the 431 of an invalid command went to whatever reply_to it named,
    before any identity check, so a producer could post a snapdeploy service's failure reply into
    a service's queue (a saga's replies) or another producer's."""
    d, effects = heard_by(echo)
    if body is None:  # a valid envelope whose payload is not a Ping
        envelope = Envelope.wrap(Ping(text="x"), source="test").model_copy(update={"payload": {"txt": 1}})
        body = envelope.to_bytes()
    delivery = FakeDelivery(body, user_id="team-a", reply_to=reply_to, message_id=str(uuid.uuid4()))
    await d(delivery)
    assert delivery.settled == [("reject", False)]
    [reply] = effects.published
    assert (reply.exchange, reply.envelope.type, reply.envelope.payload["error_code"]) == (
        "snapdeploy.events", "PingFailed", 431,
    )  # fmt: skip
    own = FakeDelivery(
        body, user_id="team-a", reply_to="producer.team-a.replies", message_id=str(uuid.uuid4())
    )
    await d(own)
    assert [o.routing_key for o in effects.published if not o.exchange] == ["producer.team-a.replies"]


@pytest.mark.parametrize("where", ["type", "field"])
async def test_a_431_never_repeats_a_huge_name_it_was_sent(where):
    """Regression (contract fuzz): the reason of a 431 quoted the envelope's type, and the names of
    fields the model lacks, whole: a 50,000-character type came back (and was logged) whole."""
    d, effects = dispatcher(echo)
    envelope = json.loads(Envelope.wrap(Ping(text="x"), source="test").to_bytes())
    if where == "type":
        envelope["type"] = "Ω" * 50_000
    else:
        envelope["payload"]["Ω" * 50_000] = 1
    await d(FakeDelivery(json.dumps(envelope).encode(), message_id=str(uuid.uuid4())))
    [reply] = effects.published
    assert reply.envelope.payload["error_code"] == 431
    assert 0 < len(reply.envelope.payload["error_text"]) < 300


async def test_the_metrics_of_rejected_messages_name_only_known_types():
    """Regression (contract fuzz): a rejected message was counted under its AMQP type, which the
    sender chooses: every new value was one more time series, held for ever."""
    d, _ = dispatcher(echo)
    for n in range(20):
        await d(FakeDelivery(b"junk", type=f"Invented{n}", routing_key="unit.nothing"))
    await d(FakeDelivery(b"junk", type="Ping"))
    labels = {s.labels["type"] for m in d.metrics.handled.collect() for s in m.samples}
    assert labels == {"Ping", "unknown"}


class FakeBus:
    def __init__(self):
        self.sent: list[tuple[str, Envelope]] = []

    async def publish_raw(self, exchange, routing_key, body, **properties):
        self.sent.append((routing_key, Envelope.model_validate_json(body)))


@pytest.mark.parametrize("body", [b"junk", b'{"type": "Look"}', None])
async def test_an_invalid_query_is_answered_at_once_with_a_431(body):
    """Regression (contract fuzz): an invalid query was dead-lettered without an answer, and its
    caller waited out its whole timeout for one."""
    d, _ = heard_by(echo)
    d.bus = FakeBus()
    if body is None:  # a Look without its text
        body = Envelope.wrap(Look(text="x"), source="t").model_copy(update={"payload": {}}).to_bytes()
    asked = str(uuid.uuid4())
    delivery = FakeDelivery(body, type="Look", routing_key="unit.look", message_id=asked,
                            user_id="team-a", reply_to="producer.team-a.replies")  # fmt: skip
    await d(delivery)
    assert delivery.settled == [("reject", False)]
    [(to, answer)] = d.bus.sent
    assert (to, answer.type, answer.payload["query"], answer.payload["error_code"]) == (
        "producer.team-a.replies", "QueryFailed", "Look", 431,
    )  # fmt: skip
    assert str(answer.causation_id) == asked
    # and never into a queue that is not the asker's own
    await d(
        FakeDelivery(body, type="Look", routing_key="unit.look", user_id="team-a", reply_to="planner.replies")
    )
    assert len(d.bus.sent) == 1
