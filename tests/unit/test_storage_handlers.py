"""Storage's handlers as histories, in memory: seeding from a VM snapshot (single flight, capacity
reserved before the copy, released when it fails) and the root volumes of deployed VMs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
import structlog

from contracts import agent
from contracts import storage as cmd
from contracts.catalogue import CATALOGUE, failed_reply
from contracts.envelope import Actor, Envelope
from contracts.vsphere import DiskConfig
from services.storage import store
from services.storage.common import Storage
from services.storage.handlers import handlers
from shared.db import awaited, pending
from shared.messaging import HandlerContext, call_handler

GIB = 2**30
POOL, SNAPSHOT, VM = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
ROOT = DiskConfig(
    key=2000, file="[ds1] src/src.vmdk", datastore="ds1", size_bytes=GIB, controller_key=1000,
    controller_type="scsi", unit_number=0,
)  # fmt: skip


@dataclass
class MemoryStorage:
    """Pools, VM snapshots, seeds and volumes; the agent calls awaited and the requests parked."""

    pools: dict[int, dict] = field(default_factory=dict)
    snapshots: dict[uuid.UUID, dict] = field(default_factory=dict)
    seeds: dict[str, dict] = field(default_factory=dict)
    volumes: dict[uuid.UUID, dict] = field(default_factory=dict)
    calls: dict[uuid.UUID, dict] = field(default_factory=dict)
    parked: list[tuple[str, str]] = field(default_factory=list)
    answers: list = field(default_factory=list)
    sent: list[Envelope] = field(default_factory=list)

    def install(self, monkeypatch) -> None:
        for name in ("vm_snapshot", "pool", "root_volume_key", "lock_seed_pair", "seed_pair", "live_seed",
                     "reserve", "count", "add_seed", "move_seed", "volume_or_none", "seed_row_id",
                     "add_volume"):  # fmt: skip
            monkeypatch.setattr(store, name, getattr(self, name))
        monkeypatch.setattr(awaited, "send", self.send)
        monkeypatch.setattr(awaited, "take", self.take)
        monkeypatch.setattr(pending, "park", self.park)
        monkeypatch.setattr(pending, "answer", self.answer)

    async def vm_snapshot(self, conn, snapshot_uuid):
        return self.snapshots[snapshot_uuid]

    async def pool(self, conn, *, uuid_=None, id_=None):
        return next(p for p in self.pools.values() if p["uuid"] == uuid_ or p["id"] == id_)

    async def root_volume_key(self, conn, vm_uuid):
        return None

    async def lock_seed_pair(self, conn, snapshot_id, pool_id):
        pass  # one test, one task: nothing runs concurrently

    async def seed_pair(self, conn, seed_uuid):
        seed = self.seeds.get(seed_uuid)
        return (seed["vm_snapshot_id"], seed["pool_id"]) if seed else None

    async def live_seed(self, conn, snapshot_id, pool_id):
        return next(
            (s for s in self.seeds.values() if (s["vm_snapshot_id"], s["pool_id"]) == (snapshot_id, pool_id)
             and s["state"] in store.LIVE_SEED_STATES),
            None,
        )  # fmt: skip

    async def reserve(self, conn, pool_id, nbytes, factor):
        pool = self.pools[pool_id]
        if pool["allocated_bytes"] + nbytes > pool["capacity_bytes"] * factor:
            return False
        pool["allocated_bytes"] += nbytes
        return True

    async def count(self, conn, pool_id, nbytes):
        self.pools[pool_id]["allocated_bytes"] += nbytes

    async def add_seed(self, conn, seed_uuid, pool_id, snapshot_id, job_id, size):
        seed = {"id": len(self.seeds) + 1, "uuid": str(seed_uuid), "pool_id": pool_id,
                "vm_snapshot_id": snapshot_id,
                "state": "Creating", "template_size": size, "install_path": None, "template_ref": None,
                "base_snapshot_ref": None}  # fmt: skip
        self.seeds[str(seed_uuid)] = seed
        return seed

    async def move_seed(self, conn, seed_uuid, from_state, to_state, **fields):
        seed = self.seeds.get(seed_uuid)
        if seed is None or seed["state"] != from_state:
            return None
        seed.update(state=to_state, **fields)
        return seed

    async def volume_or_none(self, conn, volume_uuid, *, lock=False):
        return self.volumes.get(volume_uuid)

    async def seed_row_id(self, conn, seed_uuid):
        return self.seeds[str(seed_uuid)]["id"]

    async def add_volume(self, conn, **columns):
        self.volumes[columns["uuid"]] = columns

    async def send(self, ctx, command, *, reply_to, operation, resource_id, **detail):
        envelope = ctx.send(command, reply_to=reply_to)
        self.sent.append(envelope)
        self.calls[envelope.message_id] = {
            "operation": operation,
            "resource_id": resource_id,
            "detail": detail,
        }
        return envelope

    async def take(self, conn, message_id):
        return self.calls.pop(message_id, None)

    async def park(self, ctx, resource_id, operation):
        self.parked.append((str(resource_id), operation))

    async def answer(self, conn, resource_id, operation, reply, *, source):
        waiting = [p for p in self.parked if p == (str(resource_id), operation)]
        self.parked = [p for p in self.parked if p != (str(resource_id), operation)]
        self.answers.extend(reply for _ in waiting)
        return []


@pytest.fixture(autouse=True)
def quiet_logs():
    """Handlers log refusals; captured here, whatever another test did to the log's stream."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
