"""Commands of the planner: deployments (the saga), VM lifecycle, VM snapshots, offerings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from contracts.base import Command, Query, QueryResult, Succeeded
from contracts.types import BrokerUser, CpuMhz, Description, MemoryMb, Name, Ref, State, Vcpus, ZoneId
from contracts.vsphere import DiskConfig, VmInfo


class PlannerCommand(Command):
    service = "planner"


class DeployVirtualMachine(PlannerCommand):
    """Deploy a VM from a VM snapshot (``vm_snapshot_id``) or a template (``template_id``): exactly one.

    From a snapshot, ``zone_id`` and ``template_id`` are refused and ``service_offering_id`` is
    required; the vCPU count of the offering must match the snapshot's."""

    vm_id: uuid.UUID = Field(
        description="Id the new instance will have (chosen by the caller; idempotency key)."
    )
    vm_snapshot_id: uuid.UUID | None = None
    template_id: uuid.UUID | None = None
    zone_id: ZoneId | None = None
    service_offering_id: uuid.UUID | None = None
    network_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10)  # vSphere: 10 NICs per VM
    host_id: uuid.UUID | None = None
    name: Name | None = None
    display_name: Name | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DeployVirtualMachine:
        if (self.vm_snapshot_id is None) == (self.template_id is None):
            raise PydanticCustomError(
                "one_source", "exactly one of vm_snapshot_id and template_id is required"
            )
        return self


class DeployVirtualMachineSucceeded(Succeeded):
    """The VM is running."""

    vm_id: uuid.UUID
    name: str
    host_id: uuid.UUID
    root_volume_id: uuid.UUID


class StartVirtualMachine(PlannerCommand):
    """Power a stopped VM on."""

    vm_id: uuid.UUID


class StartVirtualMachineSucceeded(Succeeded):
    """The VM is running."""

    vm_id: uuid.UUID


class StopVirtualMachine(PlannerCommand):
    """Power a running VM off."""

    vm_id: uuid.UUID
    forced: bool = False


class StopVirtualMachineSucceeded(Succeeded):
    """The VM is stopped."""

    vm_id: uuid.UUID


class RebootVirtualMachine(PlannerCommand):
    """Restart a running VM (powered off, then on again, on the same host)."""

    vm_id: uuid.UUID


class RebootVirtualMachineSucceeded(Succeeded):
    """The VM is running again."""

    vm_id: uuid.UUID


class DestroyVirtualMachine(PlannerCommand):
    """Destroy a VM; with ``expunge`` its vCenter VM and root volume are removed at once."""

    vm_id: uuid.UUID
    expunge: bool = False


class DestroyVirtualMachineSucceeded(Succeeded):
    """The VM is destroyed (or expunged)."""

    vm_id: uuid.UUID
    state: str


class CreateVmSnapshot(PlannerCommand):
    """Take a VM snapshot; its parent is the VM's current snapshot, so snapshots form a tree."""

    vm_snapshot_id: uuid.UUID = Field(description="Id the snapshot will have (idempotency key).")
    vm_id: uuid.UUID
    name: Name
    description: Description = ""
    memory: bool = False


class CreateVmSnapshotSucceeded(Succeeded):
    """The VM snapshot exists."""

    vm_snapshot_id: uuid.UUID
    vm_id: uuid.UUID
    parent_id: uuid.UUID | None


class DeleteVmSnapshot(PlannerCommand):
    """Delete a VM snapshot (its children stay)."""

    vm_snapshot_id: uuid.UUID


class DeleteVmSnapshotSucceeded(Succeeded):
    """The VM snapshot is gone."""

    vm_snapshot_id: uuid.UUID


class RevertToVmSnapshot(PlannerCommand):
    """Revert a VM to one of its VM snapshots (CloudStack's revertToVMSnapshot): the VM's disks
    return to the snapshot, it becomes the VM's current snapshot, and the next one is its child."""

    vm_snapshot_id: uuid.UUID


class RevertToVmSnapshotSucceeded(Succeeded):
    """The VM is back on the VM snapshot."""

    vm_id: uuid.UUID
    vm_snapshot_id: uuid.UUID


class ImportVirtualMachine(PlannerCommand):
    """Adopt a VM found in vCenter (with its snapshot tree) into an account."""

    zone_id: ZoneId
    vm_ref: Ref
    account_id: uuid.UUID
    service_offering_id: uuid.UUID | None = None


class ImportVirtualMachineSucceeded(Succeeded):
    """The VM and its snapshots are owned by the account."""

    vm_id: uuid.UUID
    vm_snapshot_ids: list[uuid.UUID]


class CreateServiceOffering(PlannerCommand):
    """Admin: a compute offering (vCPUs, CPU speed, memory)."""

    offering_id: uuid.UUID
    name: Name
    cpu_number: Vcpus
    cpu_speed_mhz: CpuMhz
    memory_mb: MemoryMb


class CreateServiceOfferingSucceeded(Succeeded):
    """The offering exists."""

    offering_id: uuid.UUID


