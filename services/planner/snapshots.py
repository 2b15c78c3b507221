"""VM snapshots (a tree per instance) and adopting a vCenter VM with its snapshot tree.

Taking a snapshot: the agent takes it, reads its configuration (disks at that moment), and
storage records it, before the snapshot is Ready: so storage always knows a Ready snapshot
before any deployment from it asks for a seed. Adoption does the same for every snapshot a
VM already had ("VM snapshots created before the upgrade").
"""

from __future__ import annotations

import uuid
from typing import Any

from contracts import agent, storage
from contracts import planner as cmd
from contracts.base import CommandFailed
from contracts.catalogue import failed_reply
from contracts.errors import ErrorCode
from contracts.vsphere import VmInfo, root_disk
from services.planner import domain, saga
from services.planner.common import Planner, job
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED, HandlerContext

TAKE, REMOVE, ADOPT = "snapshot", "snapshot_delete", "import"
_ADOPTED = uuid.UUID("5c3e9a70-8d21-4f6b-b0c4-7e2a1d9f3b86")


def adopted_id(*parts: str) -> uuid.UUID:
    """Ids of adopted VMs, volumes and snapshots: the same vCenter object always gets the same id."""
    return uuid.uuid5(_ADOPTED, "/".join(parts))


async def owned_instance(ctx: HandlerContext, vm_id: uuid.UUID):
    instance = await ctx.conn.fetchrow("SELECT * FROM instances WHERE uuid = $1", vm_id)
    if instance is None or instance["state"] in ("Destroyed", "Expunged", "Error"):
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM {vm_id} does not exist")
    actor = ctx.envelope.actor
    if not domain.may_use(actor.role, actor.account_id, instance["account_id"]):
        raise DomainError(
            ErrorCode.ACCOUNT_ERROR, f"account {actor.account_id} may not use VM {instance['name']}"
        )
    return instance


# -- take ------------------------------------------------------------------------------------------------


async def create_vm_snapshot(command: cmd.CreateVmSnapshot, ctx: HandlerContext, planner: Planner):
    conn = ctx.conn
    existing = await conn.fetchrow(
        "SELECT * FROM vm_snapshots WHERE uuid = $1 FOR UPDATE", command.vm_snapshot_id
    )
    if existing is not None:
        if existing["state"] == "Ready":
            return cmd.CreateVmSnapshotSucceeded(
                vm_snapshot_id=existing["uuid"],
                vm_id=existing["instance_uuid"],
                parent_id=existing["parent_uuid"],
            )
        await pending.park(ctx, command.vm_snapshot_id, TAKE)
        return DEFERRED
    instance = await owned_instance(ctx, command.vm_id)
    if (running := await saga.busy(conn, command.vm_id)) is not None:
        raise DomainError(ErrorCode.RESOURCE_IN_USE, f"VM {instance['name']} is busy ({running} in progress)")
    parent = await conn.fetchval(
        """SELECT uuid FROM vm_snapshots WHERE instance_uuid = $1 AND state = 'Ready'
           ORDER BY created DESC LIMIT 1""",
        command.vm_id,
    )
    await conn.execute(
        """INSERT INTO vm_snapshots
               (uuid, instance_uuid, account_id, name, description, parent_uuid, memory, state)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'Creating')""",
        command.vm_snapshot_id,
        command.vm_id,
        instance["account_id"],
        command.name,
        command.description,
        parent,
        command.memory,
    )
    data = {
        "zone": instance["zone_id"],
        "vm_ref": instance["vm_ref"],
        "vm_id": str(command.vm_id),
        "name": command.name,
        "account": str(instance["account_id"]),
        "parent": str(parent) if parent else None,
    }
    taking = await saga.begin(ctx, TAKE, command.vm_snapshot_id, data)
    ctx.action(
        "VMSNAPSHOT.CREATE",
        "Started",
        "VMSnapshot",
        command.vm_snapshot_id,
        command.name,
        f"snapshot of {instance['name']}",
    )
    await saga.send(
        ctx,
        taking,
        "take",
        agent.CreateVmSnapshot(
            zone_id=instance["zone_id"],
            vm_ref=instance["vm_ref"],
            snapshot_id=str(command.vm_snapshot_id),
            name=command.name,
            description=command.description,
            memory=command.memory,
        ),
        timeout=planner.step_timeout,
    )
    await pending.park(ctx, command.vm_snapshot_id, TAKE)
    return DEFERRED


