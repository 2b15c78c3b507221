"""Commands of the hypervisor agent (one zone = one vCenter datacenter) and their replies.

The agent is the only code that talks to vCenter. Every command is idempotent: the agent
names what it creates deterministically and stores the snapdeploy id in ``extraConfig``.
"""

from __future__ import annotations

from pydantic import Field

from contracts.base import AgentCommand, Succeeded
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

    vm_ref: str
    snapshot_ref: str


class GetVmSnapshotConfigsSucceeded(Succeeded):
    """vCPUs, cores per socket, memory, disks, NICs, memory-dump presence and guest OS at snapshot time."""

    vm_ref: str
    snapshot_ref: str
    config: VmSnapshotConfig


class CreateVmSnapshot(AgentCommand):
    """Take a vSphere snapshot of a VM (child of its current snapshot)."""

    vm_ref: str
    snapshot_id: str = Field(description="snapdeploy id of the snapshot; makes the command idempotent.")
    name: str
    description: str = ""
    memory: bool = False
    quiesce: bool = False


class CreateVmSnapshotSucceeded(Succeeded):
    """The snapshot exists."""

    vm_ref: str
    snapshot: SnapshotInfo


class RemoveVmSnapshot(AgentCommand):
    """Remove one vSphere snapshot (its children are kept). Removing a missing snapshot succeeds."""

    vm_ref: str
    snapshot_ref: str


class RemoveVmSnapshotSucceeded(Succeeded):
    """The snapshot is gone."""

    vm_ref: str
    snapshot_ref: str


class RevertToVmSnapshot(AgentCommand):
    """Put a VM back on one of its snapshots: its disks return to the snapshot, which becomes the
    VM's current snapshot (the next one taken is its child). Writes since are discarded."""

    vm_ref: str
    snapshot_ref: str


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

    seed_id: str = Field(description="snapdeploy id of the seed (vm_snapshot_spool_ref uuid).")
    vm_ref: str
    snapshot_ref: str
    datastore: str = Field(description="Datastore name; must hold the snapshot's root disk.")


class SeedTemplateSucceeded(Succeeded):
    """The seeded template is ready for linked clones."""

    seed_id: str
    template_ref: str
    template_name: str
    base_snapshot_ref: str
    disk_path: str
    size_bytes: int


class CloneFromSnapshot(AgentCommand):
    """Linked clone of a seeded template onto a chosen host and datastore, NICs stripped."""

    vm_id: str = Field(description="snapdeploy id of the new instance.")
    vm_name: str
    template_ref: str
    base_snapshot_ref: str
    host_ref: str
    datastore: str


class CloneFromSnapshotSucceeded(Succeeded):
    """The new VM exists, powered off, without NICs."""

    vm_id: str
    vm_ref: str
    vm_name: str
    root_disk: DiskConfig


class CopyVolumeFromSnapshot(AgentCommand):
    """Full copy of one disk of a VM snapshot into a standalone disk on the same datastore."""

    volume_id: str = Field(description="snapdeploy id of the new volume.")
    vm_ref: str
    snapshot_ref: str
    disk_key: int


class CopyVolumeFromSnapshotSucceeded(Succeeded):
    """The standalone disk exists."""

    volume_id: str
    disk_path: str
    datastore: str
    size_bytes: int


# -- the rest of the lifecycle -----------------------------------------------------------------------


class ReconfigureVm(AgentCommand):
    """Set vCPUs, cores per socket, memory (and CPU reservation) of a VM."""

    vm_ref: str
    num_cpus: int = Field(ge=1)
    cores_per_socket: int = Field(default=1, ge=1)
    memory_mb: int = Field(ge=1)
    cpu_mhz: int | None = None


class ReconfigureVmSucceeded(Succeeded):
    """The VM has the requested shape."""

    vm_ref: str


class AttachNic(AgentCommand):
    """Add a NIC on a port group; the NIC's snapdeploy id makes it idempotent."""

    vm_ref: str
    nic_id: str
    network: str = Field(description="Port group name.")
    adapter_type: str = "vmxnet3"
    mac: str | None = None


class AttachNicSucceeded(Succeeded):
    """The NIC is on the VM."""

    vm_ref: str
    nic_id: str
    device_key: int
    mac: str


class DetachNic(AgentCommand):
    """Remove a NIC (by MAC). Removing a missing NIC succeeds."""

    vm_ref: str
    nic_id: str
    mac: str


class DetachNicSucceeded(Succeeded):
    """The NIC is gone."""

    vm_ref: str
    nic_id: str


class PowerOnVm(AgentCommand):
    """Power a VM on (already on: success)."""

    vm_ref: str


class PowerOnVmSucceeded(Succeeded):
    """The VM is powered on."""

    vm_ref: str
    host_ref: str | None = None


class PowerOffVm(AgentCommand):
    """Power a VM off (already off: success)."""

    vm_ref: str


class PowerOffVmSucceeded(Succeeded):
    """The VM is powered off."""

    vm_ref: str


class DestroyVm(AgentCommand):
    """Power off and destroy a VM with its own disks. Destroying a missing VM succeeds."""

    vm_ref: str


class DestroyVmSucceeded(Succeeded):
    """The VM and its own files are gone."""

    vm_ref: str


class AttachDisk(AgentCommand):
    """Attach an existing disk file to a VM, at a unit number if given."""

    vm_ref: str
    disk_path: str
    unit_number: int | None = None


class AttachDiskSucceeded(Succeeded):
    """The disk is attached."""

    vm_ref: str
    disk: DiskConfig


class DetachDisk(AgentCommand):
    """Detach a disk from a VM and keep its file."""

    vm_ref: str
    disk_path: str


class DetachDiskSucceeded(Succeeded):
    """The disk is detached; its file is kept."""

    vm_ref: str
    disk_path: str


class ExtendDisk(AgentCommand):
    """Grow a disk to a new size (never shrink)."""

    disk_path: str
    size_bytes: int = Field(gt=0)
    vm_ref: str | None = Field(default=None, description="The VM the disk is attached to, if any.")


class ExtendDiskSucceeded(Succeeded):
    """The disk has the new size."""

    disk_path: str
    size_bytes: int


class DeleteDisk(AgentCommand):
    """Delete a standalone disk file. Deleting a missing disk succeeds."""

    disk_path: str


class DeleteDiskSucceeded(Succeeded):
    """The disk file is gone."""

    disk_path: str


class DeleteTemplate(AgentCommand):
    """Delete a seeded template and its disk. Deleting a missing template succeeds."""

    template_ref: str


class DeleteTemplateSucceeded(Succeeded):
    """The template is gone."""

    template_ref: str
