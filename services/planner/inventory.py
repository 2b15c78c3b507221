"""What the planner learns from the agent's inventory: hosts, guest networks, vCenter VMs.

A sync writes only what differs from the last one: an inventory that has not changed (the
periodic pass on an idle zone) is read and compared, and nothing is written.
"""

from __future__ import annotations

from contracts.events import InventorySynced
from contracts.planner import host_id, network_id, template_id
from contracts.vsphere import root_disk
from services.planner import store, tree
from shared.messaging import HandlerContext


async def inventory_synced(event: InventorySynced, ctx: HandlerContext) -> None:
    conn, zone = ctx.conn, event.zone_id
    pools_by_ref = {ds.ref: ds.name for ds in event.datastores}
    hosts = await store.synced_hosts(conn, zone)
    for host in event.hosts:
        row = store.host_row(host, [pools_by_ref.get(ref, ref) for ref in host.datastores])
        uuid_ = host_id(zone, host.ref)
        if hosts.get(uuid_) != row:
            await store.upsert_host(conn, uuid_, zone, row)
    networks = await store.synced_networks(conn, zone)
    for network in event.networks:
        uuid_ = network_id(zone, network.name)
        if networks.get(uuid_) != network.ref:
            await store.upsert_network(conn, uuid_, zone, network)
    templates = await store.synced_templates(conn, zone)
    for vm in event.vms:
        if vm.template and vm.snapdeploy_id is None and vm.disks:  # seeds are snapdeploy's own
            root = root_disk(vm.disks)
            base = vm.current_snapshot_ref or (vm.snapshots[-1].ref if vm.snapshots else None)
            uuid_ = template_id(zone, vm.ref)
            if templates.get(uuid_) != store.template_row(vm, base, root):
                await store.upsert_template(conn, uuid_, zone, vm, base, root)
    await store.sync_vcenter_vms(conn, zone, event.vms)
    await tree.sync(conn, zone, event.vms)
