"""Start, stop and destroy any instance (deployed from a snapshot or not): the same for all.

Capacity on the host is held while an instance runs: reserved again on start (533 when the
host has no room), released on stop and destroy. Destroy with ``expunge`` also removes the
vCenter VM and hands the root volume to the storage scavenger.
"""

from __future__ import annotations

from typing import Any

from contracts import agent, storage
from contracts import planner as cmd
from contracts.base import CommandFailed
from contracts.errors import ErrorCode
from services.planner import hosts, saga
from services.planner.common import Planner, vm_state
from services.planner.snapshots import end, owned_instance
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED, HandlerContext

START, STOP, DESTROY = "start", "stop", "destroy"


async def begin(ctx: HandlerContext, kind: str, instance, new_state: str, data: dict[str, Any]) -> saga.Saga:
    if (running := await saga.busy(ctx.conn, instance["uuid"])) is not None:
        raise DomainError(ErrorCode.RESOURCE_IN_USE, f"VM {instance['name']} is busy ({running} in progress)")
    await ctx.conn.execute(
        "UPDATE instances SET state = $2, updated = now() WHERE uuid = $1", instance["uuid"], new_state
    )
    vm_state(ctx, instance["uuid"], instance["state"], new_state)
    base = {
        "zone": instance["zone_id"],
        "vm_ref": instance["vm_ref"],
        "name": instance["name"],
        "was": instance["state"],
    }
    return await saga.begin(ctx, kind, instance["uuid"], {**base, **data})


async def start_virtual_machine(command: cmd.StartVirtualMachine, ctx: HandlerContext, planner: Planner):
    instance = await owned_instance(ctx, command.vm_id)
    if instance["state"] == "Running":
        return cmd.StartVirtualMachineSucceeded(vm_id=command.vm_id)
    if instance["state"] != "Stopped":
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"VM {instance['name']} is {instance['state']}; only a Stopped VM starts"
        )
    await hosts.reserve_again(ctx.conn, planner, command.vm_id)
    starting = await begin(ctx, START, instance, "Starting", {})
    ctx.action(
        "VM.START",
        "Started",
        "VirtualMachine",
        command.vm_id,
        instance["name"],
        f"starting {instance['name']}",
    )
    await saga.send(
        ctx,
        starting,
        "power_on",
        agent.PowerOnVm(zone_id=instance["zone_id"], vm_ref=instance["vm_ref"]),
        timeout=planner.step_timeout,
    )
    await pending.park(ctx, command.vm_id, START)
    return DEFERRED


async def stop_virtual_machine(command: cmd.StopVirtualMachine, ctx: HandlerContext, planner: Planner):
    instance = await owned_instance(ctx, command.vm_id)
    if instance["state"] == "Stopped":
        return cmd.StopVirtualMachineSucceeded(vm_id=command.vm_id)
    if instance["state"] != "Running":
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"VM {instance['name']} is {instance['state']}; only a Running VM stops"
        )
    stopping = await begin(ctx, STOP, instance, "Stopping", {})
    ctx.action(
        "VM.STOP",
        "Started",
        "VirtualMachine",
        command.vm_id,
        instance["name"],
        f"stopping {instance['name']}",
    )
    await saga.send(
        ctx,
        stopping,
        "power_off",
        agent.PowerOffVm(zone_id=instance["zone_id"], vm_ref=instance["vm_ref"]),
        timeout=planner.step_timeout,
    )
    await pending.park(ctx, command.vm_id, STOP)
    return DEFERRED


async def destroy_virtual_machine(command: cmd.DestroyVirtualMachine, ctx: HandlerContext, planner: Planner):
    instance = await ctx.conn.fetchrow("SELECT * FROM instances WHERE uuid = $1", command.vm_id)
    if instance is None:
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM {command.vm_id} does not exist")
    if instance["state"] == "Expunged" or (instance["state"] == "Destroyed" and not command.expunge):
        return cmd.DestroyVirtualMachineSucceeded(vm_id=command.vm_id, state=instance["state"])
    if instance["state"] not in ("Destroyed", "Error"):  # a failed or destroyed VM can always be cleaned up
        await owned_instance(ctx, command.vm_id)
    destroying = await begin(
        ctx,
        DESTROY,
        instance,
        "Stopping" if instance["state"] == "Running" else instance["state"],
        {"expunge": command.expunge},
    )
    ctx.action(
        "VM.DESTROY",
        "Started",
        "VirtualMachine",
        command.vm_id,
        instance["name"],
        f"destroying {instance['name']}",
    )
    await destroy_next(destroying, ctx, planner)
    await pending.park(ctx, command.vm_id, DESTROY)
    return DEFERRED


