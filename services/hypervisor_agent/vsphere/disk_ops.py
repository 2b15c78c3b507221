"""Standalone disks: making an empty one, copying one out of a snapshot, attaching, detaching,
growing, deleting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from contracts.vsphere import DiskConfig
from services.hypervisor_agent.vsphere import datastore as files
from services.hypervisor_agent.vsphere import devices, inventory, vm_ops
from services.hypervisor_agent.vsphere.faults import (
    DuplicateName,
    FileMissing,
    InvalidRequest,
    TaskTimeout,
    VsphereError,
)
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.snapshot_ops import snapshot_config
from services.hypervisor_agent.vsphere.tasks import Deadline, Report, run_task

VOLUME_FOLDER = "snapdeploy-volumes"
# SCSI unit 7 is the controller's own; a (non-paravirtual) SCSI bus has units 0-15.
_SCSI_UNITS = [u for u in range(16) if u != 7]


@dataclass(frozen=True)
class VolumeCopyResult:
    disk_path: str
    datastore: str
    size_bytes: int


def copy_volume_from_snapshot(
    session: VsphereSession,
    *,
    volume_id: str,
    vm_ref: str,
    snapshot_ref: str,
    disk_key: int,
    report: Report,
    timeout: float,
) -> VolumeCopyResult:
    """Full copy of one disk as it was at the snapshot, to ``[<its ds>] snapdeploy-volumes/<volume_id>.vmdk``.

    Idempotent: an existing copy is returned. "Complete" means the file exists and, where
    vCenter reports a disk's capacity, has the source's; an incomplete one is deleted and
    copied again. A failed copy deletes what it wrote.
    """
    deadline = Deadline(timeout)
    values, _ = snapshot_config(session, vm_ref, snapshot_ref)
    source = next(
        (d for d in devices.disks(values.get("config.hardware.device") or []) if d.key == disk_key), None
    )
    if source is None:
        raise FileMissing(
            f"snapshot {snapshot_ref} of VM {vm_ref} has no disk with key {disk_key}", fault="NotFound"
        )
    ds_name = devices.datastore_of(source.backing.fileName)
    dest = f"[{ds_name}] {VOLUME_FOLDER}/{volume_id}.vmdk"
    result = VolumeCopyResult(disk_path=dest, datastore=ds_name, size_bytes=devices.disk_size_bytes(source))

    existing = files.find_disk_file(session, dest, timeout=deadline.left())
    if existing is not None:
        if existing.capacity_kb in (None, result.size_bytes // devices.KB):
            return result
        files.delete_disk_file(session, dest, report=report, timeout=deadline.left())
    files.make_directory(session, f"[{ds_name}] {VOLUME_FOLDER}")
    try:
        files.copy_disk(session, source.backing.fileName, dest, report=report, timeout=deadline.left())
    except DuplicateName:
        return result  # FileAlreadyExists: a twin delivery's copy got there first
    except TaskTimeout:
        raise  # still copying in vCenter; a repeated call finds the file
    except VsphereError:
        files.delete_disk_file(session, dest, report=report, timeout=timeout)
        raise
    return result


@dataclass(frozen=True)
class DiskCreateResult:
    disk_path: str
    datastore: str
    size_bytes: int


def create_disk(
    session: VsphereSession,
    *,
    volume_id: str,
    datastore: str,
    size_bytes: int,
    report: Report,
    timeout: float,
) -> DiskCreateResult:
    """An empty thin disk of ``size_bytes`` at ``[<datastore>] snapdeploy-volumes/<volume_id>.vmdk``.

    Idempotent: a disk already there of that capacity (or where vCenter reports none) is the
    answer; one of another capacity is a half-made leftover, deleted and made again. A twin
    delivery's create that got there first (FileAlreadyExists) is the answer too. A failed create
    deletes what it wrote.
    """
    deadline = Deadline(timeout)
    files.require_datastore(session, datastore)
    dest = f"[{datastore}] {VOLUME_FOLDER}/{volume_id}.vmdk"
    capacity_kb = -(-size_bytes // devices.KB)
    result = DiskCreateResult(disk_path=dest, datastore=datastore, size_bytes=size_bytes)

    existing = files.find_disk_file(session, dest, timeout=deadline.left())
    if existing is not None:
        if existing.capacity_kb in (None, capacity_kb):
            return result
        files.delete_disk_file(session, dest, report=report, timeout=deadline.left())
    files.make_directory(session, f"[{datastore}] {VOLUME_FOLDER}")
    vdm = session.content.virtualDiskManager
    spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(
        diskType="thin", adapterType="lsiLogic", capacityKb=capacity_kb
    )
    try:
        run_task(
            session,
            lambda si: vdm.CreateVirtualDisk_Task(name=dest, datacenter=session.datacenter, spec=spec),
            timeout=deadline.left(),
            report=report,
            name="CreateVirtualDisk_Task",
        )
    except DuplicateName:
        return result  # FileAlreadyExists: a twin delivery's create got there first
    except TaskTimeout:
        raise  # still creating in vCenter; a repeated call finds the disk
    except VsphereError:
        files.delete_disk_file(session, dest, report=report, timeout=timeout)
        raise
    return result


def volume_disks(session: VsphereSession, datastores: list[str], *, timeout: float) -> list[str]:
    """Every disk file in the volume folder of these datastores (for reconciliation)."""
    deadline = Deadline(timeout)
    return [
        path
        for ds_name in datastores
        for path in files.disks_in_folder(session, f"[{ds_name}] {VOLUME_FOLDER}", timeout=deadline.left())
    ]


def attach_disk(
    session: VsphereSession,
    vm_ref: str,
    *,
    disk_path: str,
    unit_number: int | None = None,
    report: Report,
    timeout: float,
) -> DiskConfig:
    """Attach an existing disk file to the first SCSI controller, at ``unit_number`` or the first free unit.

    Already attached: returned as it is.
    """
    vm = inventory.vm_by_ref(session, vm_ref)
    device_list = _devices(session, vm)
    if (attached := _disk_at(device_list, disk_path)) is not None:
        return devices.describe_disk(device_list, attached)
    controllers = sorted(
        (d for d in device_list if isinstance(d, vim.vm.device.VirtualSCSIController)),
        key=lambda c: c.busNumber,
    )
    if not controllers:
        raise InvalidRequest(
            f"VM {vm_ref} has no SCSI controller to attach {disk_path} to", fault="InvalidDeviceSpec"
        )
    controller = controllers[0]
    used = {d.unitNumber for d in device_list if getattr(d, "controllerKey", None) == controller.key}
    if unit_number is None:
        unit_number = next((u for u in _SCSI_UNITS if u not in used), None)
        if unit_number is None:
            raise InvalidRequest(
                f"SCSI controller of VM {vm_ref} has no free unit", fault="InvalidDeviceSpec"
            )
    elif unit_number in used or unit_number not in _SCSI_UNITS:
        raise InvalidRequest(
            f"unit {unit_number} of VM {vm_ref}'s SCSI controller is taken or invalid",
            fault="InvalidDeviceSpec",
        )
    disk = devices.existing_disk(path=disk_path, controller_key=controller.key, unit_number=unit_number)
    vm_ops.reconfigure(
        session, vm, vim.vm.ConfigSpec(deviceChange=[devices.add(disk)]), report=report, timeout=timeout
    )
    device_list = _devices(session, vm)
    attached = _disk_at(device_list, disk_path)
    if attached is None:
        raise FileMissing(f"disk {disk_path} was attached to VM {vm_ref} but is not on it", fault="NotFound")
    return devices.describe_disk(device_list, attached)


def detach_disk(
    session: VsphereSession, vm_ref: str, *, disk_path: str, report: Report, timeout: float
) -> None:
    """Detach the disk and keep its file. A disk that is not attached is fine."""
    vm = inventory.vm_by_ref(session, vm_ref)
    disk = _disk_at(_devices(session, vm), disk_path)
    if disk is None:
        return
    vm_ops.reconfigure(
        session, vm, vim.vm.ConfigSpec(deviceChange=[devices.remove(disk)]), report=report, timeout=timeout
    )


def extend_disk(
    session: VsphereSession,
    *,
    disk_path: str,
    size_bytes: int,
    vm_ref: str | None = None,
    report: Report,
    timeout: float,
) -> None:
    """Grow a disk to ``size_bytes``: by reconfiguring the VM it is attached to, else on the datastore.

    Never shrinks (431); the same size is a no-op.
    """
    if vm_ref is not None:
        vm = inventory.vm_by_ref(session, vm_ref)
        disk = _disk_at(_devices(session, vm), disk_path)
        if disk is not None:
            if _unchanged_or_refused(disk_path, devices.disk_size_bytes(disk), size_bytes):
                return
            disk.capacityInKB = -(-size_bytes // devices.KB)
            disk.capacityInBytes = size_bytes
            spec = vim.vm.ConfigSpec(deviceChange=[devices.edit(disk)])
            vm_ops.reconfigure(session, vm, spec, report=report, timeout=timeout)
            return
    deadline = Deadline(timeout)
    found = files.find_disk_file(session, disk_path, timeout=deadline.left())
    if found is None:
        raise FileMissing(f"disk {disk_path} not found", fault="FileNotFound")
    if found.capacity_kb is not None and _unchanged_or_refused(
        disk_path, found.capacity_kb * devices.KB, size_bytes
    ):
        return
    vdm = session.content.virtualDiskManager
    run_task(
        session,
        lambda si: vdm.ExtendVirtualDisk_Task(
            name=disk_path,
            datacenter=session.datacenter,
            newCapacityKb=-(-size_bytes // devices.KB),
            eagerZero=False,
        ),
        timeout=deadline.left(),
        report=report,
        name="ExtendVirtualDisk_Task",
    )


def delete_disk(session: VsphereSession, *, disk_path: str, report: Report, timeout: float) -> None:
    """Delete a standalone disk file. A missing disk is fine (and runs no delete task)."""
    files.delete_disk_if_present(session, disk_path, report=report, timeout=timeout)


def _devices(session: VsphereSession, vm: vim.VirtualMachine) -> list[Any]:
    return list(
        inventory.require_vm(session, vm, ["config.hardware.device"]).get("config.hardware.device") or []
    )


def _disk_at(device_list: list[Any], disk_path: str) -> Any | None:
    return next((d for d in devices.disks(device_list) if d.backing.fileName == disk_path), None)


def _unchanged_or_refused(disk_path: str, current: int, wanted: int) -> bool:
    if wanted < current:
        raise InvalidRequest(
            f"disk {disk_path} is {current} bytes; shrinking to {wanted} is not supported",
            fault="InvalidArgument",
        )
    return wanted == current
