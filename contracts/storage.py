"""Commands of the storage service: seeded templates, volumes from VM snapshots, volume rules."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Command, Query, QueryResult, Succeeded
from contracts.types import DeviceId, DiskBytes, Name, Ref, State, ZoneId
from contracts.vsphere import DiskConfig


class StorageCommand(Command):
    service = "storage"


_POOL_IDS = uuid.UUID("3a0e6f2c-55d1-4b8e-9c71-2f4d8e6b1a07")


def pool_id(zone_id: str, datastore: str) -> uuid.UUID:
    """A pool's id: derived from its zone and datastore name, so every service names it alike."""
    return uuid.uuid5(_POOL_IDS, f"{zone_id}/{datastore}")


class RootVolumeOnSeed(BaseModel):
    """The root volume of a VM to be cloned from the seed: allocated with the seeding request."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume_id: uuid.UUID
    vm_id: uuid.UUID
    name: Name
    size_bytes: DiskBytes
    template_id: uuid.UUID | None = None
    disk_offering_id: uuid.UUID | None = None


class SeedTemplateFromVmSnapshot(StorageCommand):
    """Seed a template from a VM snapshot on the pool that holds it (one seeding per pair at a time).

    With ``root_volume``, the request also reserves and records that root volume on the seed (as
    ``AllocateRootVolume`` would), in the same transaction: a deployment needs no second round
    trip. A refused request allocates nothing; a seeding that fails takes the volume with it."""

    zone_id: ZoneId
    vm_snapshot_id: uuid.UUID
    storage_id: uuid.UUID
    root_volume: RootVolumeOnSeed | None = None


class SeedTemplateFromVmSnapshotSucceeded(Succeeded):
    """The seed is Ready; linked clones are made from its template's base snapshot."""

    seed_id: uuid.UUID
    vm_snapshot_id: uuid.UUID
    storage_id: uuid.UUID
    install_path: str
    template_size: int
    template_ref: str
    base_snapshot_ref: str


class CreateVolumeFromVmSnapshot(StorageCommand):
    """A standalone volume with the contents of one disk of a VM snapshot, on the same pool."""

    new_volume_id: uuid.UUID = Field(description="Id the new volume will have (idempotency key).")
    vm_snapshot_id: uuid.UUID
    volume_id: uuid.UUID = Field(description="A volume of the snapshot's VM.")
    name: Name
    disk_offering_id: uuid.UUID | None = None
    zone_id: ZoneId | None = None


class CreateVolumeFromVmSnapshotSucceeded(Succeeded):
    """The volume is Ready."""

    volume_id: uuid.UUID
    size_bytes: int
    storage_id: uuid.UUID


class AttachVolume(StorageCommand):
    """Attach a volume to a VM at a device position (refused while the VM has VM snapshots)."""

    volume_id: uuid.UUID
    vm_id: uuid.UUID
    device_id: DeviceId | None = None


class AttachVolumeSucceeded(Succeeded):
    """The volume is attached."""

    volume_id: uuid.UUID
    vm_id: uuid.UUID
    device_id: int


class DetachVolume(StorageCommand):
    """Detach a data volume from its VM (refused while the VM has VM snapshots)."""

    volume_id: uuid.UUID


class DetachVolumeSucceeded(Succeeded):
    """The volume is detached."""

    volume_id: uuid.UUID


class ResizeVolume(StorageCommand):
    """Grow a volume (refused while its VM has VM snapshots)."""

    volume_id: uuid.UUID
    size_bytes: DiskBytes


class ResizeVolumeSucceeded(Succeeded):
    """The volume has the new size."""

    volume_id: uuid.UUID
    size_bytes: int


class DeleteVolume(StorageCommand):
    """Delete a detached volume; its disk is removed by the scavenger."""

    volume_id: uuid.UUID


class DeleteVolumeSucceeded(Succeeded):
    """The volume is marked Destroy."""

    volume_id: uuid.UUID


# -- what storage is told about VMs and their snapshots (by the planner) ---------------------------


