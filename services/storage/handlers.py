"""Storage handlers, by message type; the registry is at the end.

Commands of the storage catalogue, the agent's replies to the commands storage sends (they
come back on ``storage.replies``), the facts storage projects (inventory, VMs, VM snapshots)
and the queries it answers.
"""

from __future__ import annotations

import functools

from contracts import agent
from contracts import storage as cmd
from contracts.catalogue import failed_reply
from contracts.events import BusPrincipalChanged, InventorySynced
from services.storage import projection, queries, reconcile, scavenger, seeding, vm_volumes, volumes
from services.storage.common import Storage
from shared.identity import bus_principal_changed
from shared.messaging import Handlers

# Handlers that need the storage settings.
WITH_SETTINGS = {
    cmd.SeedTemplateFromVmSnapshot: seeding.seed_template_from_vm_snapshot,
    cmd.CreateVolumeFromVmSnapshot: volumes.create_volume_from_vm_snapshot,
    cmd.CreateVolume: volumes.create_volume,
    cmd.AttachVolume: volumes.attach_volume,
    cmd.DetachVolume: volumes.detach_volume,
    cmd.ResizeVolume: volumes.resize_volume,
    cmd.DeleteVolume: volumes.delete_volume,
    cmd.AllocateRootVolume: vm_volumes.allocate_root_volume,
    cmd.DestroyVmVolumes: vm_volumes.destroy_vm_volumes,
    cmd.ListStoragePools: queries.list_storage_pools,
    cmd.ListVolumes: queries.list_volumes,
    cmd.ListSeeds: queries.list_seeds,
    cmd.ListTemplates: queries.list_templates,
    cmd.ListDiskOfferings: queries.list_disk_offerings,
    cmd.CreateDiskOffering: vm_volumes.create_disk_offering,
    InventorySynced: reconcile.inventory_synced,
}

PLAIN = {
    agent.SeedTemplateSucceeded: seeding.seed_template_succeeded,
    failed_reply(agent.SeedTemplate): seeding.seed_template_failed,
    agent.CopyVolumeFromSnapshotSucceeded: volumes.copy_volume_succeeded,
    failed_reply(agent.CopyVolumeFromSnapshot): volumes.copy_volume_failed,
    agent.CreateDiskSucceeded: volumes.create_disk_succeeded,
    failed_reply(agent.CreateDisk): volumes.create_disk_failed,
    agent.AttachDiskSucceeded: volumes.attach_disk_succeeded,
    failed_reply(agent.AttachDisk): volumes.attach_disk_failed,
    agent.DetachDiskSucceeded: volumes.detach_disk_succeeded,
    failed_reply(agent.DetachDisk): volumes.detach_disk_failed,
    agent.ExtendDiskSucceeded: volumes.extend_disk_succeeded,
    failed_reply(agent.ExtendDisk): volumes.extend_disk_failed,
    agent.DeleteDiskSucceeded: scavenger.delete_disk_succeeded,
    failed_reply(agent.DeleteDisk): scavenger.delete_disk_failed,
    agent.DeleteTemplateSucceeded: scavenger.delete_template_succeeded,
    failed_reply(agent.DeleteTemplate): scavenger.delete_template_failed,
    BusPrincipalChanged: bus_principal_changed,
    cmd.RecordVirtualMachine: projection.record_virtual_machine,
    cmd.RecordVmSnapshot: projection.record_vm_snapshot,
    cmd.ForgetVmSnapshot: projection.forget_vm_snapshot,
}


def handlers(storage: Storage) -> Handlers:
    bound = {
        message: functools.partial(handler, storage=storage) for message, handler in WITH_SETTINGS.items()
    }
    return {**bound, **PLAIN}
