"""The audit service as a real process, against the real RabbitMQ and PostgreSQL.

The messages are the ones a deployment produces (commands, replies, action events, vCenter
tasks), published through the bus in a shuffled order with explicit timestamps; the planner
that would produce them comes later.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aio_pika
import asyncpg
import pytest

from contracts.agent import (
    AttachNic,
    AttachNicSucceeded,
    CloneFromSnapshot,
    CloneFromSnapshotSucceeded,
    PowerOnVm,
    PowerOnVmSucceeded,
    SeedTemplate,
    SeedTemplateSucceeded,
)
from contracts.audit import DeploymentTrail, GetDeploymentTrail, ListEvents, ListEventsResult
from contracts.base import Command, Event
from contracts.catalogue import CATALOGUE, failed_reply
from contracts.envelope import Actor, Envelope
from contracts.events import ActionEvent, VcenterTask
from contracts.planner import CreateVmSnapshot, DeployVirtualMachine, DeployVirtualMachineSucceeded
from contracts.samples import make_sample
from contracts.storage import SeedTemplateFromVmSnapshot, SeedTemplateFromVmSnapshotSucceeded
from contracts.topology import CLOUDSTACK_EVENTS, EVENTS
from shared.bus import Bus
from shared.bus.queries import QueryClient
from shared.messaging import Outgoing, command_out, derived_id, event_out
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.integration

ACCOUNT = uuid.uuid4()
ACTOR = Actor(account_id=ACCOUNT, role="user")


def example(model, **fields):
    """A valid message of ``model`` with ``fields`` set: what the audit reads is in the envelope,
    so the rest of the payload comes from the type's schema (and follows its changes)."""
    spec = next(spec for spec in CATALOGUE if spec.model is model)
    return model.model_validate({**make_sample(spec)["payload"], **fields})


# -- a deployment's messages -------------------------------------------------------------------------


@dataclass
class Deployment:
    """The messages of one deployment, each with an explicit occurred_at (ms after ``start``)."""

    job: uuid.UUID = field(default_factory=uuid.uuid4)
    vm: uuid.UUID = field(default_factory=uuid.uuid4)
    account: uuid.UUID = ACCOUNT
    user: uuid.UUID = field(default_factory=uuid.uuid4)  # who asked, as CloudStack names it
    start: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(minutes=5))
    sent: list[Outgoing] = field(default_factory=list)

    def _at(self, envelope: Envelope, ms: int) -> Envelope:
        return envelope.model_copy(update={"occurred_at": self.start + timedelta(milliseconds=ms)})

    def command(self, cause: Envelope | None, command: Command, ms: int, source: str = "planner") -> Envelope:
        if cause is None:
            envelope = Envelope.wrap(
                command,
                source="api",
                correlation_id=self.job,
                actor=Actor(account_id=self.account, user_id=self.user),
            )
        else:
            envelope = cause.caused(command, source=source)
        envelope = self._at(envelope, ms)
        self.sent.append(command_out(envelope, command))
        return envelope

    def event(self, cause: Envelope, event: Event, ms: int, source: str = "planner", reply=False) -> Envelope:
        message_id = derived_id(cause.message_id, "reply") if reply else None
        envelope = self._at(cause.caused(event, source=source, message_id=message_id), ms)
        self.sent.append(event_out(envelope, event))
        return envelope

    def action(
        self, cause: Envelope, event_type: str, state: str, resource_type: str, resource_id, ms: int,
        source: str = "planner", **kw,
    ) -> Envelope:  # fmt: skip
        action = ActionEvent(
            event_type=event_type, state=state, resource_type=resource_type, resource_id=resource_id,
            resource_name=kw.pop("name", None), account_id=self.account,
            description=kw.pop("description", f"{event_type.lower()} {resource_id}"), **kw,
        )  # fmt: skip
        return self.event(cause, action, ms, source=source)

    def task(self, cause: Envelope, name: str, ms: int, duration_ms: int, state="success", **kw) -> Envelope:
        started = self.start + timedelta(milliseconds=ms - duration_ms)
        task = VcenterTask(
            zone_id="zone1", task_key=f"task-{uuid.uuid4().hex[:6]}", name=name, entity="vm-7",
            entity_name="web-1", state=state, started_at=started,
            completed_at=started + timedelta(milliseconds=duration_ms), duration_ms=duration_ms, **kw,
        )  # fmt: skip
        return self.event(cause, task, ms, source="agent")


