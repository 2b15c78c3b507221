"""The VM snapshot tree of each instance, as vCenter has it: parents and the current snapshot.

vCenter is the truth: a snapshot's parent is the VM's current snapshot when it was taken, and
a revert (here or in vCenter) moves ``current``. Each inventory sync puts the tree back to
what vCenter says, for every instance snapdeploy knows.
"""

from __future__ import annotations

import uuid

import asyncpg

from contracts.vsphere import VmInfo


async def snapshot_id(conn: asyncpg.Connection, vm_id: uuid.UUID, ref: str | None) -> uuid.UUID | None:
    """The snapdeploy id of the instance's snapshot ``ref`` (None for none, or one not known here)."""
    if ref is None:
        return None
    return await conn.fetchval(
        "SELECT uuid FROM vm_snapshots WHERE instance_uuid = $1 AND snapshot_ref = $2 AND state <> 'Removed'",
        vm_id,
        ref,
    )


async def make_current(conn: asyncpg.Connection, vm_id: uuid.UUID, current: uuid.UUID | None) -> None:
    await conn.execute(
        "UPDATE vm_snapshots SET current = (uuid IS NOT DISTINCT FROM $2) WHERE instance_uuid = $1",
        vm_id,
        current,
    )


async def remove(conn: asyncpg.Connection, removed_id: uuid.UUID) -> None:
    """vSphere keeps a removed snapshot's children, hung from its parent; a removed current
    snapshot leaves its parent current."""
    removed = await conn.fetchrow(
        """UPDATE vm_snapshots SET state = 'Removed', current = false WHERE uuid = $1
           RETURNING parent_uuid, instance_uuid,
               (SELECT current FROM vm_snapshots WHERE uuid = $1) AS was_current""",
        removed_id,
    )
    await conn.execute(
        "UPDATE vm_snapshots SET parent_uuid = $2 WHERE parent_uuid = $1", removed_id, removed["parent_uuid"]
    )
    if removed["was_current"]:
        await make_current(conn, removed["instance_uuid"], removed["parent_uuid"])


async def sync(conn: asyncpg.Connection, zone_id: str, vms: list[VmInfo]) -> None:
    """Parents and ``current`` of every known instance's snapshots, from vCenter's trees.

    A parent vCenter has but snapdeploy does not know (taken outside it, not adopted) is
    skipped: the snapshot hangs from the nearest ancestor known here. Only what differs is
    written."""
    if not vms:
        return
    instances = {
        r["vm_ref"]: r["uuid"]
        for r in await conn.fetch(
            """SELECT uuid, vm_ref FROM instances
               WHERE zone_id = $1 AND vm_ref = ANY($2::text[]) AND state NOT IN ('Expunged')""",
            zone_id,
            [vm.ref for vm in vms],
        )
    }
    for vm in vms:
        vm_id = instances.get(vm.ref)
        if vm_id is None:
            continue
        rows = await conn.fetch(
            """SELECT uuid, snapshot_ref, parent_uuid, current FROM vm_snapshots
               WHERE instance_uuid = $1 AND snapshot_ref IS NOT NULL AND state <> 'Removed'""",
            vm_id,
        )
        known = {r["snapshot_ref"]: r["uuid"] for r in rows}
        parent_of = {s.ref: s.parent_ref for s in vm.snapshots}
        for row in rows:
            ref, own_id = row["snapshot_ref"], row["uuid"]
            if ref not in parent_of:
                continue  # gone from vCenter: not this sync's to decide
            parent = parent_of[ref]
            while parent is not None and parent not in known:
                parent = parent_of.get(parent)
            if row["parent_uuid"] != known.get(parent):
                await conn.execute(
                    "UPDATE vm_snapshots SET parent_uuid = $2 WHERE uuid = $1", own_id, known.get(parent)
                )
        current = known.get(vm.current_snapshot_ref)
        if await tree_current_differs(conn, vm_id, current):
            await make_current(conn, vm_id, current)


async def tree_current_differs(conn: asyncpg.Connection, vm_id: uuid.UUID, current: uuid.UUID | None) -> bool:
    """Whether any of the instance's snapshots has ``current`` set otherwise than ``make_current`` would."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM vm_snapshots WHERE instance_uuid = $1
                                AND current IS DISTINCT FROM (uuid IS NOT DISTINCT FROM $2))""",
        vm_id,
        current,
    )
