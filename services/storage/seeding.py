"""Seeded templates from VM snapshots (``vm_snapshot_spool_ref``).

One seeding per (snapshot, pool) at a time across every replica: an advisory lock on the
pair serialises the requests, the first creates the row and asks the agent, the others find
it and wait (their requests are parked and all answered with the same seed). A Ready seed
answers at once. The root disk's full size is reserved before the copy and released if the
copy fails.
"""

from __future__ import annotations

import uuid

from contracts import agent
from contracts.catalogue import failed_reply
from contracts.errors import ErrorCode
from contracts.storage import SeedTemplateFromVmSnapshot, SeedTemplateFromVmSnapshotSucceeded
from contracts.vsphere import DiskConfig
from services.storage import domain, store, vm_volumes
from services.storage.common import Storage, call_agent, require_owner, state_changed
from shared.db import awaited, pending
from shared.errors import DomainError
from shared.messaging import DEFERRED, HandlerContext

SEED = "seed"


def succeeded(seed, snapshot_uuid: uuid.UUID, pool_uuid: uuid.UUID) -> SeedTemplateFromVmSnapshotSucceeded:
    return SeedTemplateFromVmSnapshotSucceeded(
        seed_id=uuid.UUID(seed["uuid"]),
        vm_snapshot_id=snapshot_uuid,
        storage_id=pool_uuid,
        install_path=seed["install_path"],
        template_size=seed["template_size"],
        template_ref=seed["template_ref"],
        base_snapshot_ref=seed["base_snapshot_ref"],
    )


async def seed_template_from_vm_snapshot(
    command: SeedTemplateFromVmSnapshot, ctx: HandlerContext, storage: Storage
):
    conn = ctx.conn
    snapshot = await store.vm_snapshot(conn, command.vm_snapshot_id)
    require_owner(ctx, snapshot["account_id"], f"VM snapshot {snapshot['name']}")
    pool = await store.pool(conn, uuid_=command.storage_id)
    if pool["zone_id"] != command.zone_id:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"storage pool {pool['name']} is in zone {pool['zone_id']}, not {command.zone_id}",
        )
    if snapshot["zone_id"] != command.zone_id:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"VM snapshot {snapshot['name']} is in zone {snapshot['zone_id']}, not {command.zone_id}",
        )
    domain.require_vmware(snapshot["hypervisor"], "seeding a template from a VM snapshot")
    disks = [DiskConfig.model_validate(d) for d in snapshot["disks"]]
    root = domain.root_disk(disks, await store.root_volume_key(conn, snapshot["vm_uuid"]))
    if root.datastore != pool["name"]:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"a template can be seeded only on the pool that holds the VM snapshot ({root.datastore}); "
            f"storage pool {pool['name']} is another pool",
        )

    await lock_pair(conn, snapshot["id"], pool["id"])
    seed = await store.live_seed(conn, snapshot["id"], pool["id"])
    if seed is None:
        seed = await start(ctx, storage, snapshot, pool, root)
    if command.root_volume is not None:  # the deployment's root volume, on this seed
        volume = command.root_volume
        await vm_volumes.allocate(
            ctx, storage, pool, volume.volume_id, vm_id=volume.vm_id, name=volume.name,
            size_bytes=volume.size_bytes, seed_id=seed["id"], template_id=volume.template_id,
            disk_offering_id=volume.disk_offering_id,
        )  # fmt: skip
    if seed["state"] == "Ready":
        return succeeded(seed, command.vm_snapshot_id, command.storage_id)
    await pending.park(ctx, seed["uuid"], SEED)
    return DEFERRED


async def lock_pair(conn, snapshot_id: int, pool_id: int) -> None:
    """Serialises everything about one (snapshot, pool) seed: requests that find it Creating park
    themselves under this lock, and the agent's reply answers them under it, so none is missed."""
    await store.lock_seed_pair(conn, snapshot_id, pool_id)


async def lock_seed(conn, seed_uuid: str) -> None:
    pair = await store.seed_pair(conn, seed_uuid)
    if pair is not None:
        await lock_pair(conn, *pair)


