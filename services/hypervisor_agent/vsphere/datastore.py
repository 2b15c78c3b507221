"""Datastore files: looking a disk up, folders, copying and deleting disks."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from services.hypervisor_agent.vsphere import devices, inventory, props
from services.hypervisor_agent.vsphere.faults import FileMissing, InvalidRequest, VsphereError
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import Deadline, Report, run_task

_DISK_DETAILS = vim.host.DatastoreBrowser.VmDiskQuery.Details(
    diskType=False, capacityKb=True, hardwareVersion=False, thin=False, diskExtents=False
)


@dataclass(frozen=True)
class DiskFile:
    path: str
    file_size: int
    capacity_kb: int | None  # vCenter reports it for disks; the simulator does not


def find_disk_file(session: VsphereSession, path: str, *, timeout: float) -> DiskFile | None:
    """The disk file at ``path``, or None when it (or its folder) does not exist."""
    found = _search(session, path, vim.host.DatastoreBrowser.VmDiskQuery(details=_DISK_DETAILS), timeout)
    if found is None:
        return None
    return DiskFile(
        path=path, file_size=found.fileSize or 0, capacity_kb=getattr(found, "capacityKb", None) or None
    )


def exists(session: VsphereSession, path: str, *, timeout: float) -> bool:
    """Whether a file or folder exists at ``path``."""
    return _search(session, path, vim.host.DatastoreBrowser.Query(), timeout) is not None


def _search(
    session: VsphereSession, path: str, query: vim.host.DatastoreBrowser.Query, timeout: float
) -> Any:
    """The FileInfo of ``path`` from a datastore search of its folder, or None.

    A search is a read: its task is not reported.
    """
    ds_name, relative = devices.split_path(path)
    folder, _, file_name = relative.rstrip("/").rpartition("/")
    datastore = require_datastore(session, ds_name)
    browser = session.call(lambda si: props.fetch(session.content, datastore, ["browser"])["browser"])
    spec = vim.host.DatastoreBrowser.SearchSpec(
        matchPattern=[file_name],
        query=[query],
        details=vim.host.DatastoreBrowser.FileInfo.Details(fileSize=True, fileType=True),
    )
    task = session.call(
        lambda si: browser.SearchDatastore_Task(datastorePath=f"[{ds_name}] {folder}", searchSpec=spec)
    )
    outcome = session.tasks.wait(task, timeout=timeout)
    if outcome.state == "error":
        if outcome.fault in ("FileNotFound", "NotFound"):
            return None  # the folder itself is missing
        raise VsphereError(
            outcome.fault_message or "datastore search failed", fault=outcome.fault, datastore=ds_name
        )
    return next((f for f in outcome.result.file or [] if f.path == file_name), None)


def disks_in_folder(session: VsphereSession, folder: str, *, timeout: float) -> list[str]:
    """Paths of the disks (descriptors, not their extents) in a datastore folder; none if it is missing."""
    ds_name, _ = devices.split_path(folder.rstrip("/") + "/")
    datastore = require_datastore(session, ds_name)
    browser = session.call(lambda si: props.fetch(session.content, datastore, ["browser"])["browser"])
    spec = vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*.vmdk"])
    task = session.call(lambda si: browser.SearchDatastore_Task(datastorePath=folder, searchSpec=spec))
    outcome = session.tasks.wait(task, timeout=timeout)
    if outcome.state == "error":
        if outcome.fault in ("FileNotFound", "NotFound"):
            return []
        raise VsphereError(
            outcome.fault_message or "datastore search failed", fault=outcome.fault, datastore=ds_name
        )
    names = [f.path for f in outcome.result.file or []]
    extents = ("-flat.vmdk", "-delta.vmdk", "-ctk.vmdk", "-sesparse.vmdk")
    return sorted(f"{folder}/{name}" for name in names if not name.endswith(extents))


def require_datastore(session: VsphereSession, name: str) -> vim.Datastore:
    datastore = inventory.datastore_by_name(session, name)
    if datastore is None:
        raise InvalidRequest(
            f"datastore {name!r} not found in datacenter {session.datacenter_name}", fault="NotFound"
        )
    return datastore


def make_directory(session: VsphereSession, path: str) -> None:
    """Create a datastore folder (and its parents); an existing one is fine."""
    try:
        session.call(
            lambda si: session.content.fileManager.MakeDirectory(
                name=path, datacenter=session.datacenter, createParentDirectories=True
            )
        )
    except VsphereError as exc:
        if exc.fault != "FileAlreadyExists":
            raise


def copy_disk(
    session: VsphereSession,
    source: str,
    dest: str,
    *,
    report: Report,
    timeout: float,
    activation_id: str | None = None,
) -> None:
    """Full copy of a disk's effective contents (a child disk reads through its parents).

    ``activation_id`` tags the copy task so that a repeated command can find it (``tagged_tasks``).
    """
    vdm = session.content.virtualDiskManager
    run_task(
        session,
        lambda si: vdm.CopyVirtualDisk_Task(
            sourceName=source,
            sourceDatacenter=session.datacenter,
            destName=dest,
            destDatacenter=session.datacenter,
            force=False,
        ),
        timeout=timeout,
        report=report,
        name="CopyVirtualDisk_Task",
        activation_id=activation_id,
    )


def delete_disk_file(session: VsphereSession, path: str, *, report: Report, timeout: float) -> None:
    """Delete a disk and its extents; a missing disk is fine."""
    vdm = session.content.virtualDiskManager
    with contextlib.suppress(FileMissing):
        run_task(
            session,
            lambda si: vdm.DeleteVirtualDisk_Task(name=path, datacenter=session.datacenter),
            timeout=timeout,
            report=report,
            name="DeleteVirtualDisk_Task",
        )


def delete_disk_if_present(session: VsphereSession, path: str, *, report: Report, timeout: float) -> None:
    """Delete a disk after looking it up, so that a missing disk costs no failing (reported) task."""
    deadline = Deadline(timeout)
    if find_disk_file(session, path, timeout=deadline.left()) is not None:
        delete_disk_file(session, path, report=report, timeout=deadline.left())


def delete_file(session: VsphereSession, path: str, *, report: Report, timeout: float) -> None:
    """Delete a datastore file or folder (with its contents); a missing one is fine, and runs no task."""
    deadline = Deadline(timeout)
    if not exists(session, path, timeout=deadline.left()):
        return
    manager = session.content.fileManager
    with contextlib.suppress(FileMissing):
        run_task(
            session,
            lambda si: manager.DeleteDatastoreFile_Task(name=path, datacenter=session.datacenter),
            timeout=deadline.left(),
            report=report,
            name="DeleteDatastoreFile_Task",
        )
