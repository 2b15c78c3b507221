"""Storage queries: pools with capacity figures, volumes, seeds.

Answers are scoped to the caller's account (``account_scope``): a volume belongs to the account
of its VM, or of the VM snapshot it was made from, or (a blank volume) the one it was made for;
another account's looks exactly like none.
Pools and seeds are the operator's: only admins and services see them. Templates and disk
offerings are shared by every account.
"""

from __future__ import annotations

import uuid

from contracts import storage as q
from services.storage.common import Storage
from shared.identity import account_scope
from shared.messaging import HandlerContext


async def list_storage_pools(query: q.ListStoragePools, ctx: HandlerContext, storage: Storage):
    if account_scope(ctx.envelope.actor) is not None:
        return q.ListStoragePoolsResult(pools=[])
    rows = await ctx.conn.fetch(
        """SELECT * FROM pools WHERE ($1::text IS NULL OR zone_id = $1) AND ($2::uuid IS NULL OR uuid = $2)
           ORDER BY zone_id, name""",
        query.zone_id,
        query.id,
    )
    return q.ListStoragePoolsResult(
        pools=[
            q.StoragePool(
                id=r["uuid"],
                name=r["name"],
                zone_id=r["zone_id"],
                capacity_bytes=r["capacity_bytes"],
                free_bytes=r["free_bytes"],
                allocated_bytes=r["allocated_bytes"],
                allocation_limit_bytes=int(r["capacity_bytes"] * storage.overprovisioning),
                hosts=r["hosts"],
            )
            for r in rows
        ]
    )


async def list_volumes(query: q.ListVolumes, ctx: HandlerContext, storage: Storage):
    rows = await ctx.conn.fetch(
        """SELECT v.*, p.uuid AS pool_uuid, coalesce(m.account_id, s.account_id, v.account_id) AS account_id
           FROM volumes v JOIN pools p ON p.id = v.pool_id
             LEFT JOIN vms m ON m.uuid = v.vm_uuid
             LEFT JOIN vm_snapshots s ON s.uuid = v.source_vm_snapshot_id
           WHERE ($1::uuid IS NULL OR v.uuid = $1) AND ($2::uuid IS NULL OR v.vm_uuid = $2)
             AND ($3::text IS NULL OR v.state = $3)
             AND ($4::uuid IS NULL OR coalesce(m.account_id, s.account_id, v.account_id) = $4)
             AND ($5::uuid IS NULL OR coalesce(m.account_id, s.account_id, v.account_id) = $5)
           ORDER BY v.created, v.id""",
        query.id,
        query.vm_id,
        query.state,
        query.account_id,
        account_scope(ctx.envelope.actor),
    )
    return q.ListVolumesResult(
        volumes=[
            q.Volume(
                id=r["uuid"],
                name=r["name"],
                type=r["type"],
                state=r["state"],
                size_bytes=r["size_bytes"],
                pool_id=r["pool_uuid"],
                vm_id=r["vm_uuid"],
                device_id=r["device_id"],
                disk_path=r["disk_path"],
                disk_offering_id=r["disk_offering_id"],
                template_id=r["template_id"],
                source_vm_snapshot_id=r["source_vm_snapshot_id"],
                reason=r["reason"],
                account_id=r["account_id"],
                device_key=r["device_key"],
            )
            for r in rows
        ]
    )


async def list_seeds(query: q.ListSeeds, ctx: HandlerContext, storage: Storage):
    if account_scope(ctx.envelope.actor) is not None:
        return q.ListSeedsResult(seeds=[])
    rows = await ctx.conn.fetch(
        """SELECT s.*, v.uuid AS snapshot_uuid, p.uuid AS pool_uuid FROM vm_snapshot_spool_ref s
           JOIN vm_snapshots v ON v.id = s.vm_snapshot_id JOIN pools p ON p.id = s.pool_id
           WHERE ($1::uuid IS NULL OR v.uuid = $1) AND ($2::uuid IS NULL OR p.uuid = $2)
           ORDER BY s.id""",
        query.vm_snapshot_id,
        query.pool_id,
    )
    return q.ListSeedsResult(
        seeds=[
            q.Seed(
                id=uuid.UUID(r["uuid"]),
                vm_snapshot_id=r["snapshot_uuid"],
                pool_id=r["pool_uuid"],
                state=r["state"],
                status=r["status"],
                install_path=r["install_path"],
                template_ref=r["template_ref"],
                base_snapshot_ref=r["base_snapshot_ref"],
                template_size=r["template_size"],
                marked_for_gc=r["marked_for_gc"],
                created=r["created"],
            )
            for r in rows
        ]
    )


async def list_disk_offerings(query: q.ListDiskOfferings, ctx: HandlerContext, storage: Storage):
    rows = await ctx.conn.fetch("SELECT * FROM disk_offerings ORDER BY name")
    return q.ListDiskOfferingsResult(
        offerings=[q.DiskOffering(id=r["uuid"], name=r["name"], size_bytes=r["size_bytes"]) for r in rows]
    )


async def list_templates(query: q.ListTemplates, ctx: HandlerContext, storage: Storage):
    rows = await ctx.conn.fetch(
        """SELECT t.*, p.uuid AS pool_uuid FROM templates t JOIN pools p ON p.id = t.pool_id
           WHERE ($1::text IS NULL OR t.zone_id = $1) ORDER BY t.name""",
        query.zone_id,
    )
    return q.ListTemplatesResult(
        templates=[
            q.Template(
                id=r["uuid"],
                name=r["name"],
                zone_id=r["zone_id"],
                pool_id=r["pool_uuid"],
                size_bytes=r["size_bytes"],
                deployable=r["base_snapshot_ref"] is not None,
            )
            for r in rows
        ]
    )