async def start(ctx: HandlerContext, storage: Storage, snapshot, pool, root: DiskConfig):
    conn = ctx.conn
    if not await store.reserve(conn, pool["id"], root.size_bytes, storage.overprovisioning):
        figures = domain.PoolFigures(
            pool["name"], pool["capacity_bytes"], pool["allocated_bytes"], storage.overprovisioning
        )
        raise domain.insufficient_capacity(
            figures, root.size_bytes, f"a seed of VM snapshot {snapshot['name']}"
        )
    seed_uuid = uuid.uuid4()
    job_id = str(ctx.envelope.correlation_id) if ctx.envelope.correlation_id else None
    seed = await store.add_seed(conn, seed_uuid, pool["id"], snapshot["id"], job_id, root.size_bytes)
    await call_agent(
        ctx,
        agent.SeedTemplate(
            zone_id=pool["zone_id"],
            seed_id=str(seed_uuid),
            vm_ref=snapshot["vm_ref"],
            snapshot_ref=snapshot["snapshot_ref"],
            datastore=pool["name"],
        ),
        SEED,
        seed_uuid,
        snapshot=str(snapshot["uuid"]),
        pool=str(pool["uuid"]),
    )
    name = f"seed of {snapshot['name']} on {pool['name']}"
    ctx.action(
        "TEMPLATE.CREATE",
        "Started",
        "Template",
        seed_uuid,
        name,
        f"seeding template from VM snapshot {snapshot['name']} on {pool['name']}",
    )
    state_changed(ctx, "SeededTemplate", seed_uuid, None, "Creating")
    return seed


async def seed_template_succeeded(event: agent.SeedTemplateSucceeded, ctx: HandlerContext) -> None:
    conn = ctx.conn
    call = await awaited.take(conn, ctx.envelope.causation_id)
    if call is None:
        return  # not ours, or already handled
    await lock_seed(conn, event.seed_id)
    seed = await store.move_seed(
        conn,
        event.seed_id,
        "Creating",
        "Ready",
        status="ready",
        install_path=event.disk_path,
        template_ref=event.template_ref,
        base_snapshot_ref=event.base_snapshot_ref,
    )
    if seed is None:
        return
    snapshot_uuid, pool_uuid = uuid.UUID(call["detail"]["snapshot"]), uuid.UUID(call["detail"]["pool"])
    seed_uuid = uuid.UUID(seed["uuid"])
    ctx.action(
        "TEMPLATE.CREATE",
        "Completed",
        "Template",
        seed_uuid,
        event.template_name,
        f"template seeded at {event.disk_path}",
    )
    state_changed(ctx, "SeededTemplate", seed_uuid, "Creating", "Ready")
    ctx.outgoing.extend(
        await pending.answer(
            conn, seed["uuid"], SEED, succeeded(seed, snapshot_uuid, pool_uuid), source="storage"
        )
    )


async def seed_template_failed(event, ctx: HandlerContext) -> None:
    conn = ctx.conn
    call = await awaited.take(conn, ctx.envelope.causation_id)
    if call is None:
        return
    seed_uuid = str(call["resource_id"])
    await lock_seed(conn, seed_uuid)
    reason = f"seeding the template failed: {event.error_text}"
    seed = await store.move_seed(conn, seed_uuid, "Creating", "Error", status=reason[:255])
    if seed is None:
        return
    await store.count(conn, seed["pool_id"], -seed["template_size"])
    ctx.action("TEMPLATE.CREATE", "Completed", "Template", uuid.UUID(seed_uuid), None, reason, failed=True)
    state_changed(ctx, "SeededTemplate", uuid.UUID(seed_uuid), "Creating", "Error", reason)
    failure = failed_reply(SeedTemplateFromVmSnapshot)(
        error_code=event.error_code, error_text=reason, retryable=event.retryable, fault=event.fault
    )
    ctx.outgoing.extend(await pending.answer(conn, seed_uuid, SEED, failure, source="storage"))


SEED_FAILED = failed_reply(agent.SeedTemplate)
