"""The hypervisor agent as a process, driven through the real broker, against the simulator over HTTPS."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from contracts import agent as cmd
from contracts.vsphere import VmInfo
from snapdeploy.client import BusClient, Subscription
from snapdeploy.local.driver import Driver, watching
from tests.support.processes import ServiceProcess
from tests.support.vcsim import Simulator, sha256

pytestmark = pytest.mark.integration
ZONE = "zone1"
A, B, C = b"A" * 4096 + b"root at S1", b"B" * 4096 + b"root at S2", b"C" * 4096 + b"root now"
DATA_AT_S1 = b"D" * 8192 + b"data disk at S1"
GIB = 2**30


@pytest.fixture
def sim():
    simulator = Simulator()
    yield simulator
    simulator.stop()


@pytest.fixture
async def zone(sim, vhost, service_env):
    """The agent of zone1 running against the simulator, and a way to send it commands."""
    process = ServiceProcess(
        "services.hypervisor_agent",
        {**service_env, "ZONE_ID": ZONE, "VCENTER_URL": sim.url, "VCENTER_INSECURE": "true"},
        name="agent",
    ).start()
    process.wait_started()
    client, events = await watching(vhost.url)
    yield Zone(client, events, sim, process)
    await client.close()
    assert process.stop() == 0, process.output()


class Zone(Driver):
    def __init__(self, client: BusClient, events: Subscription, sim: Simulator, process: ServiceProcess):
        super().__init__(client, events)
        self.sim, self.process = sim, process

    async def snapshot(self, vm: VmInfo, name: str) -> dict:
        return (
            await self.call(
                cmd.CreateVmSnapshot(zone_id=ZONE, vm_ref=vm.ref, snapshot_id=str(uuid.uuid4()), name=name)
            )
        )["snapshot"]

    async def seed(self, vm: VmInfo, snapshot_ref: str, seed_id: str | None = None, **kw) -> dict:
        seed = cmd.SeedTemplate(
            zone_id=ZONE,
            seed_id=seed_id or str(uuid.uuid4()),
            vm_ref=vm.ref,
            snapshot_ref=snapshot_ref,
            datastore="ds1",
        )
        return await self.call(seed, **kw)

    def clone(self, seed: dict, host_ref: str, vm_id: str | None = None) -> cmd.CloneFromSnapshot:
        vm_id = vm_id or str(uuid.uuid4())
        return cmd.CloneFromSnapshot(
            zone_id=ZONE, vm_id=vm_id, vm_name=f"i-{vm_id[:8]}", template_ref=seed["template_ref"],
            base_snapshot_ref=seed["base_snapshot_ref"], host_ref=host_ref, datastore="ds1",
        )  # fmt: skip


def disk(vm: VmInfo, unit: int):
    return next(d for d in vm.disks if d.unit_number == unit)


def host_on_ds1(inventory: dict) -> str:
    ds1 = next(d for d in inventory["datastores"] if d["name"] == "ds1")
    return ds1["hosts"][0]


async def source_with_snapshots(zone: Zone) -> tuple[VmInfo, dict, dict, dict]:
    """Write A, snapshot S1, write B, snapshot S2 (child of S1), write C into src-vm's root disk."""
    vms, _ = await zone.inventory()
    src = vms["src-vm"]
    zone.sim.write(disk(src, 0).file, A)
    zone.sim.write(disk(src, 1).file, DATA_AT_S1)
    s1 = await zone.snapshot(src, "S1")
    vms, _ = await zone.inventory()
    zone.sim.write(disk(vms["src-vm"], 0).file, B)
    zone.sim.write(disk(vms["src-vm"], 1).file, b"data disk after S1")
    s2 = await zone.snapshot(vms["src-vm"], "S2")
    assert s2["parent_ref"] == s1["ref"]
    vms, inventory = await zone.inventory()
    zone.sim.write(disk(vms["src-vm"], 0).file, C)
    return vms["src-vm"], s1, s2, inventory


async def test_seeds_clones_and_volumes_hold_the_bytes_as_they_were_at_each_snapshot(zone):
    src, s1, s2, inventory = await source_with_snapshots(zone)

    seed1 = await zone.seed(src, s1["ref"])
    seed2 = await zone.seed(src, s2["ref"])
    assert sha256(zone.sim.read(seed1["disk_path"])) == sha256(A)
    assert sha256(zone.sim.read(seed2["disk_path"])) == sha256(B)

    clone = await zone.call(zone.clone(seed1, host_on_ds1(inventory)))
    root = clone["root_disk"]
    assert root["parent_file"] == seed1["disk_path"], "a linked clone's disk hangs from the seed's disk"
    assert sha256(zone.sim.read(root["file"])) == sha256(A)
    vms, _ = await zone.inventory()
    assert vms[clone["vm_name"]].nics == [], "inherited NICs are stripped"
    assert vms[clone["vm_name"]].snapdeploy_id == clone["vm_id"]

    volume = await zone.call(
        cmd.CopyVolumeFromSnapshot(
            zone_id=ZONE,
            volume_id=str(uuid.uuid4()),
            vm_ref=src.ref,
            snapshot_ref=s1["ref"],
            disk_key=disk(src, 1).key,
        )
    )
    assert sha256(zone.sim.read(volume["disk_path"])) == sha256(DATA_AT_S1)
    assert volume["datastore"] == "ds1"


