"""A VM's lifecycle after it exists: shape, NICs, power, destroy."""

from __future__ import annotations

from pyVmomi import vim

from contracts.agent import VmShape
from services.hypervisor_agent.vsphere import devices, inventory, props
from services.hypervisor_agent.vsphere.faults import FileMissing, InvalidRequest
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import (
    Deadline,
    Report,
    Steps,
    drive,
    run_task,
    running_tasks,
    stepwise,
    task_steps,
    wait_quietly,
)

POWERED_ON = vim.VirtualMachine.PowerState.poweredOn
POWERED_OFF = vim.VirtualMachine.PowerState.poweredOff


def reconfigure(
    session: VsphereSession,
    vm: vim.VirtualMachine,
    spec: vim.vm.ConfigSpec,
    *,
    report: Report,
    timeout: float,
) -> None:
    drive(reconfigure_steps(session, vm, spec, report=report, timeout=timeout))


def reconfigure_steps(
    session: VsphereSession,
    vm: vim.VirtualMachine,
    spec: vim.vm.ConfigSpec,
    *,
    report: Report,
    timeout: float,
) -> Steps:
    yield from task_steps(
        session,
        lambda si: vm.ReconfigVM_Task(spec=spec),
        timeout=timeout,
        report=report,
        name="ReconfigVM_Task",
        entity=vm,
    )


@stepwise
def reconfigure_vm(
    session: VsphereSession,
    vm_ref: str,
    *,
    num_cpus: int,
    cores_per_socket: int = 1,
    memory_mb: int,
    cpu_mhz: int | None = None,
    report: Report,
    timeout: float,
) -> Steps:
    """Give the VM that many vCPUs, cores per socket, memory and CPU reservation (no task if it has them)."""
    vm = inventory.vm_by_ref(session, vm_ref)
    now = inventory.require_vm(
        session,
        vm,
        [
            "config.hardware.numCPU",
            "config.hardware.numCoresPerSocket",
            "config.hardware.memoryMB",
            "config.cpuAllocation.reservation",
        ],
    )
    wanted = {
        "config.hardware.numCPU": num_cpus,
        "config.hardware.numCoresPerSocket": cores_per_socket,
        "config.hardware.memoryMB": memory_mb,
    }
    if cpu_mhz is not None:
        wanted["config.cpuAllocation.reservation"] = cpu_mhz
    if all(now.get(path) == value for path, value in wanted.items()):
        return
    shape = VmShape(
        num_cpus=num_cpus, cores_per_socket=cores_per_socket, memory_mb=memory_mb, cpu_mhz=cpu_mhz
    )
    spec = shape_spec(vim.vm.ConfigSpec(), shape)
    yield from reconfigure_steps(session, vm, spec, report=report, timeout=timeout)


def shape_spec(spec: vim.vm.ConfigSpec, shape: VmShape) -> vim.vm.ConfigSpec:
    """``spec`` also setting the shape's vCPUs, cores per socket, memory and CPU reservation."""
    spec.numCPUs, spec.memoryMB = shape.num_cpus, shape.memory_mb
    spec.numCoresPerSocket = shape.cores_per_socket
    if shape.cpu_mhz is not None:
        spec.cpuAllocation = vim.ResourceAllocationInfo(reservation=shape.cpu_mhz)
    return spec


@stepwise
def attach_nic(
    session: VsphereSession,
    vm_ref: str,
    *,
    nic_id: str,
    network: str,
    adapter_type: str = "vmxnet3",
    mac: str | None = None,
    report: Report,
    timeout: float,
) -> Steps:
    """Add a NIC on a port group of the VM's host; returns (device key, MAC).

    Idempotent through the MAC: without one given, it is derived from ``nic_id``, and a VM
    that already has a NIC with that MAC gets nothing new.
    """
    vm = inventory.vm_by_ref(session, vm_ref)
    mac = (mac or nic_mac(nic_id)).lower()
    values = inventory.require_vm(session, vm, ["config.hardware.device", "runtime.host"])
    if (key := nic_key(values, mac)) is not None:
        return key, mac
    require_port_group(session, values.get("runtime.host"), network)
    nic = devices.new_nic(network=network, adapter=adapter_type, mac=mac)
    spec = vim.vm.ConfigSpec(deviceChange=[devices.add(nic)])
    yield from reconfigure_steps(session, vm, spec, report=report, timeout=timeout)
    key = nic_key(inventory.require_vm(session, vm, ["config.hardware.device"]), mac)
    if key is None:
        raise InvalidRequest(f"NIC {mac} was added to VM {vm_ref} but is not on it", fault="NotFound")
    return key, mac