async def destroy_next(destroying: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    d = destroying.data
    order = ["power_off"] if d["was"] == "Running" else []
    if d["expunge"]:
        order += (["destroy_vm"] if d["vm_ref"] else []) + ["volumes"]
    done = d.setdefault("done", [])
    remaining = [step for step in order if step not in done]
    if not remaining:
        await finish_destroy(destroying, ctx)
        return
    step = remaining[0]
    if step == "power_off":
        command = agent.PowerOffVm(zone_id=d["zone"], vm_ref=d["vm_ref"])
    elif step == "destroy_vm":
        command = agent.DestroyVm(zone_id=d["zone"], vm_ref=d["vm_ref"])
    else:
        command = storage.DestroyVmVolumes(vm_id=destroying.resource_id)
    await saga.send(ctx, destroying, step, command, timeout=planner.step_timeout)


async def finish_destroy(destroying: saga.Saga, ctx: HandlerContext) -> None:
    d = destroying.data
    state = "Expunged" if d["expunge"] else "Destroyed"
    await hosts.release_for(ctx.conn, destroying.resource_id)
    await ctx.conn.execute(
        "UPDATE instances SET state = $2, updated = now() WHERE uuid = $1", destroying.resource_id, state
    )
    await ctx.conn.execute(
        "UPDATE nics SET state = 'Released' WHERE instance_uuid = $1", destroying.resource_id
    )
    vm_state(ctx, destroying.resource_id, d["was"], state)
    ctx.action(
        "VM.DESTROY",
        "Completed",
        "VirtualMachine",
        destroying.resource_id,
        d["name"],
        f"{d['name']} is {state.lower()}",
    )
    await end(
        ctx,
        destroying,
        DESTROY,
        cmd.DestroyVirtualMachine,
        result=cmd.DestroyVirtualMachineSucceeded(vm_id=destroying.resource_id, state=state),
    )


async def advance(process: saga.Saga, reply: Any, ctx: HandlerContext, planner: Planner) -> None:
    d = process.data
    vm_id = process.resource_id
    command = {
        START: cmd.StartVirtualMachine,
        STOP: cmd.StopVirtualMachine,
        DESTROY: cmd.DestroyVirtualMachine,
    }[process.kind]
    if isinstance(reply, CommandFailed):
        await ctx.conn.execute(
            "UPDATE instances SET state = $2, updated = now() WHERE uuid = $1", vm_id, d["was"]
        )
        if process.kind == START:
            await hosts.release_for(ctx.conn, vm_id)
        text = f"{process.kind} of {d['name']} failed: {reply.error_text}"
        ctx.action(f"VM.{process.kind.upper()}", "Failed", "VirtualMachine", vm_id, d["name"], text)
        await end(ctx, process, process.kind, command, error=(reply.error_code, text, reply.fault))
        return
    if process.kind == DESTROY:
        d["done"].append(process.step)
        await destroy_next(process, ctx, planner)
        return
    new_state = "Running" if process.kind == START else "Stopped"
    if process.kind == STOP:
        await hosts.release_for(ctx.conn, vm_id)
    await ctx.conn.execute(
        "UPDATE instances SET state = $2, updated = now() WHERE uuid = $1", vm_id, new_state
    )
    vm_state(ctx, vm_id, "Starting" if process.kind == START else "Stopping", new_state)
    ctx.action(
        f"VM.{process.kind.upper()}",
        "Completed",
        "VirtualMachine",
        vm_id,
        d["name"],
        f"{d['name']} is {new_state.lower()}",
    )
    result = (
        cmd.StartVirtualMachineSucceeded(vm_id=vm_id)
        if process.kind == START
        else cmd.StopVirtualMachineSucceeded(vm_id=vm_id)
    )
    await end(ctx, process, process.kind, command, result=result)


async def timed_out(process: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    failure = {
        "error_code": ErrorCode.INTERNAL_ERROR,
        "error_text": f"{process.step}: no reply within its deadline",
        "fault": None,
    }
    await advance(process, _Timeout(**failure), ctx, planner)


class _Timeout(CommandFailed):
    """A step that never answered, treated as a failed reply."""
