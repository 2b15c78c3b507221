"""Reconciliation of storage's records with vCenter (DESIGN section 4), on every inventory sync.

- A seeded template (``snapdeploy-seed-<id>``, snapdeploy id ``<id>``) that no seed record owns
  is deleted with its disk, unless a linked clone still hangs from it (then only reported).
- A disk in a volume folder (``[ds] snapdeploy-volumes/<volume id>.vmdk``) that no live volume
  owns and no VM has attached is deleted.
- A data volume in Creating with no copy in flight is stuck: it goes to Error with a reason
  (the scavenger collects it as it does every Error volume).

Nothing else in vCenter is looked at: only names and ids snapdeploy gives its own objects.
Each waits for the grace period; ``RECONCILE_MODE=report`` reports instead of removing; each
action is an ActionEvent. The planner's periodic pass triggers the syncs.
"""

from __future__ import annotations

import re
import uuid

import structlog

from contracts import agent
from contracts.events import InventorySynced
from contracts.topology import STORAGE_REPLIES
from services.storage import projection
from services.storage.common import Storage, state_changed
from shared.messaging import HandlerContext
from shared.reconcile import snapdeploy_uuid

log = structlog.get_logger("storage.reconcile")

SEED_NAME = re.compile(r"^snapdeploy-seed-(?P<id>[0-9a-f-]{36})$")
VOLUME_DISK = re.compile(r"^\[(?P<ds>[^\]]+)\] snapdeploy-volumes/(?P<id>[0-9a-f-]{36})\.vmdk$")


async def inventory_synced(event: InventorySynced, ctx: HandlerContext, storage: Storage) -> None:
    """Record what the agent found, then reconcile the zone against it."""
    await projection.inventory_synced(event, ctx)
    if storage.reconcile is not None:
        await orphan_seeds(event, ctx, storage)
        await orphan_disks(event, ctx, storage)
        await stuck_volumes(event.zone_id, ctx, storage)


async def orphan_seeds(event: InventorySynced, ctx: HandlerContext, storage: Storage) -> None:
    seeds = {
        seed_id: vm
        for vm in event.vms
        if (match := SEED_NAME.match(vm.name))
        and (seed_id := snapdeploy_uuid(vm.snapdeploy_id)) is not None
        and str(seed_id) == match["id"]
    }
    owners = {
        row["uuid"]: row
        for row in await ctx.conn.fetch(
            "SELECT uuid, state, template_ref FROM vm_snapshot_spool_ref WHERE uuid = ANY($1::text[])",
            [str(s) for s in seeds],
        )
    }
    orphans = {
        seed_id: vm
        for seed_id, vm in seeds.items()
        if (row := owners.get(str(seed_id))) is None
        or (row["state"] == "Error" and row["template_ref"] != vm.ref)
    }
    parents = {disk.parent_file for vm in event.vms for disk in vm.disks if disk.parent_file}
    for seed_id in await storage.reconcile.sightings.due(ctx.conn, ("seed", event.zone_id), orphans):
        vm = orphans[seed_id]
        folder = f"{vm.name}/"
        in_use = any(parent.split("] ", 1)[-1].startswith(folder) for parent in parents)
        if storage.reconcile.mode == "report" or in_use:
            why = "linked clones hang from it" if in_use else "reported only"
            log.warning("orphan seeded template found", template=vm.name, ref=vm.ref, why=why)
            ctx.action(
                "TEMPLATE.DELETE", "Completed", "SeededTemplate", seed_id, vm.name,
                f"reconciliation: seeded template {vm.name} ({vm.ref}) is owned by no seed; {why}",
            )  # fmt: skip
            continue
        log.warning("deleting an orphan seeded template", template=vm.name, ref=vm.ref)
        ctx.send(
            agent.DeleteTemplate(zone_id=event.zone_id, template_ref=vm.ref), reply_to=STORAGE_REPLIES.name
        )
        ctx.action(
            "TEMPLATE.DELETE", "Started", "SeededTemplate", seed_id, vm.name,
            f"reconciliation: seeded template {vm.name} ({vm.ref}) is owned by no seed; deleting it",
        )  # fmt: skip


async def orphan_disks(event: InventorySynced, ctx: HandlerContext, storage: Storage) -> None:
    disks = {
        uuid.UUID(match["id"]): path
        for path in event.volume_disks
        if (match := VOLUME_DISK.match(path)) and snapdeploy_uuid(match["id"]) is not None
    }
    owned = {
        row["uuid"]
        for row in await ctx.conn.fetch(
            "SELECT uuid FROM volumes WHERE uuid = ANY($1::uuid[]) AND state <> 'Expunged'", list(disks)
        )
    }
    attached = {disk.file for vm in event.vms for disk in vm.disks}
    orphans = {v: path for v, path in disks.items() if v not in owned and path not in attached}
    for volume_id in await storage.reconcile.sightings.due(ctx.conn, ("disk", event.zone_id), orphans):
        path = orphans[volume_id]
        if storage.reconcile.mode == "report":
            log.warning("orphan volume disk found", disk=path)
            ctx.action(
                "VOLUME.DELETE", "Completed", "Volume", volume_id, None,
                f"reconciliation: disk {path} is owned by no volume; reported only",
            )  # fmt: skip
            continue
        log.warning("deleting an orphan volume disk", disk=path)
        ctx.send(agent.DeleteDisk(zone_id=event.zone_id, disk_path=path), reply_to=STORAGE_REPLIES.name)
        ctx.action(
            "VOLUME.DELETE", "Started", "Volume", volume_id, None,
            f"reconciliation: disk {path} is owned by no volume; deleting it",
        )  # fmt: skip


async def stuck_volumes(zone_id: str, ctx: HandlerContext, storage: Storage) -> None:
    rows = await ctx.conn.fetch(
        """SELECT v.uuid, v.name FROM volumes v JOIN pools p ON p.id = v.pool_id
           WHERE p.zone_id = $1 AND v.type = 'DATADISK' AND v.state = 'Creating'
             AND NOT EXISTS (SELECT 1 FROM awaited_replies c WHERE c.resource_id = v.uuid)""",
        zone_id,
    )
    stuck = {row["uuid"]: row["name"] for row in rows}
    for volume_id in await storage.reconcile.sightings.due(ctx.conn, ("stuck", zone_id), stuck):
        reason = "stuck in Creating with no copy in flight (found by reconciliation)"
        moved = await ctx.conn.fetchval(
            """UPDATE volumes SET state = 'Error', reason = $2, updated = now()
               WHERE uuid = $1 AND state = 'Creating' RETURNING uuid""",
            volume_id,
            reason,
        )
        if moved is None:
            continue
        state_changed(ctx, "Volume", volume_id, "Creating", "Error", reason)
        ctx.action("VOLUME.CREATE", "Completed", "Volume", volume_id, stuck[volume_id], reason, failed=True)
