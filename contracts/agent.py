"""Commands of the hypervisor agent (one zone = one vCenter datacenter) and their replies.

The agent is the only code that talks to vCenter. Every command is idempotent: the agent
names what it creates deterministically and stores the snapdeploy id in ``extraConfig``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import AgentCommand, Succeeded
from contracts.types import (
    Count,
    DatastoreName,
    DatastorePath,
    Description,
    DeviceKey,
    DiskBytes,
    Mac,
    MemoryMb,
    Name,
    Ref,
    Vcpus,
)
from contracts.vsphere import DiskConfig, SnapshotInfo, VmSnapshotConfig

# -- inventory and snapshots ------------------------------------------------------------------


class SyncInventory(AgentCommand):
    """Read hosts, datastores, port groups, VMs, templates and snapshot trees of the zone.

    The full inventory is published as an ``InventorySynced`` event."""


class SyncInventorySucceeded(Succeeded):
    """The zone was read; counts of what was found (the inventory is in ``InventorySynced``)."""

    hosts: int
    datastores: int
    networks: int
    vms: int


class GetVmSnapshotConfigs(AgentCommand):
    """Configuration of a VM as it was when the snapshot was taken (the spec's new agent command)."""

    vm_ref: Ref
    snapshot_ref: Ref


class GetVmSnapshotConfigsSucceeded(Succeeded):
    """vCPUs, cores per socket, memory, disks, NICs, memory-dump presence and guest OS at snapshot time."""

    vm_ref: str
    snapshot_ref: str
    config: VmSnapshotConfig


class CreateVmSnapshot(AgentCommand):
    """Take a vSphere snapshot of a VM (child of its current snapshot)."""

    vm_ref: Ref
    snapshot_id: Ref = Field(description="snapdeploy id of the snapshot; makes the command idempotent.")
    name: Name
    description: Description = ""
    memory: bool = False
    quiesce: bool = False


class CreateVmSnapshotSucceeded(Succeeded):
    """The snapshot exists."""

    vm_ref: str
    snapshot: SnapshotInfo


class RemoveVmSnapshot(AgentCommand):
    """Remove one vSphere snapshot (its children are kept). Removing a missing snapshot succeeds."""

    vm_ref: Ref
    snapshot_ref: Ref


class RemoveVmSnapshotSucceeded(Succeeded):
    """The snapshot is gone."""

    vm_ref: str
    snapshot_ref: str


class RevertToVmSnapshot(AgentCommand):
    """Put a VM back on one of its snapshots: its disks return to the snapshot, which becomes the
    VM's current snapshot (the next one taken is its child). Writes since are discarded."""

    vm_ref: Ref
    snapshot_ref: Ref


class RevertToVmSnapshotSucceeded(Succeeded):
    """The VM is on the snapshot; ``power_state`` is the VM's afterwards (a snapshot without
    memory state leaves it powered off)."""

    vm_ref: str
    snapshot_ref: str
    power_state: str


# -- seeding and cloning -------------------------------------------------------------------------


class SeedTemplate(AgentCommand):
    """Full copy of the root disk of a VM snapshot into a template on the same datastore.

    Data disks and memory state are ignored. The template gets a base snapshot
    (``cloud.template.base``) from which linked clones are made."""

    seed_id: Ref = Field(description="snapdeploy id of the seed (vm_snapshot_spool_ref uuid).")
    vm_ref: Ref
    snapshot_ref: Ref
    datastore: DatastoreName = Field(description="Datastore name; must hold the snapshot's root disk.")


class SeedTemplateSucceeded(Succeeded):
    """The seeded template is ready for linked clones."""

    seed_id: str
    template_ref: str
    template_name: str
    base_snapshot_ref: str
    disk_path: str
    size_bytes: int


class VmShape(BaseModel):
    """vCPUs, cores per socket, memory and CPU reservation of a VM (a service offering's shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_cpus: Vcpus
    cores_per_socket: Vcpus = 1
    memory_mb: MemoryMb
    cpu_mhz: Count | None = Field(default=None, description="CPU reservation, MHz (all vCPUs).")


class NicRequest(BaseModel):
    """A NIC on a port group; its snapdeploy id gives its MAC (so a repeated request finds it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nic_id: Ref
    network: Name = Field(description="Port group name.")
    adapter_type: Name = "vmxnet3"


class ClonedNic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nic_id: str
    device_key: int
    mac: str


class CloneFromSnapshot(AgentCommand):
    """Linked clone of a seeded template onto a chosen host and datastore; its NICs are those asked for."""

    vm_id: Ref = Field(description="snapdeploy id of the new instance.")
    vm_name: Name
    template_ref: Ref
    base_snapshot_ref: Ref
    host_ref: Ref
    datastore: DatastoreName
    shape: VmShape | None = Field(
        default=None,
        description="Made with this shape by the clone itself (no ReconfigVM_Task); else the snapshot's.",
    )
    nics: list[NicRequest] = Field(
        default_factory=list,
        max_length=10,  # vSphere: 10 NICs per VM
        description="Made with these NICs, in this order, by the clone itself (no ReconfigVM_Task each).",
    )
    power_on: bool = Field(
        default=False,
        description="Powered on by the clone itself (no PowerOnVM_Task); else left powered off.",
    )


class CloneFromSnapshotSucceeded(Succeeded):
    """The new VM exists with the NICs asked for (none unless asked), powered on when asked."""

    vm_id: str
    vm_ref: str
    vm_name: str
    root_disk: DiskConfig
    nics: list[ClonedNic] = Field(default_factory=list)
    powered_on: bool = False
    host_ref: str | None = Field(default=None, description="The host it is on (runs on, when powered on).")


class CopyVolumeFromSnapshot(AgentCommand):
    """Full copy of one disk of a VM snapshot into a standalone disk on the same datastore."""

    volume_id: Ref = Field(description="snapdeploy id of the new volume.")
    vm_ref: Ref
    snapshot_ref: Ref
    disk_key: DeviceKey


class CopyVolumeFromSnapshotSucceeded(Succeeded):
    """The standalone disk exists."""

    volume_id: str
    disk_path: str
    datastore: str
    size_bytes: int


class CreateDisk(AgentCommand):
    """An empty (thin) standalone disk of ``size_bytes`` on a datastore, named by the volume id.

    Idempotent: the disk ``[<datastore>] snapdeploy-volumes/<volume_id>.vmdk`` that exists already
    is the answer."""

    volume_id: Ref = Field(description="snapdeploy id of the new volume.")
    datastore: DatastoreName
    size_bytes: DiskBytes


class CreateDiskSucceeded(Succeeded):
    """The empty disk exists."""

    volume_id: str
    disk_path: str
    datastore: str
    size_bytes: int


# -- the rest of the lifecycle -----------------------------------------------------------------------


class ReconfigureVm(AgentCommand):
    """Set vCPUs, cores per socket, memory (and CPU reservation) of a VM."""

    vm_ref: Ref
    num_cpus: Vcpus
    cores_per_socket: Vcpus = 1
    memory_mb: MemoryMb
    cpu_mhz: Count | None = Field(default=None, description="CPU reservation, MHz (all vCPUs).")


class ReconfigureVmSucceeded(Succeeded):
    """The VM has the requested shape."""

    vm_ref: str


class AttachNic(AgentCommand):
    """Add a NIC on a port group; the NIC's snapdeploy id makes it idempotent."""

    vm_ref: Ref
    nic_id: Ref
    network: Name = Field(description="Port group name.")
    adapter_type: Name = "vmxnet3"
    mac: Mac | None = None


class AttachNicSucceeded(Succeeded):
    """The NIC is on the VM."""

    vm_ref: str
    nic_id: str
    device_key: int
    mac: str


class DetachNic(AgentCommand):
    """Remove a NIC (by MAC). Removing a missing NIC succeeds."""

    vm_ref: Ref
    nic_id: Ref
    mac: Mac


class DetachNicSucceeded(Succeeded):
    """The NIC is gone."""

    vm_ref: str
    nic_id: str


class PowerOnVm(AgentCommand):
    """Power a VM on (already on: success)."""

    vm_ref: Ref


class PowerOnVmSucceeded(Succeeded):
    """The VM is powered on."""

    vm_ref: str
    host_ref: str | None = None


class PowerOffVm(AgentCommand):
    """Power a VM off (already off: success)."""

    vm_ref: Ref


class PowerOffVmSucceeded(Succeeded):
    """The VM is powered off."""

    vm_ref: str


class DestroyVm(AgentCommand):
    """Power off and destroy a VM with its own disks. Destroying a missing VM succeeds."""

    vm_ref: Ref


class DestroyVmSucceeded(Succeeded):
    """The VM and its own files are gone."""

    vm_ref: str


class AttachDisk(AgentCommand):
    """Attach an existing disk file to a VM, at a unit number if given."""

    vm_ref: Ref
    disk_path: DatastorePath
    unit_number: DeviceKey | None = None


class AttachDiskSucceeded(Succeeded):
    """The disk is attached."""

    vm_ref: str
    disk: DiskConfig


class DetachDisk(AgentCommand):
    """Detach a disk from a VM and keep its file."""

    vm_ref: Ref
    disk_path: DatastorePath


class DetachDiskSucceeded(Succeeded):
    """The disk is detached; its file is kept."""

    vm_ref: str
    disk_path: str


class ExtendDisk(AgentCommand):
    """Grow a disk to a new size (never shrink)."""

    disk_path: DatastorePath
    size_bytes: DiskBytes
    vm_ref: Ref | None = Field(default=None, description="The VM the disk is attached to, if any.")


class ExtendDiskSucceeded(Succeeded):
    """The disk has the new size."""

    disk_path: str
    size_bytes: int


class DeleteDisk(AgentCommand):
    """Delete a standalone disk file. Deleting a missing disk succeeds."""

    disk_path: DatastorePath


class DeleteDiskSucceeded(Succeeded):
    """The disk file is gone."""

    disk_path: str


class DeleteTemplate(AgentCommand):
    """Delete a seeded template and its disk. Deleting a missing template succeeds."""

    template_ref: Ref


class DeleteTemplateSucceeded(Succeeded):
    """The template is gone."""

    template_ref: str
