"""What snapdeploy records follows what vCenter has: the disk a VM boots from, its snapshot tree.

Every service a process, the simulator over HTTPS; disk contents compared by SHA-256.
"""

from __future__ import annotations

import uuid

import pytest

from contracts import agent, planner, storage
from contracts.envelope import Actor, Envelope
from shared.messaging import command_out
from tests.e2e.cloud import ACCOUNT, offering, prepare, root_disk, snapshot, source_vm
from tests.support.stack import ZONE, Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.e2e
BOOT = b"I" * 8192 + b"boot disk on IDE 0:0"
DATA = b"S" * 8192 + b"data disk on SCSI 0:0"


async def test_a_vm_that_boots_from_ide_deploys_from_its_ide_disk_not_its_first_scsi_disk(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        cloud.sim.control("ide-vm")
        await prepare(cloud)
        ide_vm = (await cloud.inventory())[0]["ide-vm"]
        boot = next(d for d in ide_vm.disks if d.controller_type == "ide")
        data = next(d for d in ide_vm.disks if d.controller_type == "scsi")
        assert (boot.unit_number, data.unit_number) == (0, 0)
        cloud.sim.write(boot.file, BOOT)
        cloud.sim.write(data.file, DATA)
        adopted = await cloud.call(
            planner.ImportVirtualMachine(zone_id=ZONE, vm_ref=ide_vm.ref, account_id=ACCOUNT)
        )
        s1 = uuid.uuid4()
        await cloud.call(
            planner.CreateVmSnapshot(vm_snapshot_id=s1, vm_id=uuid.UUID(adopted["vm_id"]), name="S1")
        )

        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=s1, service_offering_id=await offering(cloud, cpus=1),
            name="from-ide",
        )  # fmt: skip
        await cloud.call(request)

        [root] = (await cloud.ask(storage.ListVolumes(vm_id=request.vm_id))).volumes
        assert root.size_bytes == boot.size_bytes, "the root volume is the size of the IDE disk"
        assert sha256(cloud.sim.read(root.disk_path)) == sha256(BOOT), (
            "the deployed root disk is the IDE disk"
        )
        [seed] = (await cloud.ask(storage.ListSeeds())).seeds
        assert sha256(cloud.sim.read(seed.install_path)) == sha256(BOOT), "the seed holds the IDE disk"
        deployed = (await cloud.inventory())[0]["from-ide"]
        assert root_disk(deployed).parent_file == seed.install_path


async def test_a_boot_order_configured_in_vcenter_names_the_root_disk(service_env):
    """The same two controllers, but the VM's boot order lists its SCSI disk: that one is root."""
    async with Stack(service_env, storage=1, planner=1) as cloud:
        cloud.sim.control("ide-vm", name="scsi-boot", boot="scsi")
        await prepare(cloud)
        vm = (await cloud.inventory())[0]["scsi-boot"]
        scsi = next(d for d in vm.disks if d.controller_type == "scsi")
        assert (scsi.boot_order, root_disk(vm)) == (0, scsi)
        cloud.sim.write(scsi.file, DATA)
        adopted = await cloud.call(
            planner.ImportVirtualMachine(zone_id=ZONE, vm_ref=vm.ref, account_id=ACCOUNT)
        )
        s1 = await snapshot(cloud, uuid.UUID(adopted["vm_id"]), "S1")
        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=s1, service_offering_id=await offering(cloud, cpus=1)
        )
        await cloud.call(request)
        [root] = (await cloud.ask(storage.ListVolumes(vm_id=request.vm_id))).volumes
        assert sha256(cloud.sim.read(root.disk_path)) == sha256(DATA), (
            "the deployed root disk is the SCSI disk"
        )


A = b"A" * 8192 + b"root disk at S1"
B = b"B" * 8192 + b"root disk at S2"
C = b"C" * 8192 + b"written after S2"


async def snapshot_with(cloud: Stack, vm_id: uuid.UUID, name: str, content: bytes) -> uuid.UUID:
    cloud.sim.write(root_disk(await source_vm(cloud)).file, content)
    return await snapshot(cloud, vm_id, name)


