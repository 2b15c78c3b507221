"""VM snapshots: a tree per instance, as vCenter has it. Taking, deleting, reverting to one.

Taking a snapshot: the agent takes it, reads its configuration (disks at that moment), and
storage records it, before the snapshot is Ready: so storage always knows a Ready snapshot
before any deployment from it asks for a seed. Its parent is the one vCenter names (the VM's
current snapshot, which a revert moves), never the last one recorded here; every inventory
sync corrects the tree and ``current`` (``tree``).
"""

from __future__ import annotations

from contracts import agent, storage
from contracts import planner as cmd
from contracts.errors import ErrorCode
from services.planner import hosts, saga, steps, store, tree
from services.planner.common import Planner, owned_instance, vm_state
from services.planner.state import Snapshotting
from services.planner.steps import Failure, Flow, Step
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED
from shared.messaging import HandlerContext as Ctx

TAKE, REMOVE, REVERT = "snapshot", "snapshot_delete", "revert"


# -- take ------------------------------------------------------------------------------------------


async def take(s: Snapshotting, ctx: Ctx, planner: Planner):
    return agent.CreateVmSnapshot(
        zone_id=s.zone, vm_ref=s.vm_ref, snapshot_id=str(s.vm_snapshot_id), name=s.name,
        description=s.description, memory=s.memory,
    )  # fmt: skip


async def taken(s: Snapshotting, reply: agent.CreateVmSnapshotSucceeded, ctx: Ctx, planner: Planner):
    s.snapshot_ref = reply.snapshot.ref
    s.parent_id = await tree.snapshot_id(ctx.conn, s.vm_id, reply.snapshot.parent_ref)
    await store.snapshot_taken(ctx.conn, s.vm_snapshot_id, s.snapshot_ref, s.parent_id)
    await tree.make_current(ctx.conn, s.vm_id, s.vm_snapshot_id)


async def remove_taken(s: Snapshotting, ctx: Ctx, planner: Planner):
    """A snapshot that will not be Ready is not left in vCenter; its parent is current again."""
    await tree.make_current(ctx.conn, s.vm_id, s.parent_id)
    return agent.RemoveVmSnapshot(zone_id=s.zone, vm_ref=s.vm_ref, snapshot_ref=s.snapshot_ref)


async def read_config(s: Snapshotting, ctx: Ctx, planner: Planner):
    return agent.GetVmSnapshotConfigs(zone_id=s.zone, vm_ref=s.vm_ref, snapshot_ref=s.snapshot_ref)


async def config_read(
    s: Snapshotting, reply: agent.GetVmSnapshotConfigsSucceeded, ctx: Ctx, planner: Planner
):
    s.config = reply.config


async def record(s: Snapshotting, ctx: Ctx, planner: Planner):
    return storage.RecordVmSnapshot(
        vm_snapshot_id=s.vm_snapshot_id, vm_id=s.vm_id, account_id=s.account, zone_id=s.zone,
        vm_ref=s.vm_ref, snapshot_ref=s.snapshot_ref, name=s.name, disks=s.config.disks,
    )  # fmt: skip


TAKE_STEPS = [
    Step("take", "taking the vCenter snapshot", take, (agent.CreateVmSnapshot,), taken,
         undo=remove_taken, undo_sends=(agent.RemoveVmSnapshot,)),
    Step("configs", "reading its configuration", read_config, (agent.GetVmSnapshotConfigs,), config_read),
    Step("record", "recording it with storage", record, (storage.RecordVmSnapshot,)),
]  # fmt: skip


async def ready(s: Snapshotting, ctx: Ctx, planner: Planner):
    await store.snapshot_ready(ctx.conn, s.vm_snapshot_id, s.config)
    description = f"VM snapshot {s.name} is ready"
    ctx.action("VMSNAPSHOT.CREATE", "Completed", "VMSnapshot", s.vm_snapshot_id, s.name, description)
    return cmd.CreateVmSnapshotSucceeded(
        vm_snapshot_id=s.vm_snapshot_id, vm_id=s.vm_id, parent_id=s.parent_id
    )


async def not_taken(s: Snapshotting, error: Failure, ctx: Ctx, planner: Planner) -> None:
    await store.snapshot_state(ctx.conn, s.vm_snapshot_id, "Error")


