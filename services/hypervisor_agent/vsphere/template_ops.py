"""Seeded templates: a full copy of a snapshot's root disk in a template with a base snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyVmomi import vim

from services.hypervisor_agent.vsphere import datastore as files
from services.hypervisor_agent.vsphere import devices, inventory, vm_ops
from services.hypervisor_agent.vsphere.faults import InvalidRequest, TaskTimeout, VsphereError, cleanup_step
from services.hypervisor_agent.vsphere.inventory import SNAPDEPLOY_KEY
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.snapshot_ops import snapshot_config
from services.hypervisor_agent.vsphere.tasks import (
    Deadline,
    Report,
    run_task,
    running_tasks,
    tagged_tasks,
    wait_quietly,
)

# CloudStack's name for the snapshot linked clones of a template are made from.
BASE_SNAPSHOT = "cloud.template.base"
SEED_VM_PROPS = ["name", "config.template", "config.extraConfig", "snapshot"]


@dataclass(frozen=True)
class SeedResult:
    template_ref: str
    template_name: str
    base_snapshot_ref: str
    disk_path: str
    size_bytes: int


def seed_name(seed_id: str) -> str:
    return f"snapdeploy-seed-{seed_id}"


def seed_template(
    session: VsphereSession,
    *,
    seed_id: str,
    vm_ref: str,
    snapshot_ref: str,
    datastore: str,
    report: Report,
    timeout: float,
) -> SeedResult:
    """Template ``snapdeploy-seed-<seed_id>``: a full copy of the snapshot's root disk, with a base snapshot.

    Steps: copy the root disk as at the snapshot into ``[<ds>] snapdeploy-seed-<id>/root.vmdk``,
    create a shell VM around it (same CPU, memory, guest OS; one controller; no NICs), take
    ``cloud.template.base``, mark it a template. A repeated call returns the finished template
    or finishes the one a previous call left (a shell VM exists only once its disk is copied).
    A failure removes the shell VM, the disk and the folder.
    """
    deadline = Deadline(timeout)
    name = seed_name(seed_id)
    folder = f"[{datastore}] {name}"
    disk_path = f"{folder}/root.vmdk"
    values, _ = snapshot_config(session, vm_ref, snapshot_ref)
    source_devices = list(values.get("config.hardware.device") or [])
    root = devices.root_disk(source_devices, values.get("config.bootOptions"))
    if root is None:
        raise InvalidRequest(f"snapshot {snapshot_ref} of VM {vm_ref} has no disk", fault="InvalidArgument")
    root_ds = devices.datastore_of(root.backing.fileName)
    if root_ds != datastore:
        raise InvalidRequest(
            f"the seed must go to datastore {root_ds}, which holds the snapshot's root disk, not {datastore}",
            fault="InvalidDatastore",
        )
    size_bytes = devices.disk_size_bytes(root)

    shell = inventory.find_own_vm(session, name, seed_id)
    try:
        if shell is None:
            placement = _source_placement(session, vm_ref)
            copy_tag = f"{name}:copy"
            if not _earlier_copy_adopted(session, copy_tag, disk_path, report, deadline):
                # A disk without its shell VM nor a copy that made it is a leftover: copy afresh.
                files.delete_disk_if_present(session, disk_path, report=report, timeout=deadline.left())
                files.make_directory(session, folder)
                files.copy_disk(
                    session,
                    root.backing.fileName,
                    disk_path,
                    report=report,
                    timeout=deadline.left(),
                    activation_id=copy_tag,
                )
            shell = _create_shell_vm(
                session, name, seed_id, values, root, source_devices, disk_path, placement, report, deadline
            )
        base = _finish_template(session, shell, report, deadline)
    except TaskTimeout:
        raise  # the task is still running in vCenter: a repeated call picks it up
    except VsphereError:
        _remove_seed(session, name, seed_id, disk_path, folder, report, timeout)
        raise
    return SeedResult(
        template_ref=shell._moId,
        template_name=name,
        base_snapshot_ref=base,
        disk_path=disk_path,
        size_bytes=size_bytes,
    )


def delete_template(session: VsphereSession, template_ref: str, *, report: Report, timeout: float) -> None:
    """Destroy a seeded template with its folder and disk. A missing template is fine.

    The caller makes sure no linked clone still needs the disk (vSphere would delete it).
    """
    vm_ops.destroy(session, inventory.vm_by_ref(session, template_ref), report=report, timeout=timeout)


# -- steps ----------------------------------------------------------------------------------------------


def _earlier_copy_adopted(
    session: VsphereSession, copy_tag: str, disk_path: str, report: Report, deadline: Deadline
) -> bool:
    """Whether the seed's disk copy that an earlier call started made the disk: waited for if running.

    The agent may have been killed while vCenter went on copying; starting a second copy
    would fail on ``FileAlreadyExists`` once the first lands. A copy that ends in error
    counts as none (vCenter removes what it wrote; the caller copies afresh).
    """
    copies = tagged_tasks(session, "CopyVirtualDisk_Task", copy_tag)
    if not copies:
        return False
    succeeded = False
    for task, state in copies:
        if state in ("queued", "running"):
            # Reported here: the agent that started it may not have lived to report it.
            outcome = session.tasks.wait(task, timeout=deadline.left(), name="CopyVirtualDisk_Task")
            report(outcome)
            state = outcome.state
        succeeded = succeeded or state == "success"
    return succeeded and files.find_disk_file(session, disk_path, timeout=deadline.left()) is not None


@dataclass(frozen=True)
class _Placement:
    pool: vim.ResourcePool
    host: vim.HostSystem | None


def _source_placement(session: VsphereSession, vm_ref: str) -> _Placement:
    values = inventory.require_vm(
        session, inventory.vm_by_ref(session, vm_ref), ["resourcePool", "runtime.host"]
    )
    host = values.get("runtime.host")
    pool = values.get("resourcePool")  # a template has none: use its host's cluster
    if pool is None and host is not None:
        pool = inventory.host_root_pool(session, host)
    if pool is None:
        raise InvalidRequest(f"VM {vm_ref} has neither a resource pool nor a host", fault="InvalidState")
    return _Placement(pool=pool, host=host)


def _create_shell_vm(
    session: VsphereSession,
    name: str,
    seed_id: str,
    values: dict,
    root: Any,
    source_devices: list[Any],
    disk_path: str,
    placement: _Placement,
    report: Report,
    deadline: Deadline,
) -> vim.VirtualMachine:
    ds_name, relative = devices.split_path(disk_path)
    controller = _controller_like(root, source_devices)
    disk = devices.existing_disk(
        path=disk_path, controller_key=controller.key, unit_number=0, size_bytes=devices.disk_size_bytes(root)
    )
    spec = vim.vm.ConfigSpec(
        name=name,
        guestId=values.get("config.guestId") or "otherGuest64",
        numCPUs=values.get("config.hardware.numCPU") or 1,
        numCoresPerSocket=values.get("config.hardware.numCoresPerSocket") or 1,
        memoryMB=values.get("config.hardware.memoryMB") or 1024,
        files=vim.vm.FileInfo(vmPathName=f"[{ds_name}] {relative.rsplit('/', 1)[0]}/{name}.vmx"),
        extraConfig=[vim.option.OptionValue(key=SNAPDEPLOY_KEY, value=seed_id)],
        deviceChange=[devices.add(controller), devices.add(disk)],
    )
    folder = inventory.vm_folder(session)
    outcome = run_task(
        session,
        lambda si: folder.CreateVM_Task(config=spec, pool=placement.pool, host=placement.host),
        timeout=deadline.left(),
        report=report,
        name="CreateVM_Task",
    )
    return outcome.result


def _controller_like(root: Any, source_devices: list[Any]) -> Any:
    """One SCSI controller of the source root disk's kind (the guest has its driver); LSI Logic otherwise."""
    source = next((d for d in source_devices if d.key == root.controllerKey), None)
    cls = (
        type(source)
        if isinstance(source, vim.vm.device.VirtualSCSIController)
        else vim.vm.device.VirtualLsiLogicController
    )
    return cls(key=1000, busNumber=0, sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing)


