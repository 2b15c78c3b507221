"""What the planner learns from the agent's inventory: hosts, guest networks, vCenter VMs."""

from __future__ import annotations

from contracts.events import InventorySynced
from contracts.planner import host_id, network_id, template_id
from contracts.vsphere import root_disk
from services.planner import store, tree
from shared.messaging import HandlerContext


async def inventory_synced(event: InventorySynced, ctx: HandlerContext) -> None:
    conn = ctx.conn
    pools_by_ref = {ds.ref: ds.name for ds in event.datastores}
    for host in event.hosts:
        pools = [pools_by_ref.get(ref, ref) for ref in host.datastores]
        await store.upsert_host(conn, host_id(event.zone_id, host.ref), event.zone_id, host, pools)
    for network in event.networks:
        await store.upsert_network(conn, network_id(event.zone_id, network.name), event.zone_id, network)
    for vm in event.vms:
        if vm.template and vm.snapdeploy_id is None and vm.disks:  # seeds are snapdeploy's own
            root = root_disk(vm.disks)
            base = vm.current_snapshot_ref or (vm.snapshots[-1].ref if vm.snapshots else None)
            await store.upsert_template(
                conn, template_id(event.zone_id, vm.ref), event.zone_id, vm, base, root
            )
    await store.replace_vcenter_vms(conn, event.zone_id, event.vms)
    await tree.sync(conn, event.zone_id, event.vms)
