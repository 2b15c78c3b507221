"""Reconciliation of the planner's records with vCenter (DESIGN section 4), on every inventory sync.

- A VM carrying a snapdeploy id (extraConfig ``snapdeploy.id``) that no live instance owns is
  an orphan (a clone that finished after its deployment was given up, say): it is destroyed,
  or only reported (``RECONCILE_MODE=report``). A VM without a snapdeploy id is never touched,
  nor are seeds (storage's) and templates.
- An instance in a transitional state (Starting, Stopping) that no saga drives any more is
  stuck: it goes to Error with a reason, and its host reservation is released.

Both wait for the grace period (``RECONCILE_GRACE``); each action is an ActionEvent. A
periodic pass (``RECONCILE_INTERVAL``) asks every known zone for its inventory; an operator
runs one at once by sending ``SyncInventory`` to the zone's agent.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import structlog

from contracts import agent
from contracts.envelope import Envelope
from contracts.events import InventorySynced
from services.planner import hosts, inventory, store
from services.planner.common import Planner, vm_state
from shared.messaging import HandlerContext
from shared.reconcile import snapdeploy_uuid

log = structlog.get_logger("planner.reconcile")

SEED_PREFIX = "snapdeploy-seed-"  # seeded templates are storage's to reconcile
TRANSITIONAL = ("Starting", "Stopping")
# A record in one of these states owns no VM: a VM of its id is left over.
DEAD = ("Destroyed", "Expunged", "Error")


async def inventory_synced(event: InventorySynced, ctx: HandlerContext, planner: Planner) -> None:
    """Record what the agent found, then reconcile the zone against it."""
    await inventory.inventory_synced(event, ctx)
    if planner.reconcile is not None:
        await orphan_vms(event, ctx, planner)
        await stuck_instances(event.zone_id, ctx, planner)


async def orphan_vms(event: InventorySynced, ctx: HandlerContext, planner: Planner) -> None:
    ours = {
        vm_id: vm
        for vm in event.vms
        if not vm.template
        and not vm.name.startswith(SEED_PREFIX)
        and (vm_id := snapdeploy_uuid(vm.snapdeploy_id)) is not None
    }
    owned = await store.live_instance_ids(ctx.conn, list(ours), list(DEAD))
    orphans = {vm_id: vm for vm_id, vm in ours.items() if vm_id not in owned}
    for vm_id in await planner.reconcile.sightings.due(ctx.conn, ("vm", event.zone_id), orphans):
        vm = orphans[vm_id]
        if planner.reconcile.mode == "report":
            log.warning("orphan VM found", vm=vm.name, ref=vm.ref, snapdeploy_id=str(vm_id))
            ctx.action(
                "VM.EXPUNGE", "Completed", "VirtualMachine", vm_id, vm.name,
                f"reconciliation: VM {vm.name} ({vm.ref}) is owned by no live instance; reported only",
            )  # fmt: skip
            continue
        log.warning("destroying an orphan VM", vm=vm.name, ref=vm.ref, snapdeploy_id=str(vm_id))
        ctx.send(agent.DestroyVm(zone_id=event.zone_id, vm_ref=vm.ref))
        ctx.action(
            "VM.EXPUNGE", "Started", "VirtualMachine", vm_id, vm.name,
            f"reconciliation: VM {vm.name} ({vm.ref}) is owned by no live instance; destroying it",
        )  # fmt: skip


async def stuck_instances(zone_id: str, ctx: HandlerContext, planner: Planner) -> None:
    rows = await store.undriven_instances(ctx.conn, zone_id, list(TRANSITIONAL))
    stuck = {row["uuid"]: row for row in rows}
    for vm_id in await planner.reconcile.sightings.due(ctx.conn, ("stuck", zone_id), stuck):
        row = stuck[vm_id]
        reason = f"stuck in {row['state']} with nothing driving it (found by reconciliation)"
        if not await store.move_state(ctx.conn, vm_id, row["state"], "Error", reason):
            continue
        await hosts.release_for(ctx.conn, vm_id)
        vm_state(ctx, vm_id, row["state"], "Error", reason)
        event_type = "VM.CREATE" if row["state"] == "Starting" else "VM.STOP"
        ctx.action(event_type, "Completed", "VirtualMachine", vm_id, row["name"], reason, failed=True)


async def periodic(runtime, *, interval: float) -> None:
    """Every ``interval`` seconds, ask each known zone's agent for its inventory (reconciled on arrival).

    The ask is published directly, not through the outbox: a lost one costs nothing (the next
    pass asks again), and a pass writes nothing to the database. What arrives is only written
    where it finds something to do.
    """
    while True:
        await asyncio.sleep(interval)
        try:
            async with runtime.pool.acquire() as conn:
                zones = await store.zones(conn)
            cause = Envelope(
                message_id=uuid.uuid4(),
                type="ReconcilePass",
                schema_version=1,
                occurred_at=datetime.now(UTC),
                source="planner",
                payload={},
            )
            ctx = HandlerContext(cause, "planner")
            for zone_id in zones:
                ctx.send(agent.SyncInventory(zone_id=zone_id))
            for out in ctx.outgoing:
                await runtime.bus.publish(out)
        except Exception as error:
            log.warning("reconciliation pass failed", error=repr(error))
