"""The vCenter operations the agent's handlers call, one per command.

Every operation is a blocking function (run it in the worker pool), takes the session first
and ``report`` / ``timeout`` keywords, reports every vCenter task it runs, raises only
``VsphereError``, is idempotent (deterministic names, ``snapdeploy.id`` in extraConfig), and
removes what it half-made before raising.
"""

from contracts.events import InventorySynced
from services.hypervisor_agent.vsphere import inventory
from services.hypervisor_agent.vsphere.clone_ops import CloneResult, clone_from_snapshot
from services.hypervisor_agent.vsphere.disk_ops import (
    DiskCreateResult,
    VolumeCopyResult,
    attach_disk,
    copy_volume_from_snapshot,
    create_disk,
    delete_disk,
    detach_disk,
    extend_disk,
    volume_disks,
)
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.snapshot_ops import (
    create_snapshot,
    get_snapshot_config,
    remove_snapshot,
    revert_to_snapshot,
)
from services.hypervisor_agent.vsphere.template_ops import SeedResult, delete_template, seed_template
from services.hypervisor_agent.vsphere.vm_ops import (
    attach_nic,
    destroy_vm,
    detach_nic,
    power_off,
    power_on,
    reconfigure_vm,
)

# Listing the volume folders is a few datastore searches; a sync must not wait longer on them.
VOLUME_LISTING_TIMEOUT = 60.0


def read_inventory(session: VsphereSession, zone_id: str) -> InventorySynced:
    """The zone's inventory with the disks of snapdeploy's volume folders (what reconciliation compares)."""
    found = inventory.read_inventory(session, zone_id)
    disks = volume_disks(session, [ds.name for ds in found.datastores], timeout=VOLUME_LISTING_TIMEOUT)
    return found.model_copy(update={"volume_disks": disks})


__all__ = [
    "CloneResult",
    "DiskCreateResult",
    "SeedResult",
    "VolumeCopyResult",
    "attach_disk",
    "attach_nic",
    "clone_from_snapshot",
    "copy_volume_from_snapshot",
    "create_disk",
    "create_snapshot",
    "delete_disk",
    "delete_template",
    "destroy_vm",
    "detach_disk",
    "detach_nic",
    "extend_disk",
    "get_snapshot_config",
    "power_off",
    "power_on",
    "read_inventory",
    "reconfigure_vm",
    "remove_snapshot",
    "revert_to_snapshot",
    "seed_template",
]
