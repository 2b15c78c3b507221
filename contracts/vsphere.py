"""Value objects describing vSphere things, shared by agent commands and events."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.types import INT64_MAX, DatastoreName, DatastorePath, DeviceKey, Name


class Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiskConfig(Value):
    """One virtual disk as configured (at snapshot time, or now)."""

    key: DeviceKey = Field(description="vSphere device key.")
    file: DatastorePath = Field(description="Datastore path, e.g. '[ds1] src-vm/src-vm.vmdk'.")
    datastore: DatastoreName
    size_bytes: int = Field(ge=0, le=INT64_MAX)
    controller_key: DeviceKey
    controller_type: Name = Field(description="e.g. 'scsi', 'ide', 'sata', 'nvme'.")
    unit_number: DeviceKey
    parent_file: DatastorePath | None = Field(
        default=None, description="Parent disk of a child (linked) disk."
    )
    boot_order: int | None = Field(
        default=None,
        ge=0,
        le=1023,
        description="Place of this disk in the VM's configured boot order, when it is listed.",
    )


# The order in which a VM's BIOS tries hard disks when no boot order is configured: the IDE
# disks it drives itself, then SATA (AHCI), then the option ROMs of SCSI adapters, NVMe last.
# Adding a SATA disk to a VM that boots from SCSI changes which disk it boots from; a SCSI
# disk added to an NVMe-booted VM does the same. Within a kind: the controller's bus number
# (vSphere numbers controller keys by bus: IDE 200/201, SCSI 1000+, SATA 15000+, NVMe 31000+),
# then the unit on it.
BOOT_ORDER = ("ide", "sata", "scsi", "nvme")


def boot_position(disk: DiskConfig) -> tuple[int, int, int]:
    kind = disk.controller_type if disk.controller_type in BOOT_ORDER else None
    rank = BOOT_ORDER.index(kind) if kind else len(BOOT_ORDER)
    return rank, disk.controller_key, disk.unit_number


def root_disk(disks: list[DiskConfig]) -> DiskConfig:
    """A VM's root disk: the first disk of its configured boot order (vSphere's
    ``bootOptions.bootOrder``: listed devices first, then the BIOS's default), else the one its
    BIOS boots from by default (``BOOT_ORDER``).

    The one rule for every service: the planner sizes the root volume by it, storage seeds it,
    and the agent finds the clone's root disk with it."""
    listed = [disk for disk in disks if disk.boot_order is not None]
    if listed:
        return min(listed, key=lambda disk: disk.boot_order)
    return min(disks, key=boot_position)


class NicConfig(Value):
    key: int
    network: str = Field(description="Port group name.")
    mac: str | None = None
    adapter_type: str = Field(description="e.g. 'vmxnet3', 'e1000'.")


class VmSnapshotConfig(Value):
    """The VM's configuration as it was when the snapshot was taken."""

    num_cpus: int = Field(ge=1)
    cores_per_socket: int = Field(ge=1)
    memory_mb: int = Field(ge=1)
    guest_id: str
    disks: list[DiskConfig]
    nics: list[NicConfig]
    has_memory_dump: bool


class SnapshotInfo(Value):
    ref: str = Field(description="Managed object id of the VirtualMachineSnapshot.")
    name: str
    description: str = ""
    parent_ref: str | None
    created: datetime
    has_memory: bool
    snapdeploy_id: str | None = None


class HostInfo(Value):
    ref: str
    name: str
    cluster: str | None
    state: Literal["Up", "Down", "Maintenance"]
    cpu_cores: int
    cpu_mhz_total: int
    memory_bytes: int
    datastores: list[str] = Field(description="Refs of the datastores this host reaches.")
    networks: list[str] = Field(description="Port group names this host has.")


class DatastoreInfo(Value):
    ref: str
    name: str
    type: str = "VMFS"
    capacity_bytes: int
    free_bytes: int
    hosts: list[str]


class NetworkInfo(Value):
    ref: str
    name: str
    hosts: list[str]


class VmInfo(Value):
    ref: str
    name: str
    instance_uuid: str | None
    host: str | None
    datastores: list[str]
    power_state: Literal["poweredOn", "poweredOff", "suspended"]
    template: bool
    guest_id: str | None
    num_cpus: int
    memory_mb: int
    snapdeploy_id: str | None = Field(
        default=None, description="extraConfig snapdeploy.id, when snapdeploy made it."
    )
    disks: list[DiskConfig]
    nics: list[NicConfig]
    snapshots: list[SnapshotInfo] = Field(description="The snapshot tree, parents before children.")
    current_snapshot_ref: str | None = None
