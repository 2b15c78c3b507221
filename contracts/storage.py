"""Commands of the storage service: seeded templates, volumes from VM snapshots, volume rules."""

from __future__ import annotations

import uuid

from pydantic import Field

from contracts.base import Command, Succeeded


class StorageCommand(Command):
    service = "storage"


class SeedTemplateFromVmSnapshot(StorageCommand):
    """Seed a template from a VM snapshot on the pool that holds it (one seeding per pair at a time)."""

    zone_id: str
    vm_snapshot_id: uuid.UUID
    storage_id: uuid.UUID


class SeedTemplateFromVmSnapshotSucceeded(Succeeded):
    """The seed is Ready."""

    seed_id: uuid.UUID
    vm_snapshot_id: uuid.UUID
    storage_id: uuid.UUID
    install_path: str
    template_size: int


class CreateVolumeFromVmSnapshot(StorageCommand):
    """A standalone volume with the contents of one disk of a VM snapshot, on the same pool."""

    new_volume_id: uuid.UUID = Field(description="Id the new volume will have (idempotency key).")
    vm_snapshot_id: uuid.UUID
    volume_id: uuid.UUID = Field(description="A volume of the snapshot's VM.")
    name: str
    disk_offering_id: uuid.UUID | None = None
    zone_id: str | None = None


class CreateVolumeFromVmSnapshotSucceeded(Succeeded):
    """The volume is Ready."""

    volume_id: uuid.UUID
    size_bytes: int
    storage_id: uuid.UUID


class AttachVolume(StorageCommand):
    """Attach a volume to a VM at a device position (refused while the VM has VM snapshots)."""

    volume_id: uuid.UUID
    vm_id: uuid.UUID
    device_id: int | None = None


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
    size_bytes: int = Field(gt=0)


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
