"""What snapdeploy records follows what vCenter has: the disk a VM boots from, its snapshot tree.

Every service a process, the simulator over HTTPS; disk contents compared by SHA-256.
"""

from __future__ import annotations

import uuid

import pytest

from contracts import planner, storage
from tests.e2e.cloud import ACCOUNT, offering, prepare, root_disk
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
