"""Linked clones of a seeded template, made from its base snapshot."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pyVmomi import vim

from contracts.agent import ClonedNic, NicRequest, VmShape
from contracts.vsphere import DiskConfig
from services.hypervisor_agent.vsphere import datastore as files
from services.hypervisor_agent.vsphere import devices, inventory, vm_ops
from services.hypervisor_agent.vsphere.faults import (
    DuplicateName,
    InvalidRequest,
    TaskTimeout,
    VsphereError,
    cleanup_step,
)
from services.hypervisor_agent.vsphere.inventory import SNAPDEPLOY_KEY
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.snapshot_ops import snapshot_config
from services.hypervisor_agent.vsphere.tasks import Report, Steps, stepwise, task_steps


@dataclass(frozen=True)
class CloneResult:
    vm_ref: str
    vm_name: str
    root_disk: DiskConfig
    nics: list[ClonedNic] = field(default_factory=list)
    powered_on: bool = False
    host_ref: str | None = None  # where it runs, when powered on


@stepwise
def clone_from_snapshot(
    session: VsphereSession,
    *,
    vm_id: str,
    vm_name: str,
    template_ref: str,
    base_snapshot_ref: str,
    host_ref: str,
    datastore: str,
    shape: VmShape | None = None,
    nics: Sequence[NicRequest] = (),
    power_on: bool = False,
    report: Report,
    timeout: float,
) -> Steps:
    """Linked clone of a template from its base snapshot onto a host and datastore, powered off.

    With a ``shape`` the clone is made with those vCPUs, memory and CPU reservation, and with
    ``nics`` it gets those NICs instead of the snapshot's (MACs derived from their ids), and with
    ``power_on`` it is powered on: one task, for vCenter applies a clone's config spec as it
    creates the VM and powers it on as the clone's last step.

    The VM name is the lock: a VM of that name with this ``snapdeploy.id`` is the result of an
    earlier call and is returned; one with another id is a DuplicateName error. A clone that
    fails on DuplicateName while a twin delivery's clone made ours returns that VM. In-flight
    clones are not waited for by entity: every clone of a shared template runs on that
    template, so waiting would serialise concurrent deployments.
    """
    if (existing := inventory.find_own_vm(session, vm_name, vm_id)) is not None:
        return (yield from _made(session, existing, vm_name, nics, power_on, report, timeout))
    template = inventory.vm_by_ref(session, template_ref)
    base_config, base = snapshot_config(session, template_ref, base_snapshot_ref)
    host = inventory.host_by_ref(session, host_ref)
    for nic in nics:
        vm_ops.require_port_group(session, host, nic.network)
    pool = inventory.host_root_pool(session, host)
    target = files.require_datastore(session, datastore)
    config = vim.vm.ConfigSpec(
        extraConfig=[vim.option.OptionValue(key=SNAPDEPLOY_KEY, value=vm_id)],
        # the clone starts from the base snapshot's devices: its NICs are replaced by ours
        deviceChange=[
            *(devices.remove(nic) for nic in devices.nics(base_config.get("config.hardware.device") or [])),
            *(devices.add(_new_nic(nic, key=-1 - i)) for i, nic in enumerate(nics)),
        ],
    )
    if shape is not None:
        vm_ops.shape_spec(config, shape)
    spec = vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(
            diskMoveType="createNewChildDiskBacking", host=host, datastore=target, pool=pool
        ),
        snapshot=base.snapshot,
        template=False,
        powerOn=power_on,
        config=config,
    )
    folder = inventory.vm_folder(session)
    try:
        outcome = yield from task_steps(
            session,
            lambda si: template.CloneVM_Task(folder=folder, name=vm_name, spec=spec),
            timeout=timeout,
            report=report,
            name="CloneVM_Task",
            entity=template,
        )
    except DuplicateName:
        if (twin := inventory.find_own_vm(session, vm_name, vm_id)) is not None:
            return (yield from _made(session, twin, vm_name, nics, power_on, report, timeout))
        raise
    except TaskTimeout:
        raise  # the clone may still finish: a repeated call finds it by name
    except VsphereError as error:
        # vCenter normally removes a failed clone, but keeps one that was made and then failed to
        # power on: make sure nothing of ours is left by that name, and say which part failed.
        left = cleanup_step(lambda: _destroy_own_vm(session, vm_name, vm_id, report, timeout))
        if power_on and left:
            error.context = f"{vm_name} was cloned but did not power on"
        raise
    result = yield from _made(session, outcome.result, vm_name, nics, power_on, report, timeout)
    seed_disk = devices.root_disk(
        list(base_config.get("config.hardware.device") or []), base_config.get("config.bootOptions")
    )
    expected = seed_disk.backing.fileName if seed_disk is not None else None
    if result.root_disk.parent_file != expected:
        # vCenter made a full copy (or hung the disk elsewhere): not what we promise, and it
        # would cost the pool a whole disk per deployment. Remove it and say so.
        cleanup_step(lambda: _destroy_own_vm(session, vm_name, vm_id, report, timeout))
        raise VsphereError(
            f"clone {vm_name} is not a linked clone of the seed: its root disk {result.root_disk.file} "
            f"has parent {result.root_disk.parent_file or 'none'}, not {expected}",
            fault="NotLinkedClone",
        )
    return result


def _new_nic(nic: NicRequest, *, key: int):
    return devices.new_nic(
        network=nic.network, adapter=nic.adapter_type, mac=vm_ops.nic_mac(nic.nic_id), key=key
    )


def _made(
    session: VsphereSession,
    vm: vim.VirtualMachine,
    name: str,
    nics: Sequence[NicRequest],
    power_on: bool,
    report: Report,
    timeout: float,
) -> Steps:
    """What the clone is (one read); powered on when asked and still off (a clone an earlier
    delivery made without powering it on)."""
    values = inventory.require_vm(
        session, vm, ["config.hardware.device", "config.bootOptions", "runtime.powerState", "runtime.host"]
    )
    powered_on = values.get("runtime.powerState") == vm_ops.POWERED_ON
    host = values.get("runtime.host")
    host_ref = host._moId if host is not None else None
    if power_on and not powered_on:
        host_ref = yield from vm_ops.power_on.steps(session, vm._moId, report=report, timeout=timeout)
        powered_on = True
    return replace(_describe(vm, name, values, nics), powered_on=powered_on, host_ref=host_ref)


def _describe(vm: vim.VirtualMachine, name: str, values: dict, nics: Sequence[NicRequest]) -> CloneResult:
    device_list = list(values["config.hardware.device"])
    root = devices.root_disk(device_list, values.get("config.bootOptions"))
    if root is None:
        raise InvalidRequest(f"clone {name} has no disk", fault="InvalidState")
    made = []
    for nic in nics:
        mac = vm_ops.nic_mac(nic.nic_id)
        if (key := vm_ops.nic_key(values, mac)) is None:
            raise InvalidRequest(f"clone {name} was made without its NIC {mac}", fault="NotFound")
        made.append(ClonedNic(nic_id=nic.nic_id, device_key=key, mac=mac))
    return CloneResult(
        vm_ref=vm._moId, vm_name=name, root_disk=devices.describe_disk(device_list, root), nics=made
    )


def _destroy_own_vm(session: VsphereSession, name: str, vm_id: str, report: Report, timeout: float) -> bool:
    """Destroy our VM of that name; whether there was one."""
    if (partial := inventory.find_own_vm(session, name, vm_id)) is None:
        return False
    vm_ops.destroy(session, partial, report=report, timeout=timeout)
    return True