def memory(monkeypatch) -> MemoryStorage:
    memory = MemoryStorage()
    memory.install(monkeypatch)
    memory.pools[1] = {"id": 1, "uuid": POOL, "name": "ds1", "zone_id": "zone1", "capacity_bytes": 10 * GIB,
                       "allocated_bytes": 0}  # fmt: skip
    memory.snapshots[SNAPSHOT] = {"id": 7, "uuid": SNAPSHOT, "name": "S1", "zone_id": "zone1", "vm_uuid": VM,
                                  "account_id": uuid.uuid4(),
                                  "vm_ref": "vm-1", "snapshot_ref": "snap-1", "hypervisor": "VMware",
                                  "disks": [ROOT.model_dump(mode="json")]}  # fmt: skip
    return memory


REGISTRY = handlers(Storage(overprovisioning=1.0))


async def command(memory: MemoryStorage, message) -> HandlerContext:
    envelope = Envelope.wrap(message, source="test", correlation_id=uuid.uuid4(), actor=Actor(role="admin"))
    ctx = HandlerContext(envelope, "storage", conn=memory, reply_to="test.replies")
    await call_handler(REGISTRY[type(message)], CATALOGUE.get("storage", message.type_name()), message, ctx)
    return ctx


async def reply(memory: MemoryStorage, message, to: Envelope | None = None) -> None:
    envelope = (to or memory.sent[-1]).caused(message, source="agent")
    await REGISTRY[type(message)](message, HandlerContext(envelope, "storage", conn=memory))


def seed_request() -> cmd.SeedTemplateFromVmSnapshot:
    return cmd.SeedTemplateFromVmSnapshot(zone_id="zone1", vm_snapshot_id=SNAPSHOT, storage_id=POOL)


def seeded(seed_id: str) -> agent.SeedTemplateSucceeded:
    return agent.SeedTemplateSucceeded(
        seed_id=seed_id, template_ref="vm-7", template_name="seed-7", base_snapshot_ref="snap-7",
        disk_path="[ds1] seed-7/root.vmdk", size_bytes=GIB,
    )  # fmt: skip


async def test_given_two_seed_requests_one_copy_is_made_and_both_are_answered_with_it(memory):
    await command(memory, seed_request())
    await command(memory, seed_request())
    assert [e.type for e in memory.sent] == ["SeedTemplate"], "one copy for both"
    assert memory.pools[1]["allocated_bytes"] == GIB, "the full size reserved before the copy"

    await reply(memory, seeded(memory.sent[0].payload["seed_id"]))

    assert len(memory.answers) == 2 and {a.template_ref for a in memory.answers} == {"vm-7"}
    [seed] = memory.seeds.values()
    assert (seed["state"], seed["install_path"]) == ("Ready", "[ds1] seed-7/root.vmdk")


async def test_a_ready_seed_answers_at_once(memory):
    await command(memory, seed_request())
    await reply(memory, seeded(memory.sent[0].payload["seed_id"]))
    ctx = await command(memory, seed_request())
    assert ctx.outgoing[0].envelope.type == "SeedTemplateFromVmSnapshotSucceeded"
    assert len(memory.sent) == 1


async def test_when_the_copy_fails_the_seed_is_in_error_its_room_released_and_the_waiters_told_why(memory):
    await command(memory, seed_request())
    failure = failed_reply(agent.SeedTemplate)(error_code=533, error_text="no space", fault="NoDiskSpace")
    await reply(memory, failure)

    [seed] = memory.seeds.values()
    assert seed["state"] == "Error"
    assert memory.pools[1]["allocated_bytes"] == 0
    [answer] = memory.answers
    assert (answer.error_code, answer.fault) == (533, "NoDiskSpace")
    assert answer.error_text == "seeding the template failed: no space"


async def test_a_reply_delivered_twice_has_one_effect(memory):
    await command(memory, seed_request())
    sent = memory.sent[0]
    await reply(memory, seeded(sent.payload["seed_id"]), to=sent)
    await reply(memory, failed_reply(agent.SeedTemplate)(error_code=530, error_text="late"), to=sent)
    [seed] = memory.seeds.values()
    assert seed["state"] == "Ready" and len(memory.answers) == 1


async def test_a_pool_without_room_refuses_the_seed_and_nothing_is_copied(memory):
    memory.pools[1]["allocated_bytes"] = 10 * GIB
    ctx = await command(memory, seed_request())
    refusal = ctx.outgoing[0].envelope
    assert (refusal.type, refusal.payload["error_code"]) == ("SeedTemplateFromVmSnapshotFailed", 533)
    assert memory.sent == [] and memory.seeds == {}


async def test_a_root_volume_reserves_its_virtual_size_and_a_second_allocation_is_a_no_op(memory):
    request = cmd.AllocateRootVolume(
        volume_id=uuid.uuid4(), vm_id=uuid.uuid4(), name="ROOT-web-1", zone_id="zone1", storage_id=POOL,
        size_bytes=GIB,
    )  # fmt: skip
    await command(memory, request)
    await command(memory, request)
    assert memory.pools[1]["allocated_bytes"] == GIB
    assert memory.volumes[request.volume_id]["state"] == "Creating"


async def test_a_root_volume_the_pool_cannot_hold_is_533(memory):
    request = cmd.AllocateRootVolume(
        volume_id=uuid.uuid4(), vm_id=uuid.uuid4(), name="ROOT-big", zone_id="zone1", storage_id=POOL,
        size_bytes=11 * GIB,
    )  # fmt: skip
    ctx = await command(memory, request)
    assert ctx.outgoing[0].envelope.payload["error_code"] == 533
    assert (
        "insufficient capacity on storage pool ds1 for root volume of ROOT-big"
        in (ctx.outgoing[0].envelope.payload["error_text"])
    )
    assert memory.volumes == {} and memory.pools[1]["allocated_bytes"] == 0