def from_legacy_take(process: saga.Saga) -> saga.Saga:
    d = process.raw
    process.model = Snapshotting(
        vm_snapshot_id=process.resource_id, vm_id=d["vm_id"], zone=d["zone"], vm_ref=d["vm_ref"],
        name=d["name"], account=d["account"], snapshot_ref=d.get("ref"), parent_id=d.get("parent"),
        config=d.get("config"),
    )  # fmt: skip
    order = [s.name for s in TAKE_STEPS]
    process.completed = order[: order.index(process.step)] if process.step in order else []
    return process


TAKE_FLOW = Flow(
    kind=TAKE, command=cmd.CreateVmSnapshot, state=Snapshotting, steps=TAKE_STEPS, succeed=ready,
    failed=not_taken,
    failure_text=lambda s, doing, why: f"taking VM snapshot {s.name} failed while {doing}: {why}",
    legacy=from_legacy_take,
)  # fmt: skip


async def create_vm_snapshot(command: cmd.CreateVmSnapshot, ctx: Ctx, planner: Planner):
    conn = ctx.conn
    existing = await store.snapshot(conn, command.vm_snapshot_id, lock=True)
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
    await store.add_snapshot(
        conn,
        uuid=command.vm_snapshot_id,
        instance_uuid=command.vm_id,
        account_id=instance["account_id"],
        name=command.name,
        description=command.description,
        memory=command.memory,
    )
    taking = Snapshotting(
        vm_snapshot_id=command.vm_snapshot_id, vm_id=command.vm_id, zone=instance["zone_id"],
        vm_ref=instance["vm_ref"], name=command.name, account=instance["account_id"],
        description=command.description, memory=command.memory,
    )  # fmt: skip
    ctx.action(
        "VMSNAPSHOT.CREATE", "Started", "VMSnapshot", command.vm_snapshot_id, command.name,
        f"snapshot of {instance['name']}",
    )  # fmt: skip
    await pending.park(ctx, command.vm_snapshot_id, TAKE)
    await steps.begin(ctx, TAKE_FLOW, command.vm_snapshot_id, taking, planner)
    return DEFERRED


# -- delete ----------------------------------------------------------------------------------------


async def remove(s: Snapshotting, ctx: Ctx, planner: Planner):
    return agent.RemoveVmSnapshot(zone_id=s.zone, vm_ref=s.vm_ref, snapshot_ref=s.snapshot_ref)


async def forget(s: Snapshotting, ctx: Ctx, planner: Planner):
    return storage.ForgetVmSnapshot(vm_snapshot_id=s.vm_snapshot_id)


async def removed(s: Snapshotting, ctx: Ctx, planner: Planner):
    await tree.remove(ctx.conn, s.vm_snapshot_id)
    description = f"VM snapshot {s.name} deleted"
    ctx.action("VMSNAPSHOT.DELETE", "Completed", "VMSnapshot", s.vm_snapshot_id, s.name, description)
    return cmd.DeleteVmSnapshotSucceeded(vm_snapshot_id=s.vm_snapshot_id)


async def kept(s: Snapshotting, error: Failure, ctx: Ctx, planner: Planner) -> None:
    await store.snapshot_state(ctx.conn, s.vm_snapshot_id, "Ready")


def from_legacy_remove(process: saga.Saga) -> saga.Saga:
    d = process.raw
    process.model = Snapshotting(
        vm_snapshot_id=process.resource_id, zone=d["zone"], vm_ref=d["vm_ref"], name=d["name"]
    )
    process.completed = ["remove"] if process.step == "forget" else []
    return process


REMOVE_FLOW = Flow(
    kind=REMOVE, command=cmd.DeleteVmSnapshot, state=Snapshotting,
    steps=[
        Step("remove", "removing the vCenter snapshot", remove, (agent.RemoveVmSnapshot,)),
        Step("forget", "telling storage", forget, (storage.ForgetVmSnapshot,)),
    ],
    succeed=removed, failed=kept,
    failure_text=lambda s, doing, why: f"deleting VM snapshot {s.name} failed while {doing}: {why}",
    legacy=from_legacy_remove,
)  # fmt: skip