async def advance_take(taking: saga.Saga, reply: Any, ctx: HandlerContext, planner: Planner) -> None:
    d = taking.data
    if isinstance(reply, CommandFailed):
        await ctx.conn.execute("UPDATE vm_snapshots SET state = 'Error' WHERE uuid = $1", taking.resource_id)
        await end(
            ctx,
            taking,
            TAKE,
            cmd.CreateVmSnapshot,
            error=(
                reply.error_code,
                f"taking VM snapshot {d['name']} failed: {reply.error_text}",
                reply.fault,
            ),
        )
        return
    if taking.step == "take":
        d["ref"] = reply.snapshot.ref
        await ctx.conn.execute(
            "UPDATE vm_snapshots SET snapshot_ref = $2 WHERE uuid = $1", taking.resource_id, d["ref"]
        )
        await saga.send(
            ctx,
            taking,
            "configs",
            agent.GetVmSnapshotConfigs(zone_id=d["zone"], vm_ref=d["vm_ref"], snapshot_ref=d["ref"]),
            timeout=planner.step_timeout,
        )
    elif taking.step == "configs":
        d["disks"] = [disk.model_dump(mode="json") for disk in reply.config.disks]
        d["config"] = reply.config.model_dump(mode="json")
        await saga.send(
            ctx,
            taking,
            "record",
            storage.RecordVmSnapshot(
                vm_snapshot_id=taking.resource_id,
                vm_id=uuid.UUID(d["vm_id"]),
                account_id=uuid.UUID(d["account"]),
                zone_id=d["zone"],
                vm_ref=d["vm_ref"],
                snapshot_ref=d["ref"],
                name=d["name"],
                disks=reply.config.disks,
            ),
            timeout=planner.step_timeout,
        )
    else:
        await ctx.conn.execute(
            "UPDATE vm_snapshots SET state = 'Ready', disks = $2, config = $3 WHERE uuid = $1",
            taking.resource_id,
            d["disks"],
            d["config"],
        )
        ctx.action(
            "VMSNAPSHOT.CREATE",
            "Completed",
            "VMSnapshot",
            taking.resource_id,
            d["name"],
            f"VM snapshot {d['name']} is ready",
        )
        done = cmd.CreateVmSnapshotSucceeded(
            vm_snapshot_id=taking.resource_id, vm_id=uuid.UUID(d["vm_id"]), parent_id=d["parent"]
        )
        await end(ctx, taking, TAKE, cmd.CreateVmSnapshot, result=done)


# -- delete --------------------------------------------------------------------------------------------------


async def delete_vm_snapshot(command: cmd.DeleteVmSnapshot, ctx: HandlerContext, planner: Planner):
    conn = ctx.conn
    snapshot = await conn.fetchrow("SELECT * FROM vm_snapshots WHERE uuid = $1", command.vm_snapshot_id)
    if snapshot is None or snapshot["state"] == "Removed":
        return cmd.DeleteVmSnapshotSucceeded(vm_snapshot_id=command.vm_snapshot_id)
    instance = await owned_instance(ctx, snapshot["instance_uuid"])
    if await saga.running(conn, REMOVE, command.vm_snapshot_id):
        await pending.park(ctx, command.vm_snapshot_id, REMOVE)
        return DEFERRED
    data = {"zone": instance["zone_id"], "vm_ref": instance["vm_ref"], "name": snapshot["name"]}
    removing = await saga.begin(ctx, REMOVE, command.vm_snapshot_id, data)
    await conn.execute("UPDATE vm_snapshots SET state = 'Removing' WHERE uuid = $1", command.vm_snapshot_id)
    await saga.send(
        ctx,
        removing,
        "remove",
        agent.RemoveVmSnapshot(
            zone_id=instance["zone_id"], vm_ref=instance["vm_ref"], snapshot_ref=snapshot["snapshot_ref"]
        ),
        timeout=planner.step_timeout,
    )
    await pending.park(ctx, command.vm_snapshot_id, REMOVE)
    return DEFERRED


