"""VM snapshots: the configuration at a snapshot, taking one, removing one."""

from __future__ import annotations

import contextlib
from typing import Any

from contracts.vsphere import SnapshotInfo, VmSnapshotConfig
from services.hypervisor_agent.vsphere import devices, inventory, props
from services.hypervisor_agent.vsphere.faults import FileMissing
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import Deadline, Report, run_task, running_tasks, wait_quietly

SNAPSHOT_CONFIG_PROPS = [
    "config.hardware.numCPU",
    "config.hardware.numCoresPerSocket",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.guestId",
    "config.bootOptions",
]


def snapshot_config(session: VsphereSession, vm_ref: str, snapshot_ref: str) -> tuple[dict, Any]:
    """The snapshot's configuration properties and tree node; FileMissing when VM or snapshot is gone.

    A snapshot's configuration never changes: it is read once (read-only for callers).
    """
    return session.remember(
        ("snapshot", vm_ref, snapshot_ref), lambda: _read_config(session, vm_ref, snapshot_ref)
    )


def _read_config(session: VsphereSession, vm_ref: str, snapshot_ref: str) -> tuple[dict, Any]:
    vm = inventory.vm_by_ref(session, vm_ref)
    found = inventory.snapshot_by_ref(session, vm, snapshot_ref)
    if found is None:
        raise FileMissing(f"snapshot {snapshot_ref} of VM {vm_ref} not found", fault="NotFound")
    snapshot, node = found
    values = session.call(lambda si: props.fetch(session.content, snapshot, SNAPSHOT_CONFIG_PROPS))
    if values is None:
        raise FileMissing(f"snapshot {snapshot_ref} of VM {vm_ref} not found", fault="NotFound")
    return values, node


def get_snapshot_config(session: VsphereSession, vm_ref: str, snapshot_ref: str) -> VmSnapshotConfig:
    """vCPUs, memory, guest OS, disks (their files as at the snapshot) and NICs when the snapshot was taken.

    ``has_memory_dump`` follows the snapshot tree node's ``state``: see ``inventory.snapshot_has_memory``.
    """
    values, node = snapshot_config(session, vm_ref, snapshot_ref)
    device_list = list(values.get("config.hardware.device") or [])
    nics = devices.nics(device_list)
    # Distributed port groups are named by key in the backing; look names up only if needed.
    names = (
        inventory.network_names(session)
        if any(n.backing and not hasattr(n.backing, "deviceName") for n in nics)
        else {}
    )
    return VmSnapshotConfig(
        num_cpus=values.get("config.hardware.numCPU") or 1,
        cores_per_socket=values.get("config.hardware.numCoresPerSocket") or 1,
        memory_mb=values.get("config.hardware.memoryMB") or 1,
        guest_id=values.get("config.guestId") or "otherGuest",
        disks=devices.disk_configs(device_list, devices.boot_disk_keys(values.get("config.bootOptions"))),
        nics=[devices.nic_config(n, names) for n in nics],
        has_memory_dump=inventory.snapshot_has_memory(node),
    )


def create_snapshot(
    session: VsphereSession,
    vm_ref: str,
    *,
    snapshot_id: str,
    name: str,
    description: str = "",
    memory: bool = False,
    quiesce: bool = False,
    report: Report,
    timeout: float,
) -> SnapshotInfo:
    """Take a snapshot (child of the current one) marked with ``snapdeploy:<snapshot_id>`` in its description.

    Idempotent: a snapshot with the marker is returned as it is; a CreateSnapshot task still
    running on the VM (a previous delivery's) is waited for first.
    """
    deadline = Deadline(timeout)
    vm = inventory.vm_by_ref(session, vm_ref)
    if (existing := _snapshot_with_id(session, vm, snapshot_id)) is not None:
        return existing
    if in_flight := running_tasks(session, vm, "CreateSnapshot_Task"):
        wait_quietly(session, in_flight, timeout=deadline.left())
        if (existing := _snapshot_with_id(session, vm, snapshot_id)) is not None:
            return existing
    run_task(
        session,
        lambda si: vm.CreateSnapshot_Task(
            name=name,
            description=inventory.snapshot_description(description, snapshot_id),
            memory=memory,
            quiesce=quiesce,
        ),
        timeout=deadline.left(),
        report=report,
        name="CreateSnapshot_Task",
        entity=vm,
    )
    created = _snapshot_with_id(session, vm, snapshot_id)
    if created is None:  # the task succeeded, so only a concurrent removal gets here
        raise FileMissing(f"snapshot {name!r} of VM {vm_ref} vanished after it was taken", fault="NotFound")
    return created


def remove_snapshot(
    session: VsphereSession, vm_ref: str, snapshot_ref: str, *, report: Report, timeout: float
) -> None:
    """Remove one snapshot and keep its children (their disks are consolidated). A missing one is fine."""
    vm = inventory.vm_by_ref(session, vm_ref)
    found = inventory.snapshot_by_ref(session, vm, snapshot_ref)
    if found is None:
        return
    snapshot, _ = found
    session.forget(("snapshot", vm_ref, snapshot_ref))
    with contextlib.suppress(FileMissing):  # removed meanwhile by someone else
        run_task(
            session,
            lambda si: snapshot.RemoveSnapshot_Task(removeChildren=False, consolidate=True),
            timeout=timeout,
            report=report,
            name="RemoveSnapshot_Task",
            entity=vm,
        )


def revert_to_snapshot(
    session: VsphereSession, vm_ref: str, snapshot_ref: str, *, report: Report, timeout: float
) -> str:
    """Put the VM back on the snapshot (its disks as they were then; it becomes the current one).

    Returns the VM's power state afterwards: vSphere powers a VM off when it goes back to a
    snapshot without memory state. Reverting again discards what was written since."""
    vm = inventory.vm_by_ref(session, vm_ref)
    found = inventory.snapshot_by_ref(session, vm, snapshot_ref)
    if found is None:
        raise FileMissing(f"snapshot {snapshot_ref} of VM {vm_ref} not found", fault="NotFound")
    snapshot, _ = found
    run_task(
        session,
        lambda si: snapshot.RevertToSnapshot_Task(),
        timeout=timeout,
        report=report,
        name="RevertToSnapshot_Task",
        entity=vm,
    )
    return str(inventory.require_vm(session, vm, ["runtime.powerState"])["runtime.powerState"])


def _snapshot_with_id(session: VsphereSession, vm: Any, snapshot_id: str) -> SnapshotInfo | None:
    values = inventory.require_vm(session, vm, ["snapshot"])
    snapshots = inventory.snapshot_infos(values.get("snapshot"))
    return next((s for s in snapshots if s.snapdeploy_id == snapshot_id), None)
