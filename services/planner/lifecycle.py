"""Start, stop, reboot and destroy any instance (deployed from a snapshot or not): the same for all.

Capacity on the host is held while an instance runs: reserved again on start (533 when the
host has no room), released on stop and destroy. Destroy with ``expunge`` also removes the
vCenter VM and hands the root volume to the storage scavenger. A reboot is a power-off and
a power-on on the same host, its capacity held throughout.
"""

from __future__ import annotations

from contracts import agent, storage
from contracts import planner as cmd
from contracts.errors import ErrorCode
from services.planner import hosts, saga, steps, store
from services.planner.common import Planner, check_owner, owned_instance, vm_state
from services.planner.state import PowerChange, legacy_power_change
from services.planner.steps import Failure, Flow, Step
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED
from shared.messaging import HandlerContext as Ctx

START, STOP, REBOOT, DESTROY = "start", "stop", "reboot", "destroy"


# -- the steps -------------------------------------------------------------------------------------


async def power_on(c: PowerChange, ctx: Ctx, planner: Planner):
    return agent.PowerOnVm(zone_id=c.zone, vm_ref=c.vm_ref)


async def power_off(c: PowerChange, ctx: Ctx, planner: Planner):
    return agent.PowerOffVm(zone_id=c.zone, vm_ref=c.vm_ref)


async def powered_off(c: PowerChange, reply, ctx: Ctx, planner: Planner):
    c.powered_off = True


async def power_off_if_running(c: PowerChange, ctx: Ctx, planner: Planner):
    return await power_off(c, ctx, planner) if c.was == "Running" else None


async def destroy_vm(c: PowerChange, ctx: Ctx, planner: Planner):
    return agent.DestroyVm(zone_id=c.zone, vm_ref=c.vm_ref) if c.expunge and c.vm_ref else None


async def destroy_volumes(c: PowerChange, ctx: Ctx, planner: Planner):
    return storage.DestroyVmVolumes(vm_id=c.vm_id) if c.expunge else None


POWER_ON = Step("power_on", "powering on", power_on, (agent.PowerOnVm,))
POWER_OFF = Step("power_off", "powering off", power_off, (agent.PowerOffVm,), powered_off)
DESTROY_STEPS = [
    Step("power_off", "powering off", power_off_if_running, (agent.PowerOffVm,), powered_off),
    Step("destroy_vm", "destroying the vCenter VM", destroy_vm, (agent.DestroyVm,)),
    Step("volumes", "destroying its volumes", destroy_volumes, (storage.DestroyVmVolumes,)),
]


# -- the ends --------------------------------------------------------------------------------------


async def now(c: PowerChange, ctx: Ctx, old: str, new: str) -> None:
    await store.set_state(ctx.conn, c.vm_id, new)
    if old != new:
        vm_state(ctx, c.vm_id, old, new)


async def started(c: PowerChange, ctx: Ctx, planner: Planner):
    await now(c, ctx, "Starting", "Running")
    ctx.action("VM.START", "Completed", "VirtualMachine", c.vm_id, c.name, f"{c.name} is running")
    return cmd.StartVirtualMachineSucceeded(vm_id=c.vm_id)


async def stopped(c: PowerChange, ctx: Ctx, planner: Planner):
    await hosts.release_for(ctx.conn, c.vm_id)
    await now(c, ctx, "Stopping", "Stopped")
    ctx.action("VM.STOP", "Completed", "VirtualMachine", c.vm_id, c.name, f"{c.name} is stopped")
    return cmd.StopVirtualMachineSucceeded(vm_id=c.vm_id)


async def rebooted(c: PowerChange, ctx: Ctx, planner: Planner):
    ctx.action("VM.REBOOT", "Completed", "VirtualMachine", c.vm_id, c.name, f"{c.name} is running again")
    return cmd.RebootVirtualMachineSucceeded(vm_id=c.vm_id)


async def destroyed(c: PowerChange, ctx: Ctx, planner: Planner):
    state = "Expunged" if c.expunge else "Destroyed"
    await hosts.release_for(ctx.conn, c.vm_id)
    await store.set_state(ctx.conn, c.vm_id, state)
    await store.release_nics(ctx.conn, c.vm_id)
    vm_state(ctx, c.vm_id, c.was, state)
    ctx.action("VM.DESTROY", "Completed", "VirtualMachine", c.vm_id, c.name, f"{c.name} is {state.lower()}")
    return cmd.DestroyVirtualMachineSucceeded(vm_id=c.vm_id, state=state)


def back_as_it_was(kind: str):
    async def failed(c: PowerChange, error: Failure, ctx: Ctx, planner: Planner) -> None:
        # A VM that was powered off and did not come back on is Stopped, whatever it was.
        state = "Stopped" if c.powered_off and kind != DESTROY else c.was
        await store.set_state(ctx.conn, c.vm_id, state)
        if kind == START or state == "Stopped":
            await hosts.release_for(ctx.conn, c.vm_id)
        ctx.action(f"VM.{kind.upper()}", "Failed", "VirtualMachine", c.vm_id, c.name, error.text)

    return failed


