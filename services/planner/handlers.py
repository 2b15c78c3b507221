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

from contracts import planner as cmd
from contracts.envelope import Envelope
from contracts.events import InventorySynced
from services.planner import (
    adoption,
    deploy,
    deploy_request,
    inventory,
    lifecycle,
    offerings,
    queries,
    saga,
    snapshots,
    steps,
)
from services.planner.common import Planner
from shared.db import outbox
from shared.messaging import HandlerContext, Handlers

log = structlog.get_logger("planner")

# Every process of the planner, by its saga kind.
FLOWS = {
    flow.kind: flow
    for flow in (
        deploy.FLOW,
        snapshots.TAKE_FLOW,
        snapshots.REMOVE_FLOW,
        snapshots.REVERT_FLOW,
        adoption.FLOW,
        lifecycle.START_FLOW,
        lifecycle.STOP_FLOW,
        lifecycle.REBOOT_FLOW,
        lifecycle.DESTROY_FLOW,
    )
}


def load(process: saga.Saga) -> tuple[steps.Flow, saga.Saga]:
    """The process's flow, and its typed state (read the old way for rows from before)."""
    flow = FLOWS[process.kind]
    if process.legacy:
        return flow, flow.legacy(process)
    process.model = flow.state.model_validate(process.raw["state"])
    if process.error is not None:
        process.error = steps.Failure(**process.error)
    return flow, process


async def on_reply(reply, ctx: HandlerContext, planner: Planner) -> None:
    process = await saga.awaiting(ctx.conn, ctx.envelope.causation_id)
    if process is None:
        return  # a late reply to a step that was re-sent, or not ours
    flow, process = load(process)
    await steps.on_reply(flow, process, reply, ctx, planner)


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
                        flow, process = load(saga.Saga.of(row))
                        await steps.timed_out(flow, process, ctx, planner)
                await outbox.add(conn, ctx.outgoing)
            runtime.relay.wake()
        except Exception as error:
            log.warning("watchdog pass failed", error=repr(error))


WITH_SETTINGS = {
    cmd.DeployVirtualMachine: deploy_request.deploy_virtual_machine,
    cmd.StartVirtualMachine: lifecycle.start_virtual_machine,
    cmd.StopVirtualMachine: lifecycle.stop_virtual_machine,
    cmd.RebootVirtualMachine: lifecycle.reboot_virtual_machine,
    cmd.DestroyVirtualMachine: lifecycle.destroy_virtual_machine,
    cmd.CreateVmSnapshot: snapshots.create_vm_snapshot,
    cmd.DeleteVmSnapshot: snapshots.delete_vm_snapshot,
    cmd.RevertToVmSnapshot: snapshots.revert_to_vm_snapshot,
    cmd.ImportVirtualMachine: adoption.import_virtual_machine,
    cmd.ListVirtualMachines: queries.list_virtual_machines,
    cmd.ListVmSnapshots: queries.list_vm_snapshots,
    cmd.ListHosts: queries.list_hosts,
    cmd.ListNetworks: queries.list_networks,
    cmd.ListServiceOfferings: queries.list_service_offerings,
    # the replies the steps await, derived from the steps themselves
    **{reply: on_reply for reply in steps.replies_of(FLOWS.values())},
}

PLAIN = {
    cmd.CreateServiceOffering: offerings.create_service_offering,
    InventorySynced: inventory.inventory_synced,
}


def handlers(planner: Planner) -> Handlers:
    bound = {
        message: functools.partial(handler, planner=planner) for message, handler in WITH_SETTINGS.items()
    }
    return {**bound, **PLAIN}