class RegisterBusPrincipal(PlannerCommand):
    """Admin: a RabbitMQ user that is not a snapdeploy service acts on the bus as this account and role.

    Messages whose AMQP ``user_id`` is that user run as this principal; one that states another
    actor is refused (531). Registering again replaces the account and role. Every service learns
    it from ``BusPrincipalChanged``."""

    broker_user: BrokerUser
    account_id: uuid.UUID
    role: Literal["admin", "user"] = "user"


class RegisterBusPrincipalSucceeded(Succeeded):
    """The broker user acts as the principal."""

    broker_user: str
    account_id: uuid.UUID
    role: str


class RemoveBusPrincipal(PlannerCommand):
    """Admin: the RabbitMQ user no longer acts for anyone; its messages are refused (531)."""

    broker_user: BrokerUser


class RemoveBusPrincipalSucceeded(Succeeded):
    """The broker user has no principal."""

    broker_user: str


_IDS = uuid.UUID("9b7e3f1a-2c4d-4e8f-a1b2-c3d4e5f60718")


def host_id(zone_id: str, host_ref: str) -> uuid.UUID:
    """A host's id: derived from its zone and vCenter ref, so every service names it alike."""
    return uuid.uuid5(_IDS, f"host/{zone_id}/{host_ref}")


def template_id(zone_id: str, template_ref: str) -> uuid.UUID:
    """A vCenter template's id: derived from its zone and vCenter ref."""
    return uuid.uuid5(_IDS, f"template/{zone_id}/{template_ref}")


def network_id(zone_id: str, port_group: str) -> uuid.UUID:
    """A guest network's id: derived from its zone and port group name."""
    return uuid.uuid5(_IDS, f"network/{zone_id}/{port_group}")


# -- queries -----------------------------------------------------------------------------------------


class Nic(BaseModel):
    """A NIC of an instance, in device order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    network_id: uuid.UUID
    network: str
    device_order: int
    mac: str | None
    state: str


class VirtualMachine(BaseModel):
    """An instance as the planner knows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    display_name: str | None
    state: str
    account_id: uuid.UUID
    zone_id: str
    host_id: uuid.UUID | None
    host_name: str | None
    vm_ref: str | None
    hypervisor: str
    service_offering_id: uuid.UUID | None
    vm_template_id: uuid.UUID | None
    disk_offering_id: uuid.UUID | None
    cpu_number: int | None
    cpu_speed_mhz: int | None
    memory_mb: int | None
    source_vm_snapshot_id: uuid.UUID | None
    root_volume_id: uuid.UUID | None
    pool: str | None
    nics: list[Nic]
    reason: str | None
    created: datetime | None = None


class VmSnapshot(BaseModel):
    """A VM snapshot in an instance's tree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    vm_id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    current: bool = Field(default=False, description="The VM's current snapshot in vCenter.")
    state: str
    memory: bool
    created: datetime
    account_id: uuid.UUID | None = None
    zone_id: str | None = None
    description: str = ""
    cpu_number: int | None = Field(default=None, description="vCPUs of the VM at the snapshot.")
    disks: list[DiskConfig] = Field(default_factory=list, description="The VM's disks at the snapshot.")


class Host(BaseModel):
    """A hypervisor host with its capacity and what is reserved on it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    zone_id: str
    cluster: str | None
    state: str
    cpu_mhz_total: int
    cpu_mhz_used: int
    memory_bytes: int
    memory_used_bytes: int
    pools: list[str]


class Network(BaseModel):
    """A guest network (a port group)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    zone_id: str


class ServiceOffering(BaseModel):
    """A compute offering."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    cpu_number: int
    cpu_speed_mhz: int
    memory_mb: int


class ListVirtualMachines(Query):
    """Instances, filtered by id, account or state."""

    service = "planner"

    id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None
    state: State | None = None


class ListVirtualMachinesResult(QueryResult):
    """The instances."""

    vms: list[VirtualMachine]


class ListVmSnapshots(Query):
    """VM snapshots, of one instance or all."""

    service = "planner"

    vm_id: uuid.UUID | None = None
    id: uuid.UUID | None = None
    account_id: uuid.UUID | None = None


class ListVmSnapshotsResult(QueryResult):
    """The VM snapshots, parents before children."""

    snapshots: list[VmSnapshot]


class ListHosts(Query):
    """Hosts of a zone (or all)."""

    service = "planner"

    zone_id: ZoneId | None = None


class ListHostsResult(QueryResult):
    """The hosts."""

    hosts: list[Host]


class ListNetworks(Query):
    """Guest networks of a zone (or all)."""

    service = "planner"

    zone_id: ZoneId | None = None


class ListNetworksResult(QueryResult):
    """The networks."""

    networks: list[Network]


class ListServiceOfferings(Query):
    """Compute offerings."""

    service = "planner"


class ListServiceOfferingsResult(QueryResult):
    """The offerings."""

    offerings: list[ServiceOffering]


class ListUnmanagedInstances(Query):
    """VMs vCenter had at the last sync that no account owns yet (what ImportVirtualMachine adopts)."""

    service = "planner"

    zone_id: str | None = None


class UnmanagedInstance(BaseModel):
    """A vCenter VM not adopted, in its zone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zone_id: str
    cluster: str | None
    vm: VmInfo


class ListUnmanagedInstancesResult(QueryResult):
    """The unmanaged VMs."""

    instances: list[UnmanagedInstance]