async def advance_remove(removing: saga.Saga, reply: Any, ctx: HandlerContext, planner: Planner) -> None:
    d = removing.data
    if isinstance(reply, CommandFailed):
        await ctx.conn.execute(
            "UPDATE vm_snapshots SET state = 'Ready' WHERE uuid = $1", removing.resource_id
        )
        await end(
            ctx,
            removing,
            REMOVE,
            cmd.DeleteVmSnapshot,
            error=(
                reply.error_code,
                f"deleting VM snapshot {d['name']} failed: {reply.error_text}",
                reply.fault,
            ),
        )
        return
    if removing.step == "remove":
        await saga.send(
            ctx,
            removing,
            "forget",
            storage.ForgetVmSnapshot(vm_snapshot_id=removing.resource_id),
            timeout=planner.step_timeout,
        )
        return
    removed = await ctx.conn.fetchrow(
        "UPDATE vm_snapshots SET state = 'Removed' WHERE uuid = $1 RETURNING parent_uuid",
        removing.resource_id,
    )
    # vSphere keeps the children, hung from the removed snapshot's parent.
    await ctx.conn.execute(
        "UPDATE vm_snapshots SET parent_uuid = $2 WHERE parent_uuid = $1",
        removing.resource_id,
        removed["parent_uuid"],
    )
    ctx.action(
        "VMSNAPSHOT.DELETE",
        "Completed",
        "VMSnapshot",
        removing.resource_id,
        d["name"],
        f"VM snapshot {d['name']} deleted",
    )
    await end(
        ctx,
        removing,
        REMOVE,
        cmd.DeleteVmSnapshot,
        result=cmd.DeleteVmSnapshotSucceeded(vm_snapshot_id=removing.resource_id),
    )


# -- adopt a vCenter VM --------------------------------------------------------------------------------------


async def import_virtual_machine(command: cmd.ImportVirtualMachine, ctx: HandlerContext, planner: Planner):
    conn = ctx.conn
    if ctx.envelope.actor.role == "user":
        raise DomainError(ErrorCode.ACCOUNT_ERROR, "only an admin may import a VM into an account")
    info = await conn.fetchval(
        "SELECT info FROM vcenter_vms WHERE zone_id = $1 AND ref = $2", command.zone_id, command.vm_ref
    )
    if info is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"zone {command.zone_id} has no VM {command.vm_ref} (sync the zone's inventory first)",
        )
    vm = VmInfo.model_validate(info)
    if vm.template or not vm.disks:
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"{vm.name} is a template or has no disk; only VMs can be imported"
        )
    vm_id = adopted_id(command.zone_id, vm.ref)
    if await saga.running(conn, ADOPT, vm_id):
        await pending.park(ctx, vm_id, ADOPT)
        return DEFERRED
    if await conn.fetchval("SELECT 1 FROM instances WHERE uuid = $1", vm_id):
        snapshots = await conn.fetch(
            "SELECT uuid FROM vm_snapshots WHERE instance_uuid = $1 ORDER BY created", vm_id
        )
        return cmd.ImportVirtualMachineSucceeded(vm_id=vm_id, vm_snapshot_ids=[r["uuid"] for r in snapshots])
    root = root_disk(vm.disks)
    host = await conn.fetchval(
        "SELECT uuid FROM hosts WHERE zone_id = $1 AND ref = $2", command.zone_id, vm.host
    )
    await conn.execute(
        """INSERT INTO instances (uuid, name, display_name, account_id, zone_id, state, host_uuid, vm_ref,
               service_offering_id, root_volume_id, pool, cpu_number, cpu_speed_mhz, memory_mb)
           VALUES ($1, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 0, $12)""",
        vm_id,
        vm.name,
        command.account_id,
        command.zone_id,
        "Running" if vm.power_state == "poweredOn" else "Stopped",
        host,
        vm.ref,
        command.service_offering_id,
        adopted_id(command.zone_id, vm.ref, str(root.key)),
        root.datastore,
        vm.num_cpus,
        vm.memory_mb,
    )
    ids = {s.ref: adopted_id(command.zone_id, vm.ref, s.ref) for s in vm.snapshots}
    for s in vm.snapshots:  # parents come first
        await conn.execute(
            """INSERT INTO vm_snapshots
                   (uuid, instance_uuid, account_id, name, description, parent_uuid, snapshot_ref,
                   memory, state, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'Creating', $9)""",
            ids[s.ref],
            vm_id,
            command.account_id,
            s.name,
            s.description,
            ids.get(s.parent_ref),
            s.ref,
            s.has_memory,
            s.created,
        )
    volumes = [
        storage.VmVolume(
            volume_id=adopted_id(command.zone_id, vm.ref, str(disk.key)),
            type="ROOT" if disk.key == root.key else "DATADISK",
            disk=disk,
        )
        for disk in vm.disks
    ]
    data = {
        "zone": command.zone_id,
        "vm_ref": vm.ref,
        "name": vm.name,
        "account": str(command.account_id),
        "snapshots": [{"id": str(ids[s.ref]), "ref": s.ref, "name": s.name} for s in vm.snapshots],
        "index": 0,
    }
    adopting = await saga.begin(ctx, ADOPT, vm_id, data)
    await saga.send(
        ctx,
        adopting,
        "record_vm",
        storage.RecordVirtualMachine(
            vm_id=vm_id,
            account_id=command.account_id,
            zone_id=command.zone_id,
            vm_ref=vm.ref,
            name=vm.name,
            volumes=volumes,
        ),
        timeout=planner.step_timeout,
    )
    await pending.park(ctx, vm_id, ADOPT)
    return DEFERRED