def successful_deployment(account: uuid.UUID = ACCOUNT) -> Deployment:
    d = Deployment(account=account)
    seed_id, root_volume, nics = uuid.uuid4(), uuid.uuid4(), [uuid.uuid4(), uuid.uuid4()]
    deploy = d.command(None, example(DeployVirtualMachine, vm_id=str(d.vm)), 0)
    d.action(deploy, "VM.CREATE", "Scheduled", "VirtualMachine", d.vm, 5, name="web-1")
    d.action(deploy, "VM.CREATE", "Started", "VirtualMachine", d.vm, 10, name="web-1")
    seed = d.command(deploy, example(SeedTemplateFromVmSnapshot), 20)
    d.action(seed, "TEMPLATE.CREATE", "Started", "VirtualMachineTemplate", seed_id, 25, source="storage")
    copy = d.command(seed, example(SeedTemplate, seed_id=str(seed_id)), 30, source="storage")
    d.task(copy, "CloneVM_Task", 2030, 2000)
    d.event(copy, example(SeedTemplateSucceeded, seed_id=str(seed_id)), 2040, source="agent", reply=True)
    d.action(seed, "TEMPLATE.CREATE", "Completed", "VirtualMachineTemplate", seed_id, 2050, source="storage")
    seeded = example(SeedTemplateFromVmSnapshotSucceeded, seed_id=str(seed_id))
    d.event(seed, seeded, 2060, source="storage", reply=True)
    d.action(deploy, "VOLUME.CREATE", "Completed", "Volume", root_volume, 2070, name="ROOT-1")
    clone = d.command(deploy, example(CloneFromSnapshot, vm_id=str(d.vm), vm_name="web-1"), 2080)
    d.task(clone, "CloneVM_Task", 3580, 1500)
    d.event(clone, example(CloneFromSnapshotSucceeded, vm_id=str(d.vm)), 3590, source="agent", reply=True)
    ms = 3600
    for nic in nics:
        attach = d.command(deploy, example(AttachNic, nic_id=str(nic)), ms)
        d.task(attach, "ReconfigVM_Task", ms + 200, 190)
        d.event(attach, example(AttachNicSucceeded, nic_id=str(nic)), ms + 210, source="agent", reply=True)
        d.action(deploy, "NIC.CREATE", "Completed", "Nic", nic, ms + 220)
        ms += 300
    power = d.command(deploy, example(PowerOnVm), ms)
    d.task(power, "PowerOnVM_Task", ms + 800, 790)
    d.event(power, example(PowerOnVmSucceeded), ms + 810, source="agent", reply=True)
    d.action(deploy, "VM.START", "Completed", "VirtualMachine", d.vm, ms + 820, name="web-1")
    d.action(deploy, "VM.CREATE", "Completed", "VirtualMachine", d.vm, ms + 830, name="web-1")
    done = example(DeployVirtualMachineSucceeded, vm_id=str(d.vm), root_volume_id=str(root_volume))
    d.event(deploy, done, ms + 840, reply=True)
    return d


def failed_deployment() -> Deployment:
    d = Deployment()
    deploy = d.command(None, example(DeployVirtualMachine, vm_id=str(d.vm)), 0)
    d.action(deploy, "VM.CREATE", "Scheduled", "VirtualMachine", d.vm, 5)
    clone = d.command(deploy, example(CloneFromSnapshot, vm_id=str(d.vm)), 10)
    d.task(
        clone,
        "CloneVM_Task",
        410,
        400,
        state="error",
        fault="InsufficientDiskSpace",
        fault_message="ds1 is full",
    )
    clone_failed = failed_reply(CloneFromSnapshot)(
        error_code=533, error_text="ds1 is full", fault="InsufficientDiskSpace"
    )
    d.event(clone, clone_failed, 420, source="agent", reply=True)
    d.action(deploy, "VM.CREATE", "Failed", "VirtualMachine", d.vm, 430, level="ERROR")
    reason = "CloneFromSnapshot failed: ds1 is full (InsufficientDiskSpace)"
    d.event(deploy, failed_reply(DeployVirtualMachine)(error_code=533, error_text=reason), 440, reply=True)
    return d


# -- helpers ------------------------------------------------------------------------------------------