def failure_text(kind: str):
    return lambda c, doing, why: f"{kind} of {c.name} failed while {doing}: {why}"


def from_legacy(process: saga.Saga) -> saga.Saga:
    process.model = legacy_power_change(process.raw, process.resource_id)
    process.completed = list(process.raw.get("done", []))
    return process


def flow(kind: str, command: type, flow_steps: list[Step], succeed) -> Flow[PowerChange]:
    return Flow(
        kind=kind, command=command, state=PowerChange, steps=flow_steps, succeed=succeed,
        failed=back_as_it_was(kind), failure_text=failure_text(kind), legacy=from_legacy,
    )  # fmt: skip


START_FLOW = flow(START, cmd.StartVirtualMachine, [POWER_ON], started)
STOP_FLOW = flow(STOP, cmd.StopVirtualMachine, [POWER_OFF], stopped)
REBOOT_FLOW = flow(REBOOT, cmd.RebootVirtualMachine, [POWER_OFF, POWER_ON], rebooted)
DESTROY_FLOW = flow(DESTROY, cmd.DestroyVirtualMachine, DESTROY_STEPS, destroyed)


# -- the requests ----------------------------------------------------------------------------------


async def begin(ctx: Ctx, planner: Planner, flow_: Flow, instance, new_state: str, **extra) -> None:
    if (running := await saga.busy(ctx.conn, instance["uuid"])) is not None:
        raise DomainError(ErrorCode.RESOURCE_IN_USE, f"VM {instance['name']} is busy ({running} in progress)")
    change = PowerChange(
        vm_id=instance["uuid"], zone=instance["zone_id"], vm_ref=instance["vm_ref"], name=instance["name"],
        was=instance["state"], **extra,
    )  # fmt: skip
    await now(change, ctx, instance["state"], new_state)
    await pending.park(ctx, instance["uuid"], flow_.kind)  # first: the flow may end at once
    await steps.begin(ctx, flow_, instance["uuid"], change, planner)


async def start_virtual_machine(command: cmd.StartVirtualMachine, ctx: Ctx, planner: Planner):
    instance = await owned_instance(ctx, command.vm_id)
    if instance["state"] == "Running":
        return cmd.StartVirtualMachineSucceeded(vm_id=command.vm_id)
    if instance["state"] != "Stopped":
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"VM {instance['name']} is {instance['state']}; only a Stopped VM starts"
        )
    await hosts.reserve_again(ctx.conn, planner, command.vm_id)
    ctx.action(
        "VM.START",
        "Started",
        "VirtualMachine",
        command.vm_id,
        instance["name"],
        f"starting {instance['name']}",
    )
    await begin(ctx, planner, START_FLOW, instance, "Starting")
    return DEFERRED


async def stop_virtual_machine(command: cmd.StopVirtualMachine, ctx: Ctx, planner: Planner):
    instance = await owned_instance(ctx, command.vm_id)
    if instance["state"] == "Stopped":
        return cmd.StopVirtualMachineSucceeded(vm_id=command.vm_id)
    if instance["state"] != "Running":
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"VM {instance['name']} is {instance['state']}; only a Running VM stops"
        )
    ctx.action(
        "VM.STOP",
        "Started",
        "VirtualMachine",
        command.vm_id,
        instance["name"],
        f"stopping {instance['name']}",
    )
    await begin(ctx, planner, STOP_FLOW, instance, "Stopping")
    return DEFERRED


async def reboot_virtual_machine(command: cmd.RebootVirtualMachine, ctx: Ctx, planner: Planner):
    instance = await owned_instance(ctx, command.vm_id)
    if instance["state"] != "Running":
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"VM {instance['name']} is {instance['state']}; only a Running VM reboots"
        )
    name = instance["name"]
    ctx.action("VM.REBOOT", "Started", "VirtualMachine", command.vm_id, name, f"rebooting {name}")
    await begin(ctx, planner, REBOOT_FLOW, instance, "Running")
    return DEFERRED


async def destroy_virtual_machine(command: cmd.DestroyVirtualMachine, ctx: Ctx, planner: Planner):
    instance = await store.instance(ctx.conn, command.vm_id)
    if instance is None:
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM {command.vm_id} does not exist")
    # A failed or destroyed VM can always be cleaned up, but only by its own account.
    check_owner(ctx, instance)
    if instance["state"] == "Expunged" or (instance["state"] == "Destroyed" and not command.expunge):
        return cmd.DestroyVirtualMachineSucceeded(vm_id=command.vm_id, state=instance["state"])
    name = instance["name"]
    ctx.action("VM.DESTROY", "Started", "VirtualMachine", command.vm_id, name, f"destroying {name}")
    new_state = "Stopping" if instance["state"] == "Running" else instance["state"]
    await begin(ctx, planner, DESTROY_FLOW, instance, new_state, expunge=command.expunge)
    return DEFERRED
