"""What storage is told by other services: pools from the agent's inventory (an event); VMs,
their volumes and their VM snapshots from the planner (commands, so the planner knows storage
has them before it asks for a seed or a volume)."""

from __future__ import annotations

from contracts import storage as cmd
from contracts.events import InventorySynced
from contracts.planner import template_id
from contracts.vsphere import root_disk
from services.storage import store
from services.storage.common import state_changed
from shared.errors import TransientError
from shared.messaging import HandlerContext


async def inventory_synced(event: InventorySynced, ctx: HandlerContext) -> None:
    """Pools and templates as the agent found them; only what differs from the last sync is written."""
    have = {
        r["name"]: tuple(r)[1:]
        for r in await ctx.conn.fetch(
            "SELECT name, datastore_ref, capacity_bytes, free_bytes, hosts FROM pools WHERE zone_id = $1",
            event.zone_id,
        )
    }
    for ds in event.datastores:
        if have.get(ds.name) == (ds.ref, ds.capacity_bytes, ds.free_bytes, list(ds.hosts)):
            continue
        await ctx.conn.execute(
            """INSERT INTO pools (uuid, zone_id, name, datastore_ref, capacity_bytes, free_bytes, hosts)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (zone_id, name) DO UPDATE SET datastore_ref = excluded.datastore_ref,
                   capacity_bytes = excluded.capacity_bytes, free_bytes = excluded.free_bytes,
                   hosts = excluded.hosts, synced_at = now()""",
            cmd.pool_id(event.zone_id, ds.name),
            event.zone_id,
            ds.name,
            ds.ref,
            ds.capacity_bytes,
            ds.free_bytes,
            ds.hosts,
        )
    await record_templates(event, ctx)


async def record_templates(event: InventorySynced, ctx: HandlerContext) -> None:
    """Template VMs (not snapdeploy's own seeds) occupy their pool like volumes do."""
    have = {
        r["uuid"]: (r["name"], r["base_snapshot_ref"])
        for r in await ctx.conn.fetch(
            "SELECT uuid, name, base_snapshot_ref FROM templates WHERE zone_id = $1", event.zone_id
        )
    }
    for vm in event.vms:
        if not vm.template or vm.snapdeploy_id is not None or not vm.disks:
            continue
        uuid_ = template_id(event.zone_id, vm.ref)
        base = vm.current_snapshot_ref or (vm.snapshots[-1].ref if vm.snapshots else None)
        if have.get(uuid_) == (vm.name, base):
            continue
        root = root_disk(vm.disks)
        pool = await store.pool_named(ctx.conn, event.zone_id, root.datastore)
        if pool is None:
            continue
        size = sum(disk.size_bytes for disk in vm.disks)
        created = await ctx.conn.fetchval(
            """INSERT INTO templates (uuid, zone_id, ref, name, pool_id, size_bytes, base_snapshot_ref)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (uuid) DO UPDATE SET name = excluded.name,
                   base_snapshot_ref = excluded.base_snapshot_ref
               RETURNING (xmax = 0)""",
            uuid_,
            event.zone_id,
            vm.ref,
            vm.name,
            pool["id"],
            size,
            base,
        )
        if created:
            await store.count(ctx.conn, pool["id"], size)


async def record_virtual_machine(event: cmd.RecordVirtualMachine, ctx: HandlerContext):
    conn = ctx.conn
    await conn.execute(
        """INSERT INTO vms (uuid, account_id, zone_id, vm_ref, name, hypervisor)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (uuid) DO UPDATE SET vm_ref = excluded.vm_ref, name = excluded.name""",
        event.vm_id,
        event.account_id,
        event.zone_id,
        event.vm_ref,
        event.name,
        event.hypervisor,
    )
    for volume in event.volumes:
        pool = await store.pool_named(conn, event.zone_id, volume.disk.datastore)
        if pool is None:  # the inventory naming this datastore has not arrived yet
            raise TransientError(
                f"storage pool {volume.disk.datastore} of zone {event.zone_id} is not known yet"
            )
        created = await conn.fetchval(
            """INSERT INTO volumes
                   (uuid, name, type, state, size_bytes, pool_id, vm_uuid, device_key, device_id,
                    disk_path, disk_offering_id, template_id, iso_id, counted_bytes)
               VALUES ($1, $2, $3, 'Ready', $4, $5, $6, $7, $8, $9, $10, $11, $12, $4)
               ON CONFLICT (uuid) DO NOTHING RETURNING id""",
            volume.volume_id,
            f"{volume.type}-{event.name}-{volume.disk.unit_number}",
            volume.type,
            volume.disk.size_bytes,
            pool["id"],
            event.vm_id,
            volume.disk.key,
            volume.disk.unit_number,
            volume.disk.file,
            volume.disk_offering_id,
            volume.template_id,
            volume.iso_id,
        )
        if created is not None:  # an existing disk occupies its pool from now on
            await store.count(conn, pool["id"], volume.disk.size_bytes)
            continue
        # A deployed VM's root volume, allocated before the clone: now it has its disk.
        ready = await store.move_volume(
            conn,
            volume.volume_id,
            ("Creating",),
            "Ready",
            disk_path=volume.disk.file,
            device_key=volume.disk.key,
            device_id=volume.disk.unit_number,
        )
        if ready is not None:
            ctx.action(
                "VOLUME.CREATE",
                "Completed",
                "Volume",
                volume.volume_id,
                ready["name"],
                f"root volume at {volume.disk.file}",
            )
            state_changed(ctx, "Volume", volume.volume_id, "Creating", "Ready")
    return cmd.RecordVirtualMachineSucceeded(
        vm_id=event.vm_id, volume_ids=[v.volume_id for v in event.volumes]
    )


async def record_vm_snapshot(event: cmd.RecordVmSnapshot, ctx: HandlerContext):
    await ctx.conn.execute(
        """INSERT INTO vm_snapshots
               (uuid, vm_uuid, account_id, zone_id, vm_ref, snapshot_ref, name, hypervisor, disks)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (uuid) DO NOTHING""",
        event.vm_snapshot_id,
        event.vm_id,
        event.account_id,
        event.zone_id,
        event.vm_ref,
        event.snapshot_ref,
        event.name,
        event.hypervisor,
        [d.model_dump(mode="json") for d in event.disks],
    )
    return cmd.RecordVmSnapshotSucceeded(vm_snapshot_id=event.vm_snapshot_id)


async def forget_vm_snapshot(event: cmd.ForgetVmSnapshot, ctx: HandlerContext):
    snapshot_id = await ctx.conn.fetchval(
        "UPDATE vm_snapshots SET removed = now() WHERE uuid = $1 AND removed IS NULL RETURNING id",
        event.vm_snapshot_id,
    )
    marked = "UPDATE 0"
    if snapshot_id is not None:  # its seeds are collected once nothing hangs from them
        marked = await ctx.conn.execute(
            """UPDATE vm_snapshot_spool_ref SET marked_for_gc = true, updated = now()
               WHERE vm_snapshot_id = $1""",
            snapshot_id,
        )
    return cmd.ForgetVmSnapshotSucceeded(
        vm_snapshot_id=event.vm_snapshot_id, seeds_marked=int(marked.split()[-1])
    )
