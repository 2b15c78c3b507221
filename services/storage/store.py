"""SQL of the storage schema, in small functions the handlers read like sentences."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts.errors import ErrorCode
from shared.errors import DomainError

LIVE_SEED_STATES = ("Allocated", "Creating", "Ready")


def not_found(what: str, ident: object) -> DomainError:
    return DomainError(ErrorCode.PARAM_ERROR, f"{what} {ident} does not exist")


# -- pools -------------------------------------------------------------------------------------------


async def pool(
    conn: asyncpg.Connection, *, uuid_: uuid.UUID | None = None, id_: int | None = None
) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM pools WHERE uuid = $1 OR id = $2", uuid_, id_)
    if row is None:
        raise not_found("storage pool", uuid_ or id_)
    return row


async def pool_named(conn: asyncpg.Connection, zone_id: str, name: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM pools WHERE zone_id = $1 AND name = $2", zone_id, name)


async def pools_by_room(conn: asyncpg.Connection, zone_id: str, factor: float) -> list[asyncpg.Record]:
    """The zone's pools, the one with the most room under its allocation limit first."""
    return await conn.fetch(
        """SELECT * FROM pools WHERE zone_id = $1
           ORDER BY floor(capacity_bytes * $2::float8) - allocated_bytes DESC, name""",
        zone_id,
        factor,
    )


async def reserve(conn: asyncpg.Connection, pool_id: int, nbytes: int, factor: float) -> bool:
    """Add ``nbytes`` to the pool's allocation if it stays within capacity x factor (atomic)."""
    row = await conn.fetchrow(
        """UPDATE pools SET allocated_bytes = allocated_bytes + $2
           WHERE id = $1 AND allocated_bytes + $2 <= floor(capacity_bytes * $3::float8)
           RETURNING id""",
        pool_id,
        nbytes,
        factor,
    )
    return row is not None


async def count(conn: asyncpg.Connection, pool_id: int, nbytes: int) -> None:
    """Add (or, negative, release) allocation with no limit: for what exists already."""
    await conn.execute(
        "UPDATE pools SET allocated_bytes = allocated_bytes + $2 WHERE id = $1", pool_id, nbytes
    )


# -- VMs and VM snapshots ------------------------------------------------------------------------------


