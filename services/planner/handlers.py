"""Planner handlers, by message type; the registry is at the end.

Commands of the planner catalogue start processes (sagas); every reply to a command the
planner sent comes back on ``planner.replies`` and moves the saga that awaits it.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from datetime import UTC, datetime

import structlog

from contracts import agent, storage
from contracts import planner as cmd
from contracts.catalogue import failed_reply, succeeded_reply
from contracts.envelope import Envelope
from contracts.events import InventorySynced
from services.planner import deploy, inventory, lifecycle, offerings, principals, queries, saga, snapshots
from services.planner.common import Planner
from shared.db import outbox
from shared.messaging import HandlerContext, Handlers

log = structlog.get_logger("planner")

FLOWS = {
    deploy.DEPLOY: (deploy.advance, deploy.timed_out),
    snapshots.TAKE: (snapshots.advance_take, snapshots.timed_out),
    snapshots.REMOVE: (snapshots.advance_remove, snapshots.timed_out),
    snapshots.ADOPT: (snapshots.advance_adopt, snapshots.timed_out),
    lifecycle.START: (lifecycle.advance, lifecycle.timed_out),
    lifecycle.STOP: (lifecycle.advance, lifecycle.timed_out),
    lifecycle.DESTROY: (lifecycle.advance, lifecycle.timed_out),
}

# The commands the planner sends; their replies move sagas.
SENT = (
    agent.GetVmSnapshotConfigs,
    agent.CloneFromSnapshot,
    agent.ReconfigureVm,
    agent.AttachNic,
    agent.PowerOnVm,
    agent.PowerOffVm,
    agent.DestroyVm,
    agent.CreateVmSnapshot,
    agent.RemoveVmSnapshot,
    storage.SeedTemplateFromVmSnapshot,
    storage.AllocateRootVolume,
    storage.RecordVirtualMachine,
    storage.RecordVmSnapshot,
    storage.ForgetVmSnapshot,
    storage.DestroyVmVolumes,
)


async def on_reply(reply, ctx: HandlerContext, planner: Planner) -> None:
    process = await saga.awaiting(ctx.conn, ctx.envelope.causation_id)
    if process is None:
        return  # a late reply to a step that was re-sent, or not ours
    advance, _ = FLOWS[process.kind]
    await advance(process, reply, ctx, planner)


async def watchdog(runtime, *, planner: Planner, interval: float, max_resends: int) -> None:
    """Late replies: re-send the step's idempotent command; after ``max_resends``, the step fails."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                cause = Envelope(
                    message_id=uuid.uuid4(),
                    type="SagaWatchdog",
                    schema_version=1,
                    occurred_at=datetime.now(UTC),
                    source="planner",
                    payload={},
                )
                ctx = HandlerContext(cause, "planner", conn=conn)
                for row in await saga.overdue(conn):
                    ctx.envelope = cause.model_copy(update={"correlation_id": row["job_id"]})
                    if row["resends"] < max_resends:
                        log.warning("step overdue, sending it again", kind=row["kind"], step=row["step"])
                        await saga.resend(ctx, row)
                    else:
                        _, timed_out = FLOWS[row["kind"]]
                        await timed_out(saga.Saga.of(row), ctx, planner)
                await outbox.add(conn, ctx.outgoing)
            runtime.relay.wake()
        except Exception as error:
            log.warning("watchdog pass failed", error=repr(error))


WITH_SETTINGS = {
    cmd.DeployVirtualMachine: deploy.deploy_virtual_machine,
    cmd.StartVirtualMachine: lifecycle.start_virtual_machine,
    cmd.StopVirtualMachine: lifecycle.stop_virtual_machine,
    cmd.DestroyVirtualMachine: lifecycle.destroy_virtual_machine,
    cmd.CreateVmSnapshot: snapshots.create_vm_snapshot,
    cmd.DeleteVmSnapshot: snapshots.delete_vm_snapshot,
    cmd.ImportVirtualMachine: snapshots.import_virtual_machine,
    cmd.ListVirtualMachines: queries.list_virtual_machines,
    cmd.ListVmSnapshots: queries.list_vm_snapshots,
    cmd.ListHosts: queries.list_hosts,
    cmd.ListNetworks: queries.list_networks,
    cmd.ListServiceOfferings: queries.list_service_offerings,
    cmd.ListUnmanagedInstances: queries.list_unmanaged_instances,
    **{reply(command): on_reply for command in SENT for reply in (succeeded_reply, failed_reply)},
}

PLAIN = {
    cmd.CreateServiceOffering: offerings.create_service_offering,
    cmd.RegisterBusPrincipal: principals.register_bus_principal,
    cmd.RemoveBusPrincipal: principals.remove_bus_principal,
    InventorySynced: inventory.inventory_synced,
}


def handlers(planner: Planner) -> Handlers:
    bound = {
        message: functools.partial(handler, planner=planner) for message, handler in WITH_SETTINGS.items()
    }
    return {**bound, **PLAIN}