async def tree(cloud: Stack, vm_id: uuid.UUID) -> dict[uuid.UUID, planner.VmSnapshot]:
    return {s.id: s for s in (await cloud.ask(planner.ListVmSnapshots(vm_id=vm_id))).snapshots}


async def test_after_a_revert_to_s1_the_disk_reads_s1_and_the_next_snapshot_is_a_child_of_s1(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        s2 = await snapshot_with(cloud, source.vm_id, "S2", B)
        assert (await tree(cloud, source.vm_id))[s2].parent_id == s1
        cloud.sim.write(root_disk(await source_vm(cloud)).file, C)

        reverted = await cloud.call(planner.RevertToVmSnapshot(vm_snapshot_id=s1))
        assert reverted == {"vm_id": str(source.vm_id), "vm_snapshot_id": str(s1)}
        assert sha256(cloud.sim.read(root_disk(await source_vm(cloud)).file)) == sha256(A), "the disk is S1's"
        assert [s.id for s in (await tree(cloud, source.vm_id)).values() if s.current] == [s1]

        s3 = uuid.uuid4()
        taken = await cloud.call(planner.CreateVmSnapshot(vm_snapshot_id=s3, vm_id=source.vm_id, name="S3"))
        assert taken["parent_id"] == str(s1), "vCenter hangs S3 from S1, the current snapshot"
        after = await tree(cloud, source.vm_id)
        assert (after[s3].parent_id, after[s2].parent_id, after[s1].parent_id) == (s1, s1, None)
        assert [s.id for s in after.values() if s.current] == [s3]
        events = cloud.events.matching(lambda e: e.type == "ActionEvent")
        assert any(
            e.payload["event_type"] == "VMSNAPSHOT.REVERTTO" and e.payload["state"] == "Completed"
            for e in events
        )


async def test_a_revert_made_in_vcenter_moves_current_at_the_next_sync(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        s2 = await snapshot_with(cloud, source.vm_id, "S2", B)
        assert [s.id for s in (await tree(cloud, source.vm_id)).values() if s.current] == [s2]
        s1_ref = next(s.ref for s in (await source_vm(cloud)).snapshots if s.name == "S1")
        # Reverted behind the planner's back, as an operator would in the vSphere client.
        await cloud.call(agent.RevertToVmSnapshot(zone_id=ZONE, vm_ref=source.vm.ref, snapshot_ref=s1_ref))

        await cloud.inventory()
        await cloud.until(
            planner.ListVmSnapshots(vm_id=source.vm_id),
            lambda a: [s.id for s in a.snapshots if s.current] == [s1],
            what="S1 current after the sync",
        )


async def test_refused_reverts_name_their_reason(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        unknown = await cloud.refused(planner.RevertToVmSnapshot(vm_snapshot_id=uuid.uuid4()))
        assert unknown["error_code"] == 431
        command = planner.RevertToVmSnapshot(vm_snapshot_id=s1)
        stranger = Envelope.wrap(
            command,
            source="test",
            correlation_id=uuid.uuid4(),
            actor=Actor(account_id=uuid.uuid4(), role="user"),
        )
        await cloud.bus.publish_until_confirmed(command_out(stranger, command))
        reply = await cloud.reply(stranger)
        assert (reply.type, reply.payload["error_code"]) == ("RevertToVmSnapshotFailed", 531)


async def test_a_reboot_powers_the_vm_off_and_on_and_it_keeps_its_host(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=s1, service_offering_id=await offering(cloud), name="rebooted"
        )
        deployed = await cloud.call(request)
        hosts_before = (await cloud.ask(planner.ListHosts())).hosts

        await cloud.call(planner.RebootVirtualMachine(vm_id=request.vm_id))

        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert (vm.state, str(vm.host_id)) == ("Running", deployed["host_id"])
        assert (await cloud.inventory())[0]["rebooted"].power_state == "poweredOn"
        tasks = [e.payload["name"] for e in cloud.events.matching(lambda e: e.type == "VcenterTask")]
        assert "PowerOffVM_Task" in tasks and tasks[-1] == "PowerOnVM_Task"
        assert (await cloud.ask(planner.ListHosts())).hosts == hosts_before, "capacity held throughout"
