"""Storage as real processes with the agent and the simulator, through the real broker and database.

The test plays the planner's part: it adopts the simulator's source VM and records its VM
snapshot with storage, as the planner does before any seeding.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest

from contracts import agent
from contracts import storage as cmd
from contracts.vsphere import DiskConfig, VmInfo
from tests.support.stack import ZONE, Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.integration
ROOT_AT_S1 = b"R" * 8192 + b"root disk at S1"
DATA_AT_S1 = b"D" * 4096 + b"data disk at S1"
ACCOUNT = uuid.UUID("7d8f6c1e-0000-4000-8000-000000000001")
FAST_SCAVENGER = {"scavenger_interval": 0.5, "scavenger_delay": 0}


@dataclass
class Source:
    vm_id: uuid.UUID
    vm: VmInfo
    root_volume: uuid.UUID
    data_volume: uuid.UUID
    data_offering: uuid.UUID
    snapshot_id: uuid.UUID
    snapshot_ref: str
    disks: list[DiskConfig]
    pools: dict[str, cmd.StoragePool]

    def disk(self, unit: int) -> DiskConfig:
        return next(d for d in self.disks if d.unit_number == unit)


async def pools(cloud: Stack) -> dict[str, cmd.StoragePool]:
    return {p.name: p for p in (await cloud.ask(cmd.ListStoragePools(zone_id=ZONE))).pools}


async def source_vm(cloud: Stack) -> VmInfo:
    """src-vm as vCenter has it now (its current disk files change with each snapshot)."""
    return (await cloud.inventory())[0]["src-vm"]


async def adopt_source_vm(cloud: Stack) -> Source:
    """Sync the zone, write known bytes, snapshot S1, and tell storage about the VM and S1."""
    src = await source_vm(cloud)
    await cloud.until(
        cmd.ListStoragePools(zone_id=ZONE), lambda a: len(a.pools) == 2, what="pools from the inventory"
    )
    root, data = sorted(src.disks, key=lambda d: d.unit_number)
    cloud.sim.write(root.file, ROOT_AT_S1)
    cloud.sim.write(data.file, DATA_AT_S1)
    taken = await cloud.call(
        agent.CreateVmSnapshot(zone_id=ZONE, vm_ref=src.ref, snapshot_id="s1", name="S1")
    )
    snapshot_ref = taken["snapshot"]["ref"]
    config = await cloud.call(
        agent.GetVmSnapshotConfigs(zone_id=ZONE, vm_ref=src.ref, snapshot_ref=snapshot_ref)
    )
    disks = [DiskConfig.model_validate(d) for d in config["config"]["disks"]]
    source = Source(
        vm_id=uuid.uuid4(),
        vm=src,
        root_volume=uuid.uuid4(),
        data_volume=uuid.uuid4(),
        data_offering=uuid.uuid4(),
        snapshot_id=uuid.uuid4(),
        snapshot_ref=snapshot_ref,
        disks=disks,
        pools={},
    )
    await cloud.call(
        cmd.RecordVirtualMachine(
            vm_id=source.vm_id,
            account_id=ACCOUNT,
            zone_id=ZONE,
            vm_ref=src.ref,
            name="src-vm",
            volumes=[
                cmd.VmVolume(volume_id=source.root_volume, type="ROOT", disk=root),
                cmd.VmVolume(
                    volume_id=source.data_volume,
                    type="DATADISK",
                    disk=data,
                    disk_offering_id=source.data_offering,
                ),
            ],
        )
    )
    await cloud.call(
        cmd.RecordVmSnapshot(
            vm_snapshot_id=source.snapshot_id,
            vm_id=source.vm_id,
            account_id=ACCOUNT,
            zone_id=ZONE,
            vm_ref=src.ref,
            snapshot_ref=snapshot_ref,
            name="S1",
            disks=disks,
        )
    )
    source.pools = await pools(cloud)
    source.vm = await source_vm(cloud)
    return source


def seed_request(source: Source, pool: str = "ds1", zone: str = ZONE) -> cmd.SeedTemplateFromVmSnapshot:
    return cmd.SeedTemplateFromVmSnapshot(
        zone_id=zone, vm_snapshot_id=source.snapshot_id, storage_id=source.pools[pool].id
    )


def volume_request(
    source: Source, volume_id: uuid.UUID | None = None, **kw
) -> cmd.CreateVolumeFromVmSnapshot:
    return cmd.CreateVolumeFromVmSnapshot(
        new_volume_id=uuid.uuid4(),
        vm_snapshot_id=source.snapshot_id,
        volume_id=volume_id or source.data_volume,
        name=kw.pop("name", "from-s1"),
        **kw,
    )


async def test_concurrent_seed_requests_on_two_replicas_make_one_seed_with_the_root_disk_at_the_snapshot(
    service_env,
):
    async with Stack(service_env, storage=2) as cloud:
        source = await adopt_source_vm(cloud)
        first, second = await asyncio.gather(
            cloud.send(seed_request(source)), cloud.send(seed_request(source))
        )
        replies = [await cloud.reply(first), await cloud.reply(second)]
        assert [r.type for r in replies] == ["SeedTemplateFromVmSnapshotSucceeded"] * 2, replies
        assert replies[0].payload["seed_id"] == replies[1].payload["seed_id"]
        assert len(cloud.commands_seen("SeedTemplate")) == 1, "one copy on the agent"
        install_path = replies[0].payload["install_path"]
        assert sha256(cloud.sim.read(install_path)) == sha256(ROOT_AT_S1)
        again = await cloud.call(seed_request(source))
        assert again["seed_id"] == replies[0].payload["seed_id"], "a Ready seed answers at once"
        assert len(cloud.commands_seen("SeedTemplate")) == 1


async def test_a_volume_from_a_vm_snapshot_is_a_full_copy_of_that_disk_at_the_snapshot(service_env):
    async with Stack(service_env, storage=1) as cloud:
        source = await adopt_source_vm(cloud)
        cloud.sim.write(next(d.file for d in source.vm.disks if d.unit_number == 1), b"written after S1")
        request = volume_request(source)
        made = await cloud.call(request)
        [volume] = (await cloud.ask(cmd.ListVolumes(id=request.new_volume_id))).volumes
        assert volume.state == "Ready"
        assert volume.size_bytes == made["size_bytes"] == source.disk(1).size_bytes
        assert volume.pool_id == source.pools["ds1"].id
        assert volume.disk_offering_id == source.data_offering, "inherits the source volume's disk offering"
        assert sha256(cloud.sim.read(volume.disk_path)) == sha256(DATA_AT_S1)
        states = [
            e.payload["new_state"]
            for e in cloud.events.seen
            if e.type == "ResourceStateChanged" and e.payload["resource_id"] == str(request.new_volume_id)
        ]
        assert states == ["Allocated", "Creating", "Ready"]
        actions = [
            e.payload["state"]
            for e in cloud.events.seen
            if e.type == "ActionEvent" and e.payload["event_type"] == "VOLUME.CREATE"
        ]
        assert actions == ["Started", "Completed"]


async def test_requests_against_the_rules_are_431_with_a_clear_text_and_create_nothing(service_env):
    async with Stack(service_env, storage=1) as cloud:
        source = await adopt_source_vm(cloud)
        other_vm, other_volume = uuid.uuid4(), uuid.uuid4()
        await cloud.call(
            cmd.RecordVirtualMachine(
                vm_id=other_vm,
                account_id=ACCOUNT,
                zone_id=ZONE,
                vm_ref="vm-other",
                name="other-vm",
                volumes=[
                    cmd.VmVolume(
                        volume_id=other_volume,
                        type="DATADISK",
                        disk=source.disk(1).model_copy(update={"key": 9999}),
                    )
                ],
            )
        )
        before = await pools(cloud)

        on_ds2 = await cloud.refused(seed_request(source, pool="ds2"))
        assert on_ds2["error_code"] == 431
        assert (
            "only on the pool that holds the VM snapshot (ds1); storage pool ds2 is another pool"
            in on_ds2["error_text"]
        )
        not_its_vm = await cloud.refused(volume_request(source, volume_id=other_volume))
        assert not_its_vm["error_code"] == 431
        assert "is not a volume of VM src-vm, the VM of VM snapshot S1" in not_its_vm["error_text"]
        wrong_zone = await cloud.refused(seed_request(source, zone="zone9"))
        assert wrong_zone["error_code"] == 431 and "is in zone zone1, not zone9" in wrong_zone["error_text"]
        unknown = await cloud.refused(
            cmd.SeedTemplateFromVmSnapshot(
                zone_id=ZONE, vm_snapshot_id=uuid.uuid4(), storage_id=source.pools["ds1"].id
            )
        )
        assert unknown["error_code"] == 431 and "does not exist" in unknown["error_text"]

        assert (await cloud.ask(cmd.ListSeeds())).seeds == []
        assert len((await cloud.ask(cmd.ListVolumes())).volumes) == 3
        assert await pools(cloud) == before
        assert (
            cloud.commands_seen("SeedTemplate") == [] and cloud.commands_seen("CopyVolumeFromSnapshot") == []
        )


async def test_a_pool_too_small_is_533_with_its_figures_and_nothing_changes(service_env):
    async with Stack(service_env, storage=1, storage_overprovisioning="0.000001") as cloud:
        source = await adopt_source_vm(cloud)
        before = await pools(cloud)
        refused = await cloud.refused(seed_request(source))
        assert refused["error_code"] == 533
        assert "insufficient capacity on storage pool ds1" in refused["error_text"]
        assert f"needs {source.disk(0).size_bytes} bytes" in refused["error_text"]
        refused = await cloud.refused(volume_request(source))
        assert refused["error_code"] == 533
        assert await pools(cloud) == before
        assert (await cloud.ask(cmd.ListSeeds())).seeds == []
        assert len((await cloud.ask(cmd.ListVolumes())).volumes) == 2


async def test_a_copy_fault_leaves_error_releases_the_reservation_and_the_scavenger_collects_it(service_env):
    async with Stack(service_env, storage=1, **FAST_SCAVENGER) as cloud:
        source = await adopt_source_vm(cloud)
        before = await pools(cloud)

        cloud.sim.fail("CopyVirtualDisk_Task", "NoDiskSpace", message="ds1 is full")
        seed = await cloud.refused(seed_request(source))
        assert (
            seed["error_code"] == 533
            and "NoDiskSpace" in seed["error_text"]
            and "ds1 is full" in seed["error_text"]
        )
        assert await pools(cloud) == before, "the reservation is released"
        await cloud.until(cmd.ListSeeds(), lambda a: a.seeds == [], what="the failed seed collected")

        cloud.sim.fail("CopyVirtualDisk_Task", "NoDiskSpace", message="ds1 is full")
        request = volume_request(source)
        volume = await cloud.refused(request)
        assert (
            volume["error_code"] == 533
            and "copying the disk from the VM snapshot failed" in volume["error_text"]
        )
        [failed] = (await cloud.ask(cmd.ListVolumes(id=request.new_volume_id))).volumes
        assert failed.state in ("Error", "Expunging", "Expunged") and "ds1 is full" in failed.reason
        await cloud.until(
            cmd.ListVolumes(id=request.new_volume_id),
            lambda a: a.volumes[0].state == "Expunged",
            what="expunged",
        )
        assert await pools(cloud) == before
        assert not cloud.sim.exists(f"[ds1] snapdeploy-volumes/{request.new_volume_id}.vmdk")


async def test_pool_figures_after_seeding_volumes_deletes_and_scavenging_are_exact(service_env):
    async with Stack(service_env, storage=1, **FAST_SCAVENGER) as cloud:
        source = await adopt_source_vm(cloud)
        start = (await pools(cloud))["ds1"].allocated_bytes
        root_size, data_size = source.disk(0).size_bytes, source.disk(1).size_bytes

        seed = await cloud.call(seed_request(source))
        assert seed["template_size"] == root_size
        assert (await pools(cloud))["ds1"].allocated_bytes == start + root_size

        requests = [volume_request(source, name=f"v{i}") for i in range(3)]
        for request in requests:
            await cloud.call(request)
        assert (await pools(cloud))["ds1"].allocated_bytes == start + root_size + 3 * data_size

        for request in requests:
            await cloud.call(cmd.DeleteVolume(volume_id=request.new_volume_id))
        await cloud.until(
            cmd.ListVolumes(state="Expunged"), lambda a: len(a.volumes) == 3, what="three volumes expunged"
        )
        assert (await pools(cloud))["ds1"].allocated_bytes == start + root_size
        for request in requests:
            [gone] = (await cloud.ask(cmd.ListVolumes(id=request.new_volume_id))).volumes
            assert not cloud.sim.exists(gone.disk_path)

        forgotten = await cloud.call(cmd.ForgetVmSnapshot(vm_snapshot_id=source.snapshot_id))
        assert forgotten["seeds_marked"] == 1
        await cloud.until(cmd.ListSeeds(), lambda a: a.seeds == [], what="the unused seed collected")
        assert (await pools(cloud))["ds1"].allocated_bytes == start
        assert not cloud.sim.exists(seed["install_path"])


async def test_attach_detach_and_resize_wait_until_the_vm_has_no_vm_snapshot(service_env):
    async with Stack(service_env, storage=1) as cloud:
        source = await adopt_source_vm(cloud)
        request = volume_request(source, name="extra")
        await cloud.call(request)
        volume = request.new_volume_id

        refused = await cloud.refused(cmd.AttachVolume(volume_id=volume, vm_id=source.vm_id, device_id=3))
        assert refused["error_code"] == 431
        assert "cannot attach volume extra: its VM has VM snapshots (S1)" in refused["error_text"]
        refused = await cloud.refused(cmd.DetachVolume(volume_id=source.data_volume))
        assert "cannot detach volume" in refused["error_text"] and "(S1)" in refused["error_text"]
        refused = await cloud.refused(cmd.ResizeVolume(volume_id=source.data_volume, size_bytes=4 * 2**30))
        assert "cannot resize volume" in refused["error_text"] and "(S1)" in refused["error_text"]

        await cloud.call(
            agent.RemoveVmSnapshot(zone_id=ZONE, vm_ref=source.vm.ref, snapshot_ref=source.snapshot_ref)
        )
        await cloud.call(cmd.ForgetVmSnapshot(vm_snapshot_id=source.snapshot_id))

        attached = await cloud.call(cmd.AttachVolume(volume_id=volume, vm_id=source.vm_id, device_id=3))
        assert attached["device_id"] == 3
        grown = await cloud.call(cmd.ResizeVolume(volume_id=volume, size_bytes=source.disk(1).size_bytes * 2))
        assert grown["size_bytes"] == source.disk(1).size_bytes * 2
        await cloud.call(cmd.DetachVolume(volume_id=volume))
        [after] = (await cloud.ask(cmd.ListVolumes(id=volume))).volumes
        assert (after.vm_id, after.state, after.size_bytes) == (None, "Ready", source.disk(1).size_bytes * 2)


async def test_volumes_take_a_disk_offering_that_exists(service_env):
    async with Stack(service_env, storage=1) as cloud:
        source = await adopt_source_vm(cloud)
        gold = uuid.uuid4()
        await cloud.call(cmd.CreateDiskOffering(offering_id=gold, name="gold", size_bytes=2 * 2**30))
        assert [o.name for o in (await cloud.ask(cmd.ListDiskOfferings())).offerings] == ["gold"]
        before = await pools(cloud)
        refused = await cloud.refused(volume_request(source, disk_offering_id=uuid.uuid4()))
        assert refused["error_code"] == 431 and "disk offering" in refused["error_text"]
        assert await pools(cloud) == before and len((await cloud.ask(cmd.ListVolumes())).volumes) == 2
        request = volume_request(source, disk_offering_id=gold)
        await cloud.call(request)
        [volume] = (await cloud.ask(cmd.ListVolumes(id=request.new_volume_id))).volumes
        assert volume.disk_offering_id == gold
