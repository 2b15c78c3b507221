"""A cloud to deploy into: every service as a process, the simulator, the source VM adopted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contracts import planner, storage, vsphere
from contracts.envelope import Actor
from contracts.vsphere import VmInfo
from tests.support.stack import ZONE, Stack

ACCOUNT = uuid.UUID("00000000-0000-4000-8000-00000000a001")
ADMIN = Actor(role="admin")


@dataclass
class Source:
    vm_id: uuid.UUID
    vm: VmInfo


async def source_vm(cloud: Stack) -> VmInfo:
    return (await cloud.inventory())[0]["src-vm"]


async def prepare(cloud: Stack) -> Source:
    """Sync the zone, wait until planner and storage know it, adopt src-vm into the account."""
    vm = await source_vm(cloud)
    await cloud.until(planner.ListHosts(zone_id=ZONE), lambda a: len(a.hosts) == 4, what="hosts known")
    await cloud.until(storage.ListStoragePools(zone_id=ZONE), lambda a: len(a.pools) == 2, what="pools known")
    adopted = await cloud.call(planner.ImportVirtualMachine(zone_id=ZONE, vm_ref=vm.ref, account_id=ACCOUNT))
    return Source(vm_id=uuid.UUID(adopted["vm_id"]), vm=vm)


async def offering(
    cloud: Stack, *, cpus: int = 2, mhz: int = 100, memory_mb: int = 128, name: str = "small"
) -> uuid.UUID:
    offering_id = uuid.uuid4()
    await cloud.call(
        planner.CreateServiceOffering(
            offering_id=offering_id, name=name, cpu_number=cpus, cpu_speed_mhz=mhz, memory_mb=memory_mb
        )
    )
    return offering_id


async def networks(cloud: Stack, *names: str) -> list[uuid.UUID]:
    known = {n.name: n.id for n in (await cloud.ask(planner.ListNetworks(zone_id=ZONE))).networks}
    return [known[name] for name in names]


async def snapshot(cloud: Stack, vm_id: uuid.UUID, name: str) -> uuid.UUID:
    snapshot_id = uuid.uuid4()
    await cloud.call(planner.CreateVmSnapshot(vm_snapshot_id=snapshot_id, vm_id=vm_id, name=name))
    return snapshot_id


def root_disk(vm: VmInfo):
    return vsphere.root_disk(vm.disks)
