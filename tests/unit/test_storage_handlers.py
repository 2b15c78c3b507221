"""Storage's handlers as histories, in memory: seeding from a VM snapshot (single flight, capacity
reserved before the copy, released when it fails), the root volumes of deployed VMs, and blank
volumes (their size reserved before the disk is made, everything given back when it fails)."""

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
POOL, SNAPSHOT, VM, OFFERING = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
OWNER = uuid.uuid4()
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
                     "add_volume", "move_volume", "pools_by_room", "disk_offering_exists"):  # fmt: skip
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
        self.volumes[columns["uuid"]] = {"reason": None, "disk_path": None, "source_vm_snapshot_id": None,
                                         **columns}  # fmt: skip

    async def move_volume(self, conn, volume_uuid, from_states, to_state, **fields):
        volume = self.volumes.get(volume_uuid)
        if volume is None or volume["state"] not in from_states:
            return None
        volume.update(state=to_state, **fields)
        return volume

    async def pools_by_room(self, conn, zone_id, factor):
        pools = [p for p in self.pools.values() if p["zone_id"] == zone_id]
        return sorted(pools, key=lambda p: (p["allocated_bytes"] - p["capacity_bytes"] * factor, p["name"]))

    async def disk_offering_exists(self, conn, offering_uuid):
        return offering_uuid == OFFERING

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


ADMIN = Actor(role="admin")


async def command(memory: MemoryStorage, message, actor: Actor = ADMIN) -> HandlerContext:
    envelope = Envelope.wrap(message, source="test", correlation_id=uuid.uuid4(), actor=actor)
    ctx = HandlerContext(envelope, "storage", conn=memory, reply_to="test.replies")
    await call_handler(REGISTRY[type(message)], CATALOGUE.get("storage", message.type_name()), message, ctx)
    return ctx


async def reply(memory: MemoryStorage, message, to: Envelope | None = None) -> HandlerContext:
    envelope = (to or memory.sent[-1]).caused(message, source="agent")
    ctx = HandlerContext(envelope, "storage", conn=memory)
    await REGISTRY[type(message)](message, ctx)
    return ctx


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


# -- blank volumes ---------------------------------------------------------------------------------------


def blank_request(size: int = 3 * GIB, **fields) -> cmd.CreateVolume:
    return cmd.CreateVolume(
        **{"new_volume_id": uuid.uuid4(), "name": "data-1", "zone_id": "zone1", "size_bytes": size,
           "disk_offering_id": OFFERING, **fields},
    )  # fmt: skip


def actions(ctx: HandlerContext) -> list[tuple[str, str]]:
    return [
        (o.envelope.payload["event_type"], o.envelope.payload["state"])
        for o in ctx.outgoing
        if o.envelope.type == "ActionEvent"
    ]


@pytest.fixture
def two_pools(memory) -> MemoryStorage:
    memory.pools[2] = {"id": 2, "uuid": uuid.uuid4(), "name": "ds2", "zone_id": "zone1",
                       "capacity_bytes": 10 * GIB, "allocated_bytes": 4 * GIB}  # fmt: skip
    memory.pools[1]["allocated_bytes"] = 1 * GIB
    return memory


async def test_a_blank_volume_reserves_its_size_on_the_pool_with_most_room_and_a_twin_makes_no_second_disk(
    two_pools,
):
    request = blank_request()
    ctx = await command(two_pools, request, Actor(account_id=OWNER, role="user"))
    await command(two_pools, request, Actor(account_id=OWNER, role="user"))  # a twin delivery

    [create] = two_pools.sent
    assert create.type == "CreateDisk"
    assert create.payload == {
        "zone_id": "zone1", "volume_id": str(request.new_volume_id), "datastore": "ds1",
        "size_bytes": 3 * GIB,
    }  # fmt: skip
    assert (two_pools.pools[1]["allocated_bytes"], two_pools.pools[2]["allocated_bytes"]) == (
        4 * GIB,
        4 * GIB,
    )
    volume = two_pools.volumes[request.new_volume_id]
    assert (volume["state"], volume["account_id"], volume["counted_bytes"]) == ("Creating", OWNER, 3 * GIB)
    assert actions(ctx) == [("VOLUME.CREATE", "Started")]

    path = f"[ds1] snapdeploy-volumes/{request.new_volume_id}.vmdk"
    done = await reply(two_pools, agent.CreateDiskSucceeded(
        volume_id=str(request.new_volume_id), disk_path=path, datastore="ds1", size_bytes=3 * GIB,
    ))  # fmt: skip
    assert actions(done) == [("VOLUME.CREATE", "Completed")]
    assert [(a.volume_id, a.disk_path, a.storage_id) for a in two_pools.answers] == [
        (request.new_volume_id, path, POOL)
    ] * 2, "both deliveries answered with the one disk"
    assert (volume["state"], volume["disk_path"]) == ("Ready", path)

    again = await command(two_pools, request)  # after the end: the same answer at once
    assert again.outgoing[0].envelope.type == "CreateVolumeSucceeded" and len(two_pools.sent) == 1


async def test_when_the_disk_cannot_be_made_no_volume_is_left_and_its_bytes_are_released(memory):
    request = blank_request()
    await command(memory, request)
    failure = failed_reply(agent.CreateDisk)(error_code=533, error_text="no space", fault="NoDiskSpace")
    ctx = await reply(memory, failure)

    volume = memory.volumes[request.new_volume_id]
    assert (volume["state"], volume["counted_bytes"]) == ("Expunged", 0)
    assert memory.pools[1]["allocated_bytes"] == 0
    [answer] = memory.answers
    assert (answer.error_code, answer.fault, answer.error_text) == (
        533, "NoDiskSpace", "creating the disk failed: no space",
    )  # fmt: skip
    assert actions(ctx) == [("VOLUME.CREATE", "Failed")]

    late = await reply(memory, failure, to=memory.sent[0])  # the failure delivered twice
    assert late.outgoing == [] and memory.pools[1]["allocated_bytes"] == 0
    again = await command(memory, request)  # the request again: the same failure, nothing made
    assert again.outgoing[0].envelope.type == "CreateVolumeFailed" and len(memory.sent) == 1
    assert memory.pools[1]["allocated_bytes"] == 0


async def test_a_blank_volume_no_pool_can_hold_is_533_and_records_nothing(two_pools):
    ctx = await command(two_pools, blank_request(size=10 * GIB))
    refusal = ctx.outgoing[0].envelope
    assert (refusal.type, refusal.payload["error_code"]) == ("CreateVolumeFailed", 533)
    assert "insufficient capacity on storage pool ds1" in refusal.payload["error_text"]
    assert two_pools.sent == [] and two_pools.volumes == {}
    assert (two_pools.pools[1]["allocated_bytes"], two_pools.pools[2]["allocated_bytes"]) == (GIB, 4 * GIB)


async def test_a_blank_volume_on_a_named_pool_of_another_zone_or_an_unknown_offering_is_431(memory):
    memory.pools[3] = {"id": 3, "uuid": uuid.uuid4(), "name": "ds9", "zone_id": "zone9",
                       "capacity_bytes": 10 * GIB, "allocated_bytes": 0}  # fmt: skip
    elsewhere = await command(memory, blank_request(storage_id=memory.pools[3]["uuid"]))
    assert elsewhere.outgoing[0].envelope.payload["error_code"] == 431
    unknown = await command(memory, blank_request(disk_offering_id=uuid.uuid4()))
    assert unknown.outgoing[0].envelope.payload["error_code"] == 431
    assert memory.sent == [] and memory.volumes == {} and memory.pools[3]["allocated_bytes"] == 0
