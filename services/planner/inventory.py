"""What the planner learns from the agent's inventory: hosts, guest networks, vCenter VMs."""

from __future__ import annotations

from contracts.events import InventorySynced
from contracts.planner import host_id, network_id, template_id
from contracts.vsphere import root_disk
from services.planner import tree
from shared.messaging import HandlerContext


async def inventory_synced(event: InventorySynced, ctx: HandlerContext) -> None:
    conn = ctx.conn
    pools_by_ref = {ds.ref: ds.name for ds in event.datastores}
    for host in event.hosts:
        await conn.execute(
            """INSERT INTO hosts
                   (uuid, zone_id, ref, name, cluster, state, cpu_mhz_total, memory_bytes, pools, networks)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, cluster = excluded.cluster,
                   state = excluded.state, cpu_mhz_total = excluded.cpu_mhz_total,
                   memory_bytes = excluded.memory_bytes, pools = excluded.pools,
                   networks = excluded.networks""",
            host_id(event.zone_id, host.ref),
            event.zone_id,
            host.ref,
            host.name,
            host.cluster,
            host.state,
            host.cpu_mhz_total,
            host.memory_bytes,
            [pools_by_ref.get(ref, ref) for ref in host.datastores],
            host.networks,
        )
    for network in event.networks:
        await conn.execute(
            """INSERT INTO networks (uuid, zone_id, name, ref) VALUES ($1, $2, $3, $4)
               ON CONFLICT (uuid) DO UPDATE SET ref = excluded.ref""",
            network_id(event.zone_id, network.name),
            event.zone_id,
            network.name,
            network.ref,
        )
    for vm in event.vms:
        if vm.template and vm.snapdeploy_id is None and vm.disks:  # seeds are snapdeploy's own
            root = root_disk(vm.disks)
            base = vm.current_snapshot_ref or (vm.snapshots[-1].ref if vm.snapshots else None)
            await conn.execute(
                """INSERT INTO templates (uuid, zone_id, ref, name, base_snapshot_ref, pool, root_size,
                                          cpu_number, memory_mb, guest_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT (uuid) DO UPDATE SET name = excluded.name,
                       base_snapshot_ref = excluded.base_snapshot_ref, pool = excluded.pool,
                       root_size = excluded.root_size""",
                template_id(event.zone_id, vm.ref),
                event.zone_id,
                vm.ref,
                vm.name,
                base,
                root.datastore,
                root.size_bytes,
                vm.num_cpus,
                vm.memory_mb,
                vm.guest_id,
            )
    await conn.execute("DELETE FROM vcenter_vms WHERE zone_id = $1", event.zone_id)
    await conn.executemany(
        "INSERT INTO vcenter_vms (zone_id, ref, info) VALUES ($1, $2, $3)",
        [(event.zone_id, vm.ref, vm.model_dump(mode="json")) for vm in event.vms],
    )
    await tree.sync(conn, event.zone_id, event.vms)