def _finish_template(
    session: VsphereSession, shell: vim.VirtualMachine, report: Report, deadline: Deadline
) -> str:
    """Take the base snapshot and mark the VM a template, whichever is not done yet; returns the base ref."""
    values = inventory.require_vm(session, shell, SEED_VM_PROPS)
    base = _base_snapshot(values)
    if base is None and (in_flight := running_tasks(session, shell, "CreateSnapshot_Task")):
        wait_quietly(session, in_flight, timeout=deadline.left())
        values = inventory.require_vm(session, shell, SEED_VM_PROPS)
        base = _base_snapshot(values)
    if base is None:
        outcome = run_task(
            session,
            lambda si: shell.CreateSnapshot_Task(
                name=BASE_SNAPSHOT, description="", memory=False, quiesce=False
            ),
            timeout=deadline.left(),
            report=report,
            name="CreateSnapshot_Task",
            entity=shell,
        )
        base = outcome.result._moId
    if not values.get("config.template"):
        session.call(lambda si: shell.MarkAsTemplate())
    return base


def _base_snapshot(values: dict) -> str | None:
    nodes = inventory.snapshot_nodes(values.get("snapshot"))
    return next((node.snapshot._moId for node, _ in nodes if node.name == BASE_SNAPSHOT), None)


def _remove_seed(
    session: VsphereSession,
    name: str,
    seed_id: str,
    disk_path: str,
    folder: str,
    report: Report,
    timeout: float,
) -> None:
    """Undo a failed seed: the shell VM (destroying it takes the disk in its folder), the disk, the folder."""
    cleanup_step(lambda: _destroy_own_vm(session, name, seed_id, report, timeout))
    cleanup_step(lambda: files.delete_disk_if_present(session, disk_path, report=report, timeout=timeout))
    cleanup_step(lambda: files.delete_file(session, folder, report=report, timeout=timeout))


def _destroy_own_vm(session: VsphereSession, name: str, seed_id: str, report: Report, timeout: float) -> None:
    if (shell := inventory.find_own_vm(session, name, seed_id)) is not None:
        vm_ops.destroy(session, shell, report=report, timeout=timeout)