async def advance_adopt(adopting: saga.Saga, reply: Any, ctx: HandlerContext, planner: Planner) -> None:
    d = adopting.data
    if isinstance(reply, CommandFailed):
        # Nothing half-made is kept: the next import starts again with the same ids.
        await ctx.conn.execute("DELETE FROM vm_snapshots WHERE instance_uuid = $1", adopting.resource_id)
        await ctx.conn.execute("DELETE FROM instances WHERE uuid = $1", adopting.resource_id)
        await end(
            ctx,
            adopting,
            ADOPT,
            cmd.ImportVirtualMachine,
            error=(reply.error_code, f"importing {d['name']} failed: {reply.error_text}", reply.fault),
        )
        return
    snapshots = d["snapshots"]
    if adopting.step == "configs":
        current = snapshots[d["index"]]
        current["disks"] = [disk.model_dump(mode="json") for disk in reply.config.disks]
        current["config"] = reply.config.model_dump(mode="json")
        await saga.send(
            ctx,
            adopting,
            "record_snapshot",
            storage.RecordVmSnapshot(
                vm_snapshot_id=uuid.UUID(current["id"]),
                vm_id=adopting.resource_id,
                account_id=uuid.UUID(d["account"]),
                zone_id=d["zone"],
                vm_ref=d["vm_ref"],
                snapshot_ref=current["ref"],
                name=current["name"],
                disks=reply.config.disks,
            ),
            timeout=planner.step_timeout,
        )
        return
    if adopting.step == "record_snapshot":
        current = snapshots[d["index"]]
        await ctx.conn.execute(
            "UPDATE vm_snapshots SET state = 'Ready', disks = $2, config = $3 WHERE uuid = $1",
            uuid.UUID(current["id"]),
            current["disks"],
            current["config"],
        )
        d["index"] += 1
    if d["index"] < len(snapshots):
        current = snapshots[d["index"]]
        await saga.send(
            ctx,
            adopting,
            "configs",
            agent.GetVmSnapshotConfigs(zone_id=d["zone"], vm_ref=d["vm_ref"], snapshot_ref=current["ref"]),
            timeout=planner.step_timeout,
        )
        return
    ctx.action(
        "VM.IMPORT",
        "Completed",
        "VirtualMachine",
        adopting.resource_id,
        d["name"],
        f"adopted {d['name']} with {len(snapshots)} VM snapshots",
        account_id=uuid.UUID(d["account"]),
    )
    done = cmd.ImportVirtualMachineSucceeded(
        vm_id=adopting.resource_id, vm_snapshot_ids=[uuid.UUID(s["id"]) for s in snapshots]
    )
    await end(ctx, adopting, ADOPT, cmd.ImportVirtualMachine, result=done)


# -- the end of any of these -------------------------------------------------------------------------


async def end(
    ctx: HandlerContext, process: saga.Saga, operation: str, command: type, *, result=None, error=None
):
    if error is not None:
        code, text, fault = error
        await saga.finish(ctx, process, failed=True, code=code, text=text)
        reply = failed_reply(command)(error_code=code, error_text=text, fault=fault)
        job(ctx, "failed", command.type_name(), error_code=code, error_text=text)
    else:
        await saga.finish(ctx, process)
        reply = result
        job(ctx, "succeeded", command.type_name(), result=result.model_dump(mode="json"))
    ctx.outgoing.extend(
        await pending.answer(ctx.conn, process.resource_id, operation, reply, source="planner")
    )


async def timed_out(process: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    command = {TAKE: cmd.CreateVmSnapshot, REMOVE: cmd.DeleteVmSnapshot, ADOPT: cmd.ImportVirtualMachine}[
        process.kind
    ]
    operation = {TAKE: TAKE, REMOVE: REMOVE, ADOPT: ADOPT}[process.kind]
    await end(
        ctx,
        process,
        operation,
        command,
        error=(ErrorCode.INTERNAL_ERROR, f"{process.step}: no reply within its deadline", None),
    )