def nic_mac(nic_id: str) -> str:
    """The MAC a NIC of this snapdeploy id gets: how a repeated request finds the NIC it made."""
    return devices.deterministic_mac(nic_id).lower()


def detach_nic(session: VsphereSession, vm_ref: str, *, mac: str, report: Report, timeout: float) -> None:
    """Remove the NIC with that MAC; a VM without it is fine."""
    vm = inventory.vm_by_ref(session, vm_ref)
    values = inventory.require_vm(session, vm, ["config.hardware.device"])
    nic = next(
        (
            n
            for n in devices.nics(values.get("config.hardware.device") or [])
            if (n.macAddress or "").lower() == mac.lower()
        ),
        None,
    )
    if nic is None:
        return
    reconfigure(
        session, vm, vim.vm.ConfigSpec(deviceChange=[devices.remove(nic)]), report=report, timeout=timeout
    )


@stepwise
def power_on(session: VsphereSession, vm_ref: str, *, report: Report, timeout: float) -> Steps:
    """Power the VM on (already on: no task); returns the ref of the host it runs on."""
    vm = inventory.vm_by_ref(session, vm_ref)
    if inventory.require_vm(session, vm, ["runtime.powerState"])["runtime.powerState"] != POWERED_ON:
        yield from task_steps(
            session,
            lambda si: vm.PowerOnVM_Task(),
            timeout=timeout,
            report=report,
            name="PowerOnVM_Task",
            entity=vm,
        )
    host = inventory.require_vm(session, vm, ["runtime.host"]).get("runtime.host")
    return host._moId if host is not None else None


def power_off(session: VsphereSession, vm_ref: str, *, report: Report, timeout: float) -> None:
    """Power the VM off (already off: no task)."""
    vm = inventory.vm_by_ref(session, vm_ref)
    if inventory.require_vm(session, vm, ["runtime.powerState"])["runtime.powerState"] != POWERED_OFF:
        run_task(
            session,
            lambda si: vm.PowerOffVM_Task(),
            timeout=timeout,
            report=report,
            name="PowerOffVM_Task",
            entity=vm,
        )


def destroy_vm(session: VsphereSession, vm_ref: str, *, report: Report, timeout: float) -> None:
    """Power off and destroy a VM or template with the files in its own folder. A missing VM is fine."""
    destroy(session, inventory.vm_by_ref(session, vm_ref), report=report, timeout=timeout)


def destroy(session: VsphereSession, vm: vim.VirtualMachine, *, report: Report, timeout: float) -> None:
    deadline = Deadline(timeout)
    values = inventory.read_vm(session, vm, ["runtime.powerState"])
    if values is None:
        return
    if in_flight := running_tasks(session, vm, "Destroy_Task"):
        wait_quietly(session, in_flight, timeout=deadline.left())
        if inventory.read_vm(session, vm, ["name"]) is None:
            return
    try:
        if values.get("runtime.powerState") == POWERED_ON:
            run_task(
                session,
                lambda si: vm.PowerOffVM_Task(),
                timeout=deadline.left(),
                report=report,
                name="PowerOffVM_Task",
                entity=vm,
            )
        run_task(
            session,
            lambda si: vm.Destroy_Task(),
            timeout=deadline.left(),
            report=report,
            name="Destroy_Task",
            entity=vm,
        )
    except FileMissing:
        if inventory.read_vm(session, vm, ["name"]) is not None:
            raise  # a file of the VM is missing, not the VM


def nic_key(values: dict, mac: str) -> int | None:
    """Device key of the NIC with this (lower-case) MAC in read ``config.hardware.device``, if any."""
    nics = devices.nics(values.get("config.hardware.device") or [])
    return next((n.key for n in nics if (n.macAddress or "").lower() == mac), None)


def require_port_group(session: VsphereSession, host: vim.HostSystem | None, network: str) -> None:
    if host is None:
        raise InvalidRequest(
            f"VM has no host, so port group {network!r} cannot be checked", fault="InvalidState"
        )

    def names(si: vim.ServiceInstance) -> tuple[str, set[str]]:
        values = props.fetch(session.content, host, ["name", "network"]) or {}
        found = props.fetch_many(session.content, list(values.get("network") or []), ["name"])
        return values.get("name", host._moId), {v.get("name") for v in found.values()}

    host_name, port_groups = session.remember(("port-groups", host._moId), lambda: session.call(names))
    if network not in port_groups:
        raise InvalidRequest(f"port group {network!r} not found on host {host_name}", fault="NotFound")
