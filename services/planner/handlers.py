"""Planner handlers, by message type; the registry is at the end.

Commands of the planner catalogue start processes (sagas); every reply to a command the
planner sent comes back on ``planner.replies`` and moves the saga that awaits it.
"""

from __future__ import annotations

import functools

from contracts import planner as cmd
from contracts.events import InventorySynced
from services.planner import (
    adoption,
    deploy_request,
    flows,
    lifecycle,
    offerings,
    principals,
    queries,
    reconcile,
    saga,
    snapshots,
    steps,
)
from services.planner.common import Planner
from shared.messaging import HandlerContext, Handlers


async def on_reply(reply, ctx: HandlerContext, planner: Planner) -> None:
    process = await saga.awaiting(ctx.conn, ctx.envelope.causation_id)
    if process is None:
        return  # a late reply to a step that was re-sent, or not ours
    flow, process = flows.load(process)
    await steps.on_reply(flow, process, reply, ctx, planner)


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
    cmd.ListUnmanagedInstances: queries.list_unmanaged_instances,
    InventorySynced: reconcile.inventory_synced,  # the snapshot tree sync, then reconciliation
    # the replies the steps await, derived from the steps themselves
    **{reply: on_reply for reply in steps.replies_of(flows.FLOWS.values())},
}

PLAIN = {
    cmd.CreateServiceOffering: offerings.create_service_offering,
    cmd.RegisterBusPrincipal: principals.register_bus_principal,
    cmd.RemoveBusPrincipal: principals.remove_bus_principal,
}


def handlers(planner: Planner) -> Handlers:
    bound = {
        message: functools.partial(handler, planner=planner) for message, handler in WITH_SETTINGS.items()
    }
    return {**bound, **PLAIN}