async def vm(conn: asyncpg.Connection, vm_uuid: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM vms WHERE uuid = $1", vm_uuid)
    if row is None:
        raise not_found("VM", vm_uuid)
    return row


async def vm_snapshot(conn: asyncpg.Connection, snapshot_uuid: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM vm_snapshots WHERE uuid = $1 AND removed IS NULL", snapshot_uuid)
    if row is None:
        raise not_found("VM snapshot", snapshot_uuid)
    return row


async def snapshot_names(conn: asyncpg.Connection, vm_uuid: uuid.UUID) -> list[str]:
    rows = await conn.fetch("SELECT name FROM vm_snapshots WHERE vm_uuid = $1 AND removed IS NULL", vm_uuid)
    return [r["name"] for r in rows]


async def root_volume_key(conn: asyncpg.Connection, vm_uuid: uuid.UUID) -> int | None:
    return await conn.fetchval("SELECT device_key FROM volumes WHERE vm_uuid = $1 AND type = 'ROOT'", vm_uuid)


# -- volumes --------------------------------------------------------------------------------------------


async def volume(conn: asyncpg.Connection, volume_uuid: uuid.UUID, *, lock: bool = False) -> asyncpg.Record:
    row = await volume_or_none(conn, volume_uuid, lock=lock)
    if row is None:
        raise not_found("volume", volume_uuid)
    return row


async def volume_account(conn: asyncpg.Connection, volume: asyncpg.Record) -> uuid.UUID | None:
    """The account of a volume: its VM's, else the VM snapshot's it was made from, else its own
    (a blank volume)."""
    return await conn.fetchval(
        """SELECT coalesce((SELECT account_id FROM vms WHERE uuid = $1),
                           (SELECT account_id FROM vm_snapshots WHERE uuid = $2), $3::uuid)""",
        volume["vm_uuid"],
        volume["source_vm_snapshot_id"],
        volume["account_id"],
    )


async def volume_or_none(conn: asyncpg.Connection, volume_uuid: uuid.UUID, *, lock: bool = False):
    return await conn.fetchrow(
        f"SELECT * FROM volumes WHERE uuid = $1{' FOR UPDATE' if lock else ''}", volume_uuid
    )


async def move_volume(
    conn: asyncpg.Connection,
    volume_uuid: uuid.UUID,
    from_states: tuple[str, ...],
    to_state: str,
    **fields: Any,
) -> asyncpg.Record | None:
    """Compare-and-set of a volume's state (plus any columns); None when it was not in ``from_states``."""
    names = list(fields)
    sets = "".join(f", {name} = ${i + 4}" for i, name in enumerate(names))
    return await conn.fetchrow(
        f"""UPDATE volumes SET state = $3, updated = now(){sets}
            WHERE uuid = $1 AND state = ANY($2::text[]) RETURNING *""",
        volume_uuid,
        list(from_states),
        to_state,
        *(fields[name] for name in names),
    )


async def add_volume(conn: asyncpg.Connection, **columns: Any) -> None:
    """A new volume row; ``columns`` are the table's."""
    names = list(columns)
    places = ", ".join(f"${i + 1}" for i in range(len(names)))
    await conn.execute(f"INSERT INTO volumes ({', '.join(names)}) VALUES ({places})", *columns.values())


async def destroy_root_volumes(conn: asyncpg.Connection, vm_uuid: uuid.UUID) -> list[asyncpg.Record]:
    """The VM's live ROOT volumes go to Destroy (for the scavenger); (uuid, name) of each."""
    return await conn.fetch(
        """UPDATE volumes SET state = 'Destroy', updated = now()
           WHERE vm_uuid = $1 AND type = 'ROOT' AND state NOT IN ('Destroy', 'Expunging', 'Expunged')
           RETURNING uuid, name""",
        vm_uuid,
    )


async def detach_data_volumes(conn: asyncpg.Connection, vm_uuid: uuid.UUID) -> list[uuid.UUID]:
    rows = await conn.fetch(
        """UPDATE volumes SET vm_uuid = NULL, device_id = NULL, updated = now()
           WHERE vm_uuid = $1 AND type = 'DATADISK' RETURNING uuid""",
        vm_uuid,
    )
    return [r["uuid"] for r in rows]


# -- disk offerings -----------------------------------------------------------------------------------


async def disk_offering_exists(conn: asyncpg.Connection, offering_uuid: uuid.UUID) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM disk_offerings WHERE uuid = $1", offering_uuid))


async def add_disk_offering(conn: asyncpg.Connection, offering_uuid: uuid.UUID, name: str, size: int | None):
    await conn.execute(
        """INSERT INTO disk_offerings (uuid, name, size_bytes) VALUES ($1, $2, $3)
           ON CONFLICT (uuid) DO NOTHING""",
        offering_uuid,
        name,
        size,
    )


# -- seeds (vm_snapshot_spool_ref) ----------------------------------------------------------------------


async def live_seed(conn: asyncpg.Connection, snapshot_id: int, pool_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT * FROM vm_snapshot_spool_ref
           WHERE vm_snapshot_id = $1 AND pool_id = $2 AND state = ANY($3::text[])""",
        snapshot_id,
        pool_id,
        list(LIVE_SEED_STATES),
    )


async def lock_seed_pair(conn: asyncpg.Connection, snapshot_id: int, pool_id: int) -> None:
    """Serialises everything about one (snapshot, pool) seed, across replicas, until commit."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"seed:{snapshot_id}:{pool_id}")


async def seed_pair(conn: asyncpg.Connection, seed_uuid: str) -> tuple[int, int] | None:
    """(snapshot id, pool id) of a seed."""
    row = await conn.fetchrow(
        "SELECT vm_snapshot_id, pool_id FROM vm_snapshot_spool_ref WHERE uuid = $1", seed_uuid
    )
    return (row["vm_snapshot_id"], row["pool_id"]) if row else None


async def seed_row_id(conn: asyncpg.Connection, seed_uuid: uuid.UUID) -> int | None:
    return await conn.fetchval("SELECT id FROM vm_snapshot_spool_ref WHERE uuid = $1", str(seed_uuid))


async def add_seed(
    conn: asyncpg.Connection,
    seed_uuid: uuid.UUID,
    pool_id: int,
    snapshot_id: int,
    job_id: str | None,
    size: int,
) -> asyncpg.Record:
    """A seed being copied (state Creating)."""
    return await conn.fetchrow(
        """INSERT INTO vm_snapshot_spool_ref
               (uuid, pool_id, vm_snapshot_id, created, job_id, state, status, template_size)
           VALUES ($1, $2, $3, now(), $4, 'Creating', 'copying the root disk', $5) RETURNING *""",
        str(seed_uuid),
        pool_id,
        snapshot_id,
        job_id,
        size,
    )


async def move_seed(
    conn: asyncpg.Connection, seed_uuid: str, from_state: str, to_state: str, **fields: Any
) -> asyncpg.Record | None:
    names = list(fields)
    sets = "".join(f", {name} = ${i + 4}" for i, name in enumerate(names))
    return await conn.fetchrow(
        f"""UPDATE vm_snapshot_spool_ref SET state = $3, updated = now(){sets}
            WHERE uuid = $1 AND state = $2 RETURNING *""",
        seed_uuid,
        from_state,
        to_state,
        *(fields[name] for name in names),
    )
