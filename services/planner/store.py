"""SQL of the planner's flows, in small functions the steps read like sentences.

(The read side is in ``queries``, host choice and capacity in ``hosts``, the snapshot tree in
``tree``, saga rows in ``saga``.) Each takes the handler's connection first: tests of the
steps put an in-memory store in its place.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

# -- instances and their NICs ----------------------------------------------------------------------


async def instance(conn: asyncpg.Connection, vm_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM instances WHERE uuid = $1", vm_id)


async def name_taken(conn: asyncpg.Connection, name: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM instances WHERE name = $1", name))


async def add_instance(conn: asyncpg.Connection, **columns: Any) -> None:
    """A new instance row (deployed or adopted); ``columns`` are the table's."""
    names = list(columns)
    places = ", ".join(f"${i + 1}" for i in range(len(names)))
    await conn.execute(f"INSERT INTO instances ({', '.join(names)}) VALUES ({places})", *columns.values())


async def add_nics(
    conn: asyncpg.Connection, vm_id: uuid.UUID, nics: list[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    """(nic id, network id) in device order."""
    await conn.executemany(
        """INSERT INTO nics (uuid, instance_uuid, network_uuid, device_order, state)
           VALUES ($1, $2, $3, $4, 'Allocated')""",
        [(nic_id, vm_id, network_id, order) for order, (nic_id, network_id) in enumerate(nics)],
    )


async def set_state(
    conn: asyncpg.Connection, vm_id: uuid.UUID, state: str, *, reason: str | None = None
) -> asyncpg.Record:
    return await conn.fetchrow(
        """UPDATE instances SET state = $2, reason = coalesce($3, reason), updated = now()
           WHERE uuid = $1 RETURNING *""",
        vm_id,
        state,
        reason,
    )


async def state_of(conn: asyncpg.Connection, vm_id: uuid.UUID) -> str | None:
    return await conn.fetchval("SELECT state FROM instances WHERE uuid = $1", vm_id)


async def placed(conn: asyncpg.Connection, vm_id: uuid.UUID, host_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE instances SET host_uuid = $2, reserved = true, updated = now() WHERE uuid = $1",
        vm_id,
        host_id,
    )


async def cloned(conn: asyncpg.Connection, vm_id: uuid.UUID, vm_ref: str) -> None:
    await conn.execute("UPDATE instances SET vm_ref = $2, updated = now() WHERE uuid = $1", vm_id, vm_ref)


async def root_volume_id(conn: asyncpg.Connection, vm_id: uuid.UUID) -> uuid.UUID | None:
    return await conn.fetchval("SELECT root_volume_id FROM instances WHERE uuid = $1", vm_id)


async def nic_reserved(conn: asyncpg.Connection, nic_id: uuid.UUID, mac: str) -> None:
    await conn.execute("UPDATE nics SET mac = $2, state = 'Reserved' WHERE uuid = $1", nic_id, mac)


async def release_nics(conn: asyncpg.Connection, vm_id: uuid.UUID) -> None:
    await conn.execute("UPDATE nics SET state = 'Released' WHERE instance_uuid = $1", vm_id)


async def forget_instance(conn: asyncpg.Connection, vm_id: uuid.UUID) -> None:
    """An adoption that failed: its rows go, so the next import starts again with the same ids."""
    await conn.execute("DELETE FROM vm_snapshots WHERE instance_uuid = $1", vm_id)
    await conn.execute("DELETE FROM instances WHERE uuid = $1", vm_id)


# -- what a request names --------------------------------------------------------------------------


async def offering(conn: asyncpg.Connection, offering_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM service_offerings WHERE uuid = $1", offering_id)


async def network_in_zone(
    conn: asyncpg.Connection, network_id: uuid.UUID, zone: str
) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM networks WHERE uuid = $1 AND zone_id = $2", network_id, zone)


async def host(conn: asyncpg.Connection, host_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM hosts WHERE uuid = $1", host_id)


async def host_id_of(conn: asyncpg.Connection, zone: str, ref: str | None) -> uuid.UUID | None:
    return await conn.fetchval("SELECT uuid FROM hosts WHERE zone_id = $1 AND ref = $2", zone, ref)


async def template(conn: asyncpg.Connection, template_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM templates WHERE uuid = $1", template_id)


async def vcenter_vm(conn: asyncpg.Connection, zone: str, ref: str) -> dict | None:
    """The VM as the last inventory sync found it."""
    return await conn.fetchval("SELECT info FROM vcenter_vms WHERE zone_id = $1 AND ref = $2", zone, ref)


# -- VM snapshots ----------------------------------------------------------------------------------


async def snapshot(conn: asyncpg.Connection, snapshot_id: uuid.UUID, *, lock: bool = False):
    return await conn.fetchrow(
        f"SELECT * FROM vm_snapshots WHERE uuid = $1{' FOR UPDATE' if lock else ''}", snapshot_id
    )


async def snapshot_to_deploy(conn: asyncpg.Connection, snapshot_id: uuid.UUID) -> asyncpg.Record | None:
    """The snapshot with what a deployment inherits from its instance."""
    return await conn.fetchrow(
        """SELECT s.*, i.vm_ref, i.zone_id, i.hypervisor, i.pool, i.vm_template_id, i.disk_offering_id,
                  i.account_id AS owner
           FROM vm_snapshots s JOIN instances i ON i.uuid = s.instance_uuid WHERE s.uuid = $1""",
        snapshot_id,
    )


async def add_snapshot(conn: asyncpg.Connection, **columns: Any) -> None:
    """A new VM snapshot row (state ``Creating``); ``columns`` are the table's."""
    names = list(columns)
    await conn.execute(
        f"""INSERT INTO vm_snapshots ({", ".join(names)}, state)
            VALUES ({", ".join(f"${i + 1}" for i in range(len(names)))}, 'Creating')""",
        *columns.values(),
    )


async def snapshot_taken(
    conn: asyncpg.Connection, snapshot_id: uuid.UUID, ref: str, parent_id: uuid.UUID | None
) -> None:
    await conn.execute(
        "UPDATE vm_snapshots SET snapshot_ref = $2, parent_uuid = $3 WHERE uuid = $1",
        snapshot_id,
        ref,
        parent_id,
    )


async def snapshot_state(conn: asyncpg.Connection, snapshot_id: uuid.UUID, state: str) -> None:
    await conn.execute("UPDATE vm_snapshots SET state = $2 WHERE uuid = $1", snapshot_id, state)


async def snapshot_ready(conn: asyncpg.Connection, snapshot_id: uuid.UUID, config) -> None:
    """Ready, with the VM's configuration (and its disks) as they were at the snapshot."""
    await conn.execute(
        "UPDATE vm_snapshots SET state = 'Ready', disks = $2, config = $3 WHERE uuid = $1",
        snapshot_id,
        [disk.model_dump(mode="json") for disk in config.disks],
        config.model_dump(mode="json"),
    )


async def snapshot_ids(conn: asyncpg.Connection, vm_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch("SELECT uuid FROM vm_snapshots WHERE instance_uuid = $1 ORDER BY created", vm_id)
    return [r["uuid"] for r in rows]


# -- what the inventory sync brings ---------------------------------------------------------------


async def synced_hosts(conn: asyncpg.Connection, zone: str) -> dict[uuid.UUID, tuple]:
    """The zone's hosts as the last sync left them, in ``host_row``'s shape."""
    rows = await conn.fetch(
        """SELECT uuid, ref, name, cluster, state, cpu_mhz_total, memory_bytes, pools, networks
           FROM hosts WHERE zone_id = $1""",
        zone,
    )
    return {r["uuid"]: tuple(r)[1:] for r in rows}


def host_row(host, pools: list[str]) -> tuple:
    return (
        host.ref, host.name, host.cluster, host.state, host.cpu_mhz_total, host.memory_bytes,
        list(pools), list(host.networks),
    )  # fmt: skip


async def upsert_host(conn: asyncpg.Connection, host_uuid: uuid.UUID, zone: str, row: tuple) -> None:
    await conn.execute(
        """INSERT INTO hosts
                   (uuid, zone_id, ref, name, cluster, state, cpu_mhz_total, memory_bytes, pools, networks)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
               ON CONFLICT (uuid) DO UPDATE SET name = excluded.name, cluster = excluded.cluster,
                   state = excluded.state, cpu_mhz_total = excluded.cpu_mhz_total,
                   memory_bytes = excluded.memory_bytes, pools = excluded.pools,
                   networks = excluded.networks""",
        host_uuid,
        zone,
        *row,
    )


async def synced_networks(conn: asyncpg.Connection, zone: str) -> dict[uuid.UUID, str]:
    rows = await conn.fetch("SELECT uuid, ref FROM networks WHERE zone_id = $1", zone)
    return {r["uuid"]: r["ref"] for r in rows}


async def upsert_network(conn: asyncpg.Connection, network_uuid: uuid.UUID, zone: str, network) -> None:
    await conn.execute(
        """INSERT INTO networks (uuid, zone_id, name, ref) VALUES ($1, $2, $3, $4)
               ON CONFLICT (uuid) DO UPDATE SET ref = excluded.ref""",
        network_uuid,
        zone,
        network.name,
        network.ref,
    )


async def synced_templates(conn: asyncpg.Connection, zone: str) -> dict[uuid.UUID, tuple]:
    """The zone's templates, in ``template_row``'s shape (what a sync may change)."""
    rows = await conn.fetch(
        "SELECT uuid, name, base_snapshot_ref, pool, root_size FROM templates WHERE zone_id = $1", zone
    )
    return {r["uuid"]: tuple(r)[1:] for r in rows}


def template_row(vm, base, root) -> tuple:
    return (vm.name, base, root.datastore, root.size_bytes)


async def upsert_template(
    conn: asyncpg.Connection, template_uuid: uuid.UUID, zone: str, vm, base, root
) -> None:
    """A template VM found in vCenter (not one of snapdeploy's seeds)."""
    await conn.execute(
        """INSERT INTO templates (uuid, zone_id, ref, name, base_snapshot_ref, pool, root_size,
                                          cpu_number, memory_mb, guest_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   ON CONFLICT (uuid) DO UPDATE SET name = excluded.name,
                       base_snapshot_ref = excluded.base_snapshot_ref, pool = excluded.pool,
                       root_size = excluded.root_size""",
        template_uuid,
        zone,
        vm.ref,
        vm.name,
        base,
        root.datastore,
        root.size_bytes,
        vm.num_cpus,
        vm.memory_mb,
        vm.guest_id,
    )


async def sync_vcenter_vms(conn: asyncpg.Connection, zone: str, vms) -> None:
    """The VMs vCenter has now, for adoption: only the rows that differ are written."""
    have = {
        r["ref"]: r["info"]
        for r in await conn.fetch("SELECT ref, info FROM vcenter_vms WHERE zone_id = $1", zone)
    }
    want = {vm.ref: vm.model_dump(mode="json") for vm in vms}
    gone = [ref for ref in have if ref not in want]
    if gone:
        await conn.execute("DELETE FROM vcenter_vms WHERE zone_id = $1 AND ref = ANY($2::text[])", zone, gone)
    changed = [(zone, ref, info) for ref, info in want.items() if have.get(ref) != info]
    if changed:
        await conn.executemany(
            """INSERT INTO vcenter_vms (zone_id, ref, info) VALUES ($1, $2, $3)
               ON CONFLICT (zone_id, ref) DO UPDATE SET info = excluded.info""",
            changed,
        )


# -- reconciliation ---------------------------------------------------------------------------------


async def live_instance_ids(
    conn: asyncpg.Connection, ids: list[uuid.UUID], dead: list[str]
) -> set[uuid.UUID]:
    """Which of ``ids`` an instance record still owns (one not in a ``dead`` state)."""
    rows = await conn.fetch(
        "SELECT uuid FROM instances WHERE uuid = ANY($1::uuid[]) AND state <> ALL($2::text[])", ids, dead
    )
    return {row["uuid"] for row in rows}


async def undriven_instances(conn: asyncpg.Connection, zone: str, states: list[str]) -> list[asyncpg.Record]:
    """The zone's instances in one of ``states`` that no running (or compensating) saga drives."""
    return await conn.fetch(
        """SELECT i.uuid, i.name, i.state FROM instances i
           WHERE i.zone_id = $1 AND i.state = ANY($2::text[])
             AND NOT EXISTS (SELECT 1 FROM sagas s WHERE s.resource_id = i.uuid
                                                     AND s.state IN ('running', 'compensating'))""",
        zone,
        states,
    )


async def move_state(conn: asyncpg.Connection, vm_id: uuid.UUID, old: str, new: str, reason: str) -> bool:
    """Move the instance from ``old`` to ``new`` (with the reason); False if it is no longer in ``old``."""
    moved = await conn.fetchval(
        """UPDATE instances SET state = $3, reason = $4, updated = now()
           WHERE uuid = $1 AND state = $2 RETURNING uuid""",
        vm_id,
        old,
        new,
        reason,
    )
    return moved is not None


async def zones(conn: asyncpg.Connection) -> list[str]:
    """The zones the planner knows hosts in."""
    return await conn.fetchval("SELECT array_agg(DISTINCT zone_id) FROM hosts") or []