class VmVolume(BaseModel):
    """One disk of a VM as a volume: its snapdeploy id and where it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    volume_id: uuid.UUID
    type: Literal["ROOT", "DATADISK"]
    disk: DiskConfig
    disk_offering_id: uuid.UUID | None = None
    template_id: uuid.UUID | None = None
    iso_id: uuid.UUID | None = None


class RecordVirtualMachine(StorageCommand):
    """A VM now belongs to an account (adopted from vCenter, or deployed): record its disks as volumes.

    Idempotent; volumes already recorded are kept as they are."""

    vm_id: uuid.UUID
    account_id: uuid.UUID
    zone_id: ZoneId
    vm_ref: Ref
    name: Name
    hypervisor: Name = "VMware"
    volumes: list[VmVolume] = Field(max_length=64)


class RecordVirtualMachineSucceeded(Succeeded):
    """Storage knows the VM and its volumes."""

    vm_id: uuid.UUID
    volume_ids: list[uuid.UUID]


class RecordVmSnapshot(StorageCommand):
    """A VM snapshot exists, with its disks as they were at the snapshot (their files hold those bytes).

    Sent before any seeding or volume creation from it, so storage always knows the snapshot first."""

    vm_snapshot_id: uuid.UUID
    vm_id: uuid.UUID
    account_id: uuid.UUID
    zone_id: ZoneId
    vm_ref: Ref
    snapshot_ref: Ref
    name: Name
    hypervisor: Name = "VMware"
    disks: list[DiskConfig] = Field(max_length=64)


class RecordVmSnapshotSucceeded(Succeeded):
    """Storage knows the VM snapshot."""

    vm_snapshot_id: uuid.UUID


class ForgetVmSnapshot(StorageCommand):
    """The VM snapshot is gone: its seeds are collected once no linked clone hangs from them."""

    vm_snapshot_id: uuid.UUID


class ForgetVmSnapshotSucceeded(Succeeded):
    """The VM snapshot is forgotten; its seeds are marked for collection."""

    vm_snapshot_id: uuid.UUID
    seeds_marked: int


class AllocateRootVolume(StorageCommand):
    """Reserve and record the root volume of a VM being deployed (a linked clone counts its virtual size).

    The volume stays Creating until ``RecordVirtualMachine`` names its disk."""

    volume_id: uuid.UUID
    vm_id: uuid.UUID
    name: Name
    zone_id: ZoneId
    storage_id: uuid.UUID
    size_bytes: DiskBytes
    seed_id: uuid.UUID | None = None
    template_id: uuid.UUID | None = None
    iso_id: uuid.UUID | None = None
    disk_offering_id: uuid.UUID | None = None


class AllocateRootVolumeSucceeded(Succeeded):
    """The root volume is reserved."""

    volume_id: uuid.UUID


class DestroyVmVolumes(StorageCommand):
    """The VM is gone: its root volume goes to Destroy (the scavenger expunges it), its data volumes
    are detached."""

    vm_id: uuid.UUID


class DestroyVmVolumesSucceeded(Succeeded):
    """Root volume marked Destroy, data volumes detached."""

    vm_id: uuid.UUID
    destroyed: list[uuid.UUID]
    detached: list[uuid.UUID]


class CreateDiskOffering(StorageCommand):
    """Admin: a disk offering (a volume size, or custom when ``size_bytes`` is not set)."""

    offering_id: uuid.UUID
    name: Name
    size_bytes: DiskBytes | None = None


class CreateDiskOfferingSucceeded(Succeeded):
    """The disk offering exists."""

    offering_id: uuid.UUID


# -- queries -----------------------------------------------------------------------------------------


class StoragePool(BaseModel):
    """A primary storage pool (one datastore) with its capacity figures, in bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    zone_id: str
    capacity_bytes: int
    free_bytes: int = Field(description="Free space vCenter reports.")
    allocated_bytes: int = Field(description="Seeds (full size), volumes and reservations snapdeploy counts.")
    allocation_limit_bytes: int = Field(description="capacity x over-provisioning factor.")
    hosts: list[str]


class Volume(BaseModel):
    """A volume as the storage service knows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    type: str
    state: str
    size_bytes: int
    pool_id: uuid.UUID
    vm_id: uuid.UUID | None
    device_id: int | None
    disk_path: str | None
    disk_offering_id: uuid.UUID | None
    template_id: uuid.UUID | None
    source_vm_snapshot_id: uuid.UUID | None
    reason: str | None
    account_id: uuid.UUID | None = Field(
        default=None, description="Owner: the account of its VM, or of the VM snapshot it was made from."
    )
    device_key: int | None = Field(default=None, description="vSphere device key of its disk on the VM.")


class Seed(BaseModel):
    """A template seeded from a VM snapshot on a pool (a vm_snapshot_spool_ref row)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    vm_snapshot_id: uuid.UUID
    pool_id: uuid.UUID
    state: str
    status: str | None
    install_path: str | None
    template_ref: str | None
    base_snapshot_ref: str | None
    template_size: int
    marked_for_gc: bool
    created: datetime | None = None


class ListStoragePools(Query):
    """Pools of a zone (or all), with capacity figures."""

    service = "storage"

    zone_id: ZoneId | None = None
    id: uuid.UUID | None = None


class ListStoragePoolsResult(QueryResult):
    """The pools."""

    pools: list[StoragePool]


class ListVolumes(Query):
    """Volumes, filtered by id, VM or state."""

    service = "storage"

    id: uuid.UUID | None = None
    vm_id: uuid.UUID | None = None
    state: State | None = None
    account_id: uuid.UUID | None = None


class ListVolumesResult(QueryResult):
    """The volumes."""

    volumes: list[Volume]


class ListSeeds(Query):
    """Seeded templates, filtered by VM snapshot or pool."""

    service = "storage"

    vm_snapshot_id: uuid.UUID | None = None
    pool_id: uuid.UUID | None = None


class ListSeedsResult(QueryResult):
    """The seeds."""

    seeds: list[Seed]


class DiskOffering(BaseModel):
    """A disk offering."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    size_bytes: int | None


class ListDiskOfferings(Query):
    """Disk offerings."""

    service = "storage"


class ListDiskOfferingsResult(QueryResult):
    """The disk offerings."""

    offerings: list[DiskOffering]


class Template(BaseModel):
    """A template VM found in vCenter, on its pool; deployments linked-clone it from its base snapshot."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: uuid.UUID
    name: str
    zone_id: str
    pool_id: uuid.UUID
    size_bytes: int
    deployable: bool = Field(description="It has a base snapshot to link clones from.")


class ListTemplates(Query):
    """Templates of a zone (or all)."""

    service = "storage"

    zone_id: ZoneId | None = None


class ListTemplatesResult(QueryResult):
    """The templates."""

    templates: list[Template]