async def test_repeated_commands_create_nothing_new(zone):
    src, s1, _, inventory = await source_with_snapshots(zone)
    first = await zone.send(
        cmd.SeedTemplate(
            zone_id=ZONE, seed_id="seed-1", vm_ref=src.ref, snapshot_ref=s1["ref"], datastore="ds1"
        )
    )
    seed = (await zone.reply(first)).payload
    again = await zone.seed(src, s1["ref"], seed_id="seed-1", message_id=first.message_id)
    with_new_id = await zone.seed(src, s1["ref"], seed_id="seed-1")
    assert again["template_ref"] == with_new_id["template_ref"] == seed["template_ref"]

    clone = zone.clone(seed, host_on_ds1(inventory))
    made = await zone.call(clone)
    assert (await zone.call(clone))["vm_ref"] == made["vm_ref"]
    vms, _ = await zone.inventory()
    assert sorted(vms) == sorted(["src-vm", seed["template_name"], made["vm_name"]])


async def test_insufficient_disk_space_on_clone_fails_naming_the_fault_and_leaves_nothing(zone):
    src, s1, _, inventory = await source_with_snapshots(zone)
    seed = await zone.seed(src, s1["ref"])
    before, _ = await zone.inventory()
    zone.sim.fail("CloneVM_Task", "InsufficientDiskSpace")
    clone = zone.clone(seed, host_on_ds1(inventory))
    reply = await zone.reply(await zone.send(clone))
    assert reply.type == "CloneFromSnapshotFailed"
    assert reply.payload["error_code"] == 533
    assert reply.payload["fault"] == "NoDiskSpace"
    assert "ds1" in reply.payload["error_text"]
    after, _ = await zone.inventory()
    assert sorted(after) == sorted(before), "no half-made VM is left behind"


async def test_a_blank_disk_is_made_once_with_its_size_and_a_failed_one_leaves_no_disk(zone):
    create = cmd.CreateDisk(zone_id=ZONE, volume_id=str(uuid.uuid4()), datastore="ds2", size_bytes=3 * GIB)
    first = await zone.send(create)
    made = (await zone.reply(first)).payload
    assert made["disk_path"] == f"[ds2] snapdeploy-volumes/{create.volume_id}.vmdk"
    assert (made["datastore"], made["size_bytes"]) == ("ds2", 3 * GIB)
    assert zone.sim.disk_size(made["disk_path"]) == 3 * GIB
    twin = await zone.call(create, message_id=first.message_id)  # the same delivery again
    again = await zone.call(create)  # the same request sent anew
    assert twin == again == made
    assert zone.sim.requests("CreateVirtualDisk_Task") == 1, "one disk, however often it is asked"

    zone.sim.fail("CreateVirtualDisk_Task", "NoDiskSpace")
    doomed = cmd.CreateDisk(zone_id=ZONE, volume_id=str(uuid.uuid4()), datastore="ds2", size_bytes=GIB)
    reply = await zone.reply(await zone.send(doomed))
    assert reply.type == "CreateDiskFailed"
    assert (reply.payload["error_code"], reply.payload["fault"]) == (533, "NoDiskSpace")
    assert zone.sim.disk_size(f"[ds2] snapdeploy-volumes/{doomed.volume_id}.vmdk") is None


async def test_an_expired_vcenter_session_is_renewed_without_failing_the_command(zone):
    vms, _ = await zone.inventory()
    zone.sim.control("expire-sessions")
    snapshot = await zone.snapshot(vms["src-vm"], "after-expiry")
    assert snapshot["name"] == "after-expiry"


async def test_every_vcenter_task_of_a_deployment_is_reported_with_its_duration(zone):
    src, s1, _, inventory = await source_with_snapshots(zone)
    zone.job = uuid.uuid4()
    seed = await zone.seed(src, s1["ref"])
    clone = await zone.call(zone.clone(seed, host_on_ds1(inventory)))
    vm_ref = clone["vm_ref"]
    await zone.call(cmd.ReconfigureVm(zone_id=ZONE, vm_ref=vm_ref, num_cpus=2, memory_mb=1024))
    await zone.call(cmd.AttachNic(zone_id=ZONE, vm_ref=vm_ref, nic_id=str(uuid.uuid4()), network="pg-web"))
    await zone.call(cmd.PowerOnVm(zone_id=ZONE, vm_ref=vm_ref))

    tasks = [e.payload for e in zone.events.seen if e.type == "VcenterTask" and e.correlation_id == zone.job]
    names = [t["name"] for t in tasks]
    for expected in (
        "CopyVirtualDisk_Task",
        "CreateVM_Task",
        "CreateSnapshot_Task",
        "CloneVM_Task",
        "PowerOnVM_Task",
    ):
        assert expected in names, names
    assert names.count("ReconfigVM_Task") >= 2, "reconfigure and the NIC are vCenter tasks too"
    assert all(t["state"] == "success" and t["duration_ms"] is not None and t["started_at"] for t in tasks)


async def test_twenty_concurrent_clones_all_succeed_with_slow_vcenter(zone):
    src, s1, _, inventory = await source_with_snapshots(zone)
    seed = await zone.seed(src, s1["ref"])
    zone.sim.slow("CloneVM_Task", 500)
    clones = [zone.clone(seed, host_on_ds1(inventory)) for _ in range(20)]
    replies = await asyncio.gather(*(zone.call(c) for c in clones))
    assert len({r["vm_ref"] for r in replies}) == 20
