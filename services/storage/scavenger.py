"""The storage scavenger: collects volumes in Error or Destroy and seeds no longer needed.

While anything may need collecting, every ``interval`` it takes what has waited longer than
``delay`` (``FOR UPDATE SKIP LOCKED``, so each item is handled by one replica), asks the agent
to delete the disk or template, and finishes when the agent answers: the volume is Expunged
and its bytes leave the pool's allocation; the seed row is removed. A seed that linked clones
still hang from (a live volume made from it) is never collected. With nothing that may need
collecting it makes no query: it waits until something is written (what makes a volume or a
seed collectable also emits an event through the outbox).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import structlog

from contracts import agent
from contracts.envelope import Envelope
from services.storage import store
from services.storage.common import call_agent, state_changed
from shared.db import awaited, outbox
from shared.messaging import HandlerContext

log = structlog.get_logger("scavenger")
EXPUNGE, DROP_SEED = "expunge", "drop_seed"


async def run(runtime, *, interval: float, delay: float) -> None:
    activity = runtime.relay.activity()
    while True:
        activity.clear()
        waiting = True
        try:
            collected, waiting = await scavenge_once(runtime, delay=delay)
            if collected:
                log.info("scavenger pass", collected=collected)
        except Exception as error:
            log.warning("scavenger pass failed", error=repr(error))
        await asyncio.sleep(interval)
        if not waiting:
            await activity.wait()


async def scavenge_once(runtime, *, delay: float, batch: int = 50) -> tuple[int, bool]:
    """One pass: how many items it took, and whether anything (now or later) may need collecting."""
    # What the pass sends is caused by the pass itself: one correlation id per pass.
    cause = Envelope(
        message_id=uuid.uuid4(),
        type="ScavengerPass",
        schema_version=1,
        correlation_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        source="storage",
        payload={},
    )
    async with runtime.pool.acquire() as conn, conn.transaction():
        ctx = HandlerContext(cause, "storage", conn=conn)
        volumes = await conn.fetch(
            """SELECT v.*, p.zone_id, p.name AS pool_name FROM volumes v JOIN pools p ON p.id = v.pool_id
               WHERE v.state IN ('Error', 'Destroy') AND v.updated < now() - make_interval(secs => $1)
               ORDER BY v.updated LIMIT $2 FOR UPDATE OF v SKIP LOCKED""",
            delay,
            batch,
        )
        for volume in volumes:
            # A failed copy may have left no file; deleting a missing disk succeeds, so ask anyway.
            path = volume["disk_path"] or f"[{volume['pool_name']}] snapdeploy-volumes/{volume['uuid']}.vmdk"
            await store.move_volume(conn, volume["uuid"], (volume["state"],), "Expunging")
            await call_agent(
                ctx, agent.DeleteDisk(zone_id=volume["zone_id"], disk_path=path), EXPUNGE, volume["uuid"]
            )
            state_changed(ctx, "Volume", volume["uuid"], volume["state"], "Expunging")
        seeds = await conn.fetch(
            """SELECT s.*, p.zone_id FROM vm_snapshot_spool_ref s JOIN pools p ON p.id = s.pool_id
               WHERE s.updated < now() - make_interval(secs => $1)
                 AND (s.state = 'Error' OR (s.state = 'Ready' AND s.marked_for_gc
                      AND NOT EXISTS (SELECT 1 FROM volumes v WHERE v.seed_id = s.id
                                      AND v.state NOT IN ('Expunged', 'Error'))))
                 AND NOT EXISTS (SELECT 1 FROM awaited_replies c WHERE c.resource_id::text = s.uuid)
               ORDER BY s.updated LIMIT $2 FOR UPDATE OF s SKIP LOCKED""",
            delay,
            batch,
        )
        for seed in seeds:
            if seed["state"] == "Error" or seed["template_ref"] is None:
                # The agent removes what a failed seeding made; nothing is left in vCenter.
                await conn.execute("DELETE FROM vm_snapshot_spool_ref WHERE id = $1", seed["id"])
                continue
            await call_agent(
                ctx,
                agent.DeleteTemplate(zone_id=seed["zone_id"], template_ref=seed["template_ref"]),
                DROP_SEED,
                uuid.UUID(seed["uuid"]),
            )
        await outbox.add(conn, ctx.outgoing)
        waiting = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM volumes WHERE state IN ('Error', 'Destroy'))
                   OR EXISTS (SELECT 1 FROM vm_snapshot_spool_ref
                              WHERE state = 'Error' OR (state = 'Ready' AND marked_for_gc))"""
        )
    runtime.relay.wake()
    return len(volumes) + len(seeds), waiting


async def delete_disk_succeeded(event: agent.DeleteDiskSucceeded, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    volume = await store.volume(ctx.conn, call["resource_id"])
    expunged = await store.move_volume(ctx.conn, volume["uuid"], ("Expunging",), "Expunged", counted_bytes=0)
    if expunged is None:
        return
    await store.count(ctx.conn, volume["pool_id"], -volume["counted_bytes"])
    state_changed(ctx, "Volume", volume["uuid"], "Expunging", "Expunged")
    ctx.action(
        "VOLUME.EXPUNGE",
        "Completed",
        "Volume",
        volume["uuid"],
        volume["name"],
        f"disk {event.disk_path} deleted",
    )


async def delete_disk_failed(event, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    # Back to Destroy: the next pass tries again.
    await store.move_volume(ctx.conn, call["resource_id"], ("Expunging",), "Destroy", reason=event.error_text)
    log.warning("could not delete a volume's disk", volume=str(call["resource_id"]), error=event.error_text)


async def delete_template_succeeded(event: agent.DeleteTemplateSucceeded, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    seed = await ctx.conn.fetchrow(
        "DELETE FROM vm_snapshot_spool_ref WHERE uuid = $1 RETURNING *", str(call["resource_id"])
    )
    if seed is not None:
        await store.count(ctx.conn, seed["pool_id"], -seed["template_size"])
        state_changed(ctx, "SeededTemplate", call["resource_id"], "Ready", "Removed")


async def delete_template_failed(event, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is not None:
        log.warning(
            "could not delete a seeded template", seed=str(call["resource_id"]), error=event.error_text
        )