async def publish_all(bus: Bus, messages: list[Outgoing], *, shuffle: bool = True) -> None:
    messages = list(messages)
    if shuffle:  # arrival order must not matter
        random.Random(7).shuffle(messages)
    for out in messages:
        await bus.publish_until_confirmed(out)


async def eventually(
    probe: Callable[[], Awaitable], until: Callable, *, timeout: float = 30.0, what: str = ""
):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if until(value):
            return value
        if loop.time() > deadline:
            raise AssertionError(f"waited {timeout}s for {what or 'a condition'}; last value: {value!r}")
        await asyncio.sleep(0.05)


async def fetchval(database_url: str, sql: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def stored(database_url: str, message_id: uuid.UUID) -> int:
    return await fetchval(database_url, "SELECT count(*) FROM audit.events WHERE message_id = $1", message_id)


async def wait_stored(database_url: str, job: uuid.UUID, count: int) -> None:
    await eventually(
        lambda: fetchval(database_url, "SELECT count(*) FROM audit.events WHERE correlation_id = $1", job),
        lambda n: n >= count,
        what=f"{count} messages of job {job}",
    )


async def queue_depth(url: str, queue: str) -> int:
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count
    finally:
        await connection.close()


class CloudStackConsumer:
    """What an existing CloudStack event consumer does: its own queue bound to cloudstack-events."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.received: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def __aenter__(self) -> CloudStackConsumer:
        self.connection = await aio_pika.connect_robust(self.url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange(CLOUDSTACK_EVENTS.name, "topic", durable=True)
        queue = await channel.declare_queue(
            f"test.cloudstack.{uuid.uuid4().hex[:6]}", durable=True, arguments={"x-queue-type": "quorum"}
        )
        await queue.bind(exchange, self.key)
        await queue.consume(self._on_message)
        return self

    async def _on_message(self, message) -> None:
        async with message.process():
            self.received.append(message)

    def bodies(self, **fields) -> list[dict]:
        bodies = [json.loads(m.body) for m in self.received]
        return [b for b in bodies if all(b.get(k) == v for k, v in fields.items())]

    async def wait_for(self, count: int, **fields) -> list[dict]:
        async def _now():
            return self.bodies(**fields)

        return await eventually(
            _now, lambda found: len(found) >= count, what=f"{count} CloudStack events {fields}"
        )

    async def __aexit__(self, *exc) -> None:
        await self.connection.close()


@pytest.fixture
async def bus(vhost):
    bus = Bus(vhost.url, name="test")
    await bus.connect()
    yield bus
    await bus.close()


def start_audit(env: dict[str, str], **settings: str) -> ServiceProcess:
    service = ServiceProcess("services.audit", {**env, **settings}, name="audit").start()
    service.wait_started()
    service.wait_for_log("ingest consuming")
    return service


@pytest.fixture
def audit(service_env):
    service = start_audit(service_env)
    yield service
    assert service.stop() == 0


# -- tests --------------------------------------------------------------------------------------------


async def test_deployment_trail_in_causal_order_with_durations(audit, bus, database_url):
    d = successful_deployment()
    await publish_all(bus, d.sent)
    await wait_stored(database_url, d.job, len(d.sent))

    trail = await QueryClient(bus, source="test").ask(GetDeploymentTrail(correlation_id=d.job))
    assert isinstance(trail, DeploymentTrail)
    assert (trail.status, trail.error_text, trail.truncated) == ("succeeded", None, False)
    assert [e.message_id for e in trail.entries] == [o.envelope.message_id for o in d.sent], "causal order"
    assert trail.duration_ms == 5040 and trail.started_at == d.start

    def first(type_: str, **fields):
        return next(
            e for e in trail.entries if e.type == type_ and all(getattr(e, k) == v for k, v in fields.items())
        )

    assert first("DeployVirtualMachine").duration_ms == 5040
    assert first("CloneFromSnapshot").duration_ms == 1510
    assert first("CloneFromSnapshotSucceeded").duration_ms == 1510
    assert (
        first("VcenterTask", task_name="CloneVM_Task", duration_ms=1500).summary
        == "CloneVM_Task success web-1"
    )
    assert first("VcenterTask", task_name="PowerOnVM_Task").duration_ms == 790
    assert first("ActionEvent", event_type="VM.CREATE", state="Completed").duration_ms == 5025
    assert first("ActionEvent", event_type="TEMPLATE.CREATE", state="Completed").duration_ms == 2025
    assert first("ActionEvent", event_type="VM.START").summary == "VM.START Completed VirtualMachine web-1"
    kinds = {e.kind for e in trail.entries}
    assert kinds == {"command", "reply", "event"}
    assert [e.type for e in trail.entries if e.kind == "command"] == [
        "DeployVirtualMachine", "SeedTemplateFromVmSnapshot", "SeedTemplate", "CloneFromSnapshot",
        "AttachNic", "AttachNic", "PowerOnVm",
    ]  # fmt: skip
    events = [e.event_type for e in trail.entries if e.type == "ActionEvent"]
    assert events.count("NIC.CREATE") == 2 and "VOLUME.CREATE" in events


async def test_list_events_filters_and_pages(audit, bus, database_url):
    mine, other = successful_deployment(), successful_deployment(account=uuid.uuid4())
    await publish_all(bus, mine.sent + other.sent)
    await wait_stored(database_url, mine.job, len(mine.sent))
    await wait_stored(database_url, other.job, len(other.sent))
    client = QueryClient(bus, source="test")

    async def ask(**filters) -> ListEventsResult:
        return await client.ask(ListEvents(**filters))

    by_job = await ask(correlation_id=mine.job, page_size=1000)
    assert by_job.total == len(mine.sent)
    assert [i["message_id"] for i in by_job.items] == [str(o.envelope.message_id) for o in mine.sent]

    by_vm = await ask(resource_id=mine.vm)
    assert [(i["event_type"], i["state"]) for i in by_vm.items] == [
        ("VM.CREATE", "Scheduled"),
        ("VM.CREATE", "Started"),
        ("VM.START", "Completed"),
        ("VM.CREATE", "Completed"),
    ]

    tasks = await ask(type="VcenterTask", correlation_id=mine.job)
    assert tasks.total == 5 and {i["task_name"] for i in tasks.items} == {
        "CloneVM_Task",
        "ReconfigVM_Task",
        "PowerOnVM_Task",
    }
    assert (await ask(event_type="NIC.CREATE")).total == 4
    assert (await ask(account_id=other.account, page_size=1000)).total == len(other.sent)

    window = await ask(
        correlation_id=mine.job,
        since=mine.start + timedelta(milliseconds=2000),
        until=mine.start + timedelta(milliseconds=2060),
    )
    assert [i["type"] for i in window.items] == ["VcenterTask", "SeedTemplateSucceeded", "ActionEvent"]

    pages, page = [], 1
    while True:
        result = await ask(correlation_id=mine.job, page=page, page_size=7)
        assert result.total == len(mine.sent)
        if not result.items:
            break
        pages.extend(i["message_id"] for i in result.items)
        page += 1
    assert pages == [i["message_id"] for i in by_job.items] and page == -(-len(mine.sent) // 7) + 1


async def test_failed_deployment_trail_ends_with_the_failure_and_its_reason(audit, bus, database_url):
    d = failed_deployment()
    await publish_all(bus, d.sent)
    await wait_stored(database_url, d.job, len(d.sent))

    trail = await QueryClient(bus, source="test").ask(GetDeploymentTrail(correlation_id=d.job))
    assert trail.status == "failed"
    assert (trail.error_code, trail.error_text) == (
        533,
        "CloneFromSnapshot failed: ds1 is full (InsufficientDiskSpace)",
    )
    last = trail.entries[-1]
    assert (last.type, last.kind, last.error_text) == (
        "DeployVirtualMachineFailed",
        "reply",
        trail.error_text,
    )
    task = next(e for e in trail.entries if e.type == "VcenterTask")
    assert (task.state, task.fault, task.error_text, task.duration_ms) == (
        "error",
        "InsufficientDiskSpace",
        "ds1 is full",
        400,
    )
    clone_failed = next(e for e in trail.entries if e.type == "CloneFromSnapshotFailed")
    assert (clone_failed.error_code, clone_failed.fault, clone_failed.duration_ms) == (
        533,
        "InsufficientDiskSpace",
        410,
    )
    assert [e.state for e in trail.entries if e.type == "ActionEvent"] == ["Scheduled", "Failed"]


async def test_a_message_published_twice_is_stored_and_republished_once(audit, bus, database_url, vhost):
    async with CloudStackConsumer(vhost.url, "management-server.ActionEvent.#") as cloudstack:
        d = Deployment()
        root = Envelope.wrap(
            example(DeployVirtualMachine, vm_id=str(d.vm)), source="api", correlation_id=d.job
        )
        twice = d.action(root, "VM.CREATE", "Completed", "VirtualMachine", d.vm, 0)
        await publish_all(bus, d.sent)
        await eventually(
            lambda: stored(database_url, twice.message_id), lambda n: n == 1, what="first copy stored"
        )
        # again, in another batch, and twice in one batch
        sentinel_vm = uuid.uuid4()
        sentinel = d.action(root, "VM.CREATE", "Completed", "VirtualMachine", sentinel_vm, 1)
        await publish_all(bus, [d.sent[0], d.sent[0], d.sent[1]], shuffle=False)
        await eventually(
            lambda: stored(database_url, sentinel.message_id), lambda n: n == 1, what="sentinel stored"
        )
        await cloudstack.wait_for(1, entityuuid=str(sentinel_vm))

        assert await stored(database_url, twice.message_id) == 1
        assert len(cloudstack.bodies(entityuuid=str(d.vm))) == 1
        copies = [m for m in cloudstack.received if json.loads(m.body)["entityuuid"] == str(d.vm)]
        assert copies[0].message_id == str(derived_id(twice.message_id, "cloudstack"))
    assert await fetchval(database_url, "SELECT count(*) FROM audit.cloudstack_outbox") == 0


async def test_cloudstack_consumer_receives_vm_creation_in_cloudstack_format(audit, bus, database_url, vhost):
    async with CloudStackConsumer(vhost.url, "management-server.ActionEvent.VM-CREATE.#") as cloudstack:
        d = successful_deployment()
        await publish_all(bus, d.sent, shuffle=False)
        received = await cloudstack.wait_for(4)
        await wait_stored(database_url, d.job, len(d.sent))
        assert {m.routing_key for m in cloudstack.received} == {
            f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{d.vm}"
        }
        # PERSISTENT_TEXT_PLAIN, as RabbitMQEventBus publishes
        assert {(m.content_type, m.delivery_mode) for m in cloudstack.received} == {("text/plain", 2)}
        assert [b["status"] for b in received] == ["Created", "Scheduled", "Started", "Completed"]
        created, completed = received[0], received[-1]
        assert set(completed) == {
            "user", "account", "event", "status", "entity", "entityuuid", "VirtualMachine", "description",
            "eventDateTime",
        }  # fmt: skip
        assert completed["event"] == "VM.CREATE"
        assert completed["entity"] == "VirtualMachine"
        assert completed["entityuuid"] == completed["VirtualMachine"] == str(d.vm)
        assert completed["account"] == str(ACCOUNT)
        assert completed["user"] == str(d.user)
        action = f"vm.create {d.vm}"  # the action's description (its first phase's)
        assert created["description"] == f"Successfully created entity for {action}"
        assert completed["description"] == f"Successfully completed {action}"
        when = d.start + timedelta(milliseconds=5030)
        assert completed["eventDateTime"] == when.strftime("%Y-%m-%d %H:%M:%S +0000")
        assert datetime.strptime(completed["eventDateTime"], "%Y-%m-%d %H:%M:%S %z")
        # NIC.CREATE, VM.START and the rest went to their own keys, not to this binding
        assert all(json.loads(m.body)["event"] == "VM.CREATE" for m in cloudstack.received)


async def test_a_failed_deployment_closes_what_it_left_open_once_as_cloudstack_does(audit, bus, vhost):
    async with CloudStackConsumer(vhost.url, "management-server.ActionEvent.VOLUME-CREATE.#") as cloudstack:
        d = Deployment()
        volume = uuid.uuid4()
        deploy = d.command(None, example(DeployVirtualMachine, vm_id=str(d.vm)), 0)
        d.action(deploy, "VM.CREATE", "Scheduled", "VirtualMachine", d.vm, 5, description="deploying web-1")
        d.action(deploy, "VOLUME.CREATE", "Started", "Volume", volume, 10, description="root volume on ds1")
        d.action(deploy, "VM.CREATE", "Failed", "VirtualMachine", d.vm, 430, level="ERROR", description="no")
        await publish_all(bus, d.sent, shuffle=False)
        received = await cloudstack.wait_for(3)
        assert [(b["status"], b["description"]) for b in received] == [
            ("Created", "Successfully created entity for root volume on ds1"),
            ("Started", "Root volume on ds1"),
            ("Completed", "Error while root volume on ds1"),
        ]
        assert {m.routing_key for m in cloudstack.received} == {
            f"management-server.ActionEvent.VOLUME-CREATE.Volume.{volume}"
        }
        # storage's own closing, late: CloudStack closes an action once
        d.action(deploy, "VOLUME.CREATE", "Failed", "Volume", volume, 500, source="storage")
        sentinel = uuid.uuid4()
        d.action(deploy, "VOLUME.CREATE", "Completed", "Volume", sentinel, 510, source="storage")
        await publish_all(bus, d.sent[-2:], shuffle=False)
        await cloudstack.wait_for(1, entityuuid=str(sentinel))
        assert len(cloudstack.bodies(entityuuid=str(volume))) == 3


async def test_vm_snapshot_events_are_filed_under_their_vm(audit, bus, vhost):
    async with CloudStackConsumer(
        vhost.url, "management-server.ActionEvent.VMSNAPSHOT-CREATE.#"
    ) as cloudstack:
        d = Deployment()
        snapshot = uuid.uuid4()
        take = d.command(None, CreateVmSnapshot(vm_snapshot_id=snapshot, vm_id=d.vm, name="S1"), 0)
        d.action(take, "VMSNAPSHOT.CREATE", "Started", "VMSnapshot", snapshot, 5, description="snapshot S1")
        d.action(
            take, "VMSNAPSHOT.CREATE", "Completed", "VMSnapshot", snapshot, 50, description="S1 is ready"
        )
        await publish_all(bus, d.sent, shuffle=False)
        received = await cloudstack.wait_for(3)
        assert {m.routing_key for m in cloudstack.received} == {
            f"management-server.ActionEvent.VMSNAPSHOT-CREATE.VirtualMachine.{d.vm}"
        }
        assert {(b["entity"], b["entityuuid"], b["VMSnapshot"]) for b in received} == {
            ("VirtualMachine", str(d.vm), str(snapshot))
        }
        assert received[-1]["description"] == "Successfully completed snapshot S1. S1 is ready"


async def test_only_what_is_not_an_envelope_goes_to_the_dlq(audit, bus, database_url, vhost):
    await bus.publish_raw(EVENTS.name, "planner.garbage", b"{not json", message_id=str(uuid.uuid4()))
    await bus.publish_raw(EVENTS.name, "planner.garbage", b'{"hello": "world"}')
    d = failed_deployment()
    # an envelope with U+0000 (PostgreSQL text refuses it) in one batch with good ones: stored too
    odd = d.sent[1].envelope.model_copy(update={"message_id": uuid.uuid4(), "payload": {"note": "a\x00b"}})
    await publish_all(bus, [*d.sent, Outgoing(odd, EVENTS.name, "planner.action_event.vm_create")])
    await wait_stored(database_url, d.job, len(d.sent) + 1)
    await eventually(
        lambda: queue_depth(vhost.url, "audit.ingest.dlq"), lambda n: n == 2, what="two dead letters"
    )
    assert await fetchval(database_url, "SELECT count(*) FROM audit.events") == len(d.sent) + 1
    audit.wait_for_log("not a snapdeploy envelope, rejected to the dead-letter queue", timeout=5)


async def test_a_message_with_nul_characters_is_stored_and_returned_intact_in_the_trail(
    audit, bus, database_url
):
    d = failed_deployment()
    text = "web\x00-1 100% \x00%00 %25 \\u0000"
    command, action = d.sent[0].envelope, d.sent[1].envelope
    odd = {
        0: command.model_copy(update={"payload": {**command.payload, "name": text, text: [{"k\x00": text}]}}),
        1: action.model_copy(update={"payload": {**action.payload, "resource_name": text}}),
    }
    sent = [Outgoing(odd[i], o.exchange, o.routing_key) if i in odd else o for i, o in enumerate(d.sent)]
    await publish_all(bus, sent)
    await wait_stored(database_url, d.job, len(d.sent))

    asked = QueryClient(bus, source="test")
    [record] = (await asked.ask(ListEvents(correlation_id=d.job, type=command.type))).items
    assert record["payload"] == odd[0].payload, "returned exactly as it was sent"
    assert record["broker_user"] == "snapdeploy-test", "who really published it"
    trail = await asked.ask(GetDeploymentTrail(correlation_id=d.job))
    assert [e.message_id for e in trail.entries] == [o.envelope.message_id for o in sent]
    assert trail.entries[1].resource_name == text
    assert trail.entries[1].summary == f"VM.CREATE Scheduled VirtualMachine {text}"


OLD_ROW = """
    INSERT INTO audit.events (message_id, kind, type, schema_version, source, exchange, routing_key,
                              correlation_id, occurred_at, payload)
    VALUES ($1, 'event', 'ActionEvent', 1, 'planner', 'snapdeploy.events', 'planner.action_event.vm_create',
            $2, $3, '{}'::jsonb)"""


@pytest.mark.parametrize("mode", ["archive", "purge"])
async def test_retention_moves_or_purges_old_rows(service_env, bus, database_url, mode):
    service = start_audit(
        service_env, AUDIT_RETENTION_DAYS="1", AUDIT_RETENTION_MODE=mode, AUDIT_RETENTION_INTERVAL="0.2",
        AUDIT_RETENTION_BATCH="7",
    )  # fmt: skip
    try:
        old_job = uuid.uuid4()
        conn = await asyncpg.connect(database_url)
        try:
            old = datetime.now(UTC) - timedelta(days=3)
            await conn.executemany(
                OLD_ROW, [(uuid.uuid4(), old_job, old + timedelta(seconds=i)) for i in range(20)]
            )
        finally:
            await conn.close()
        fresh = successful_deployment()
        await publish_all(bus, fresh.sent)
        await wait_stored(database_url, fresh.job, len(fresh.sent))

        count_old = "SELECT count(*) FROM audit.{} WHERE correlation_id = $1"
        await eventually(
            lambda: fetchval(database_url, count_old.format("events"), old_job),
            lambda n: n == 0,
            what="old rows gone",
        )
        archived = await fetchval(database_url, count_old.format("events_archive"), old_job)
        assert archived == (20 if mode == "archive" else 0)
        assert await fetchval(database_url, count_old.format("events"), fresh.job) == len(fresh.sent)
        service.wait_for_log("retention pass", timeout=5, mode=mode)
    finally:
        assert service.stop() == 0


async def test_killed_mid_ingest_then_restarted_stores_everything_once(service_env, bus, database_url, vhost):
    """Acks follow the commit: a SIGKILL loses nothing, the redelivered rest is stored once; SIGTERM
    stores what was received and exits 0."""
    total = 3000
    waves = [[] for _ in range(2)]
    for i in range(total):
        d = Deployment()
        root = Envelope.wrap(example(DeployVirtualMachine, vm_id=str(d.vm)), source="api")
        d.action(root, "VM.CREATE", "Completed", "VirtualMachine", d.vm, i)
        waves[i % 2].extend(d.sent)
    count = "SELECT count(*) FROM audit.events"

    service = start_audit(service_env)
    await publish_all(bus, waves[0], shuffle=False)
    await eventually(lambda: fetchval(database_url, count), lambda n: n > 0, what="ingest under way")
    service.proc.kill()
    service.wait(10)

    service = start_audit(service_env)
    try:
        await publish_all(bus, waves[1], shuffle=False)
        await eventually(lambda: fetchval(database_url, count), lambda n: n > total // 2, what="second wave")
        service.signal(signal.SIGTERM)
        assert await asyncio.to_thread(service.wait, 30) == 0
        stored_now = await fetchval(database_url, count)
        assert stored_now + await queue_depth(vhost.url, "audit.ingest") == total, "nothing lost at shutdown"
    finally:
        service.stop()

    service = start_audit(service_env)
    try:
        await eventually(lambda: fetchval(database_url, count), lambda n: n >= total, what="all stored")
        assert await fetchval(database_url, "SELECT count(DISTINCT message_id) FROM audit.events") == total
        await eventually(
            lambda: fetchval(database_url, "SELECT count(*) FROM audit.cloudstack_outbox"),
            lambda n: n == 0,
            what="CloudStack copies published",
        )
    finally:
        assert service.stop() == 0
    assert await fetchval(database_url, count) == total