async def delete_vm_snapshot(command: cmd.DeleteVmSnapshot, ctx: Ctx, planner: Planner):
    conn = ctx.conn
    snapshot = await store.snapshot(conn, command.vm_snapshot_id)
    if snapshot is None or snapshot["state"] == "Removed":
        return cmd.DeleteVmSnapshotSucceeded(vm_snapshot_id=command.vm_snapshot_id)
    instance = await owned_instance(ctx, snapshot["instance_uuid"])
    await pending.park(ctx, command.vm_snapshot_id, REMOVE)
    if await saga.running(conn, REMOVE, command.vm_snapshot_id):
        return DEFERRED
    await store.snapshot_state(conn, command.vm_snapshot_id, "Removing")
    removing = Snapshotting(
        vm_snapshot_id=command.vm_snapshot_id, vm_id=instance["uuid"], zone=instance["zone_id"],
        vm_ref=instance["vm_ref"], name=snapshot["name"], account=instance["account_id"],
        snapshot_ref=snapshot["snapshot_ref"],
    )  # fmt: skip
    await steps.begin(ctx, REMOVE_FLOW, command.vm_snapshot_id, removing, planner)
    return DEFERRED


# -- revert to -------------------------------------------------------------------------------------


async def revert(s: Snapshotting, ctx: Ctx, planner: Planner):
    return agent.RevertToVmSnapshot(zone_id=s.zone, vm_ref=s.vm_ref, snapshot_ref=s.snapshot_ref)


async def reverted(s: Snapshotting, reply: agent.RevertToVmSnapshotSucceeded, ctx: Ctx, planner: Planner):
    await tree.make_current(ctx.conn, s.vm_id, s.vm_snapshot_id)
    now = "Running" if reply.power_state == "poweredOn" else "Stopped"
    was = await store.state_of(ctx.conn, s.vm_id)
    if was != now:  # a snapshot without memory leaves the VM powered off
        if now == "Stopped":
            await hosts.release_for(ctx.conn, s.vm_id)
        await store.set_state(ctx.conn, s.vm_id, now)
        vm_state(ctx, s.vm_id, was, now)


async def back_on(s: Snapshotting, ctx: Ctx, planner: Planner):
    description = f"VM reverted to VM snapshot {s.name}"
    ctx.action("VMSNAPSHOT.REVERTTO", "Completed", "VMSnapshot", s.vm_snapshot_id, s.name, description)
    return cmd.RevertToVmSnapshotSucceeded(vm_id=s.vm_id, vm_snapshot_id=s.vm_snapshot_id)


async def not_reverted(s: Snapshotting, error: Failure, ctx: Ctx, planner: Planner) -> None:
    ctx.action("VMSNAPSHOT.REVERTTO", "Failed", "VMSnapshot", s.vm_snapshot_id, s.name, error.text)


REVERT_FLOW = Flow(
    kind=REVERT, command=cmd.RevertToVmSnapshot, state=Snapshotting,
    steps=[Step("revert", "reverting in vCenter", revert, (agent.RevertToVmSnapshot,), reverted)],
    succeed=back_on, failed=not_reverted,
    failure_text=lambda s, doing, why: f"reverting to VM snapshot {s.name} failed while {doing}: {why}",
)  # fmt: skip


async def revert_to_vm_snapshot(command: cmd.RevertToVmSnapshot, ctx: Ctx, planner: Planner):
    snapshot = await store.snapshot(ctx.conn, command.vm_snapshot_id)
    if snapshot is None or snapshot["state"] != "Ready":
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM snapshot {command.vm_snapshot_id} does not exist")
    instance = await owned_instance(ctx, snapshot["instance_uuid"])
    if (running := await saga.busy(ctx.conn, instance["uuid"])) is not None:
        raise DomainError(ErrorCode.RESOURCE_IN_USE, f"VM {instance['name']} is busy ({running} in progress)")
    reverting = Snapshotting(
        vm_snapshot_id=command.vm_snapshot_id, vm_id=instance["uuid"], zone=instance["zone_id"],
        vm_ref=instance["vm_ref"], name=snapshot["name"], account=instance["account_id"],
        snapshot_ref=snapshot["snapshot_ref"],
    )  # fmt: skip
    ctx.action(
        "VMSNAPSHOT.REVERTTO", "Started", "VMSnapshot", command.vm_snapshot_id, snapshot["name"],
        f"reverting {instance['name']} to {snapshot['name']}",
    )  # fmt: skip
    # The VM is the resource: nothing else runs on it meanwhile.
    await pending.park(ctx, instance["uuid"], REVERT)
    await steps.begin(ctx, REVERT_FLOW, instance["uuid"], reverting, planner)
    return DEFERRED
