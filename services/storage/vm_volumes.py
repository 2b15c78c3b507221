"""The volumes of VMs the planner deploys and destroys, and disk offerings.

A deployed VM's root volume is allocated (its virtual size reserved on the pool) before the
clone; destroying the VM hands its root volume to the scavenger and detaches its data volumes.
"""

from __future__ import annotations

from contracts import storage as cmd
from contracts.errors import ErrorCode
from services.storage import domain, store
from services.storage.common import Storage, state_changed
from shared.errors import DomainError
from shared.messaging import HandlerContext


async def allocate_root_volume(command: cmd.AllocateRootVolume, ctx: HandlerContext, storage: Storage):
    pool = await store.pool(ctx.conn, uuid_=command.storage_id)
    seed_id = await store.seed_row_id(ctx.conn, command.seed_id) if command.seed_id is not None else None
    await allocate(
        ctx, storage, pool, command.volume_id, vm_id=command.vm_id, name=command.name,
        size_bytes=command.size_bytes, seed_id=seed_id, template_id=command.template_id,
        iso_id=command.iso_id, disk_offering_id=command.disk_offering_id,
    )  # fmt: skip
    return cmd.AllocateRootVolumeSucceeded(volume_id=command.volume_id)


async def allocate(
    ctx: HandlerContext,
    storage: Storage,
    pool,
    volume_id,
    *,
    vm_id,
    name: str,
    size_bytes: int,
    seed_id: int | None,
    template_id=None,
    iso_id=None,
    disk_offering_id=None,
) -> None:
    """Reserve a root volume's size on the pool and record it (Creating); once per volume id."""
    conn = ctx.conn
    if await store.volume_or_none(conn, volume_id) is not None:
        return
    if not await store.reserve(conn, pool["id"], size_bytes, storage.overprovisioning):
        figures = domain.PoolFigures(
            pool["name"], pool["capacity_bytes"], pool["allocated_bytes"], storage.overprovisioning
        )
        raise domain.insufficient_capacity(figures, size_bytes, f"root volume of {name}")
    await store.add_volume(
        conn,
        uuid=volume_id,
        name=name,
        type="ROOT",
        state="Creating",
        size_bytes=size_bytes,
        pool_id=pool["id"],
        vm_uuid=vm_id,
        device_id=0,
        disk_offering_id=disk_offering_id,
        template_id=template_id,
        iso_id=iso_id,
        seed_id=seed_id,
        counted_bytes=size_bytes,
    )
    ctx.action("VOLUME.CREATE", "Started", "Volume", volume_id, name, f"root volume on {pool['name']}")
    state_changed(ctx, "Volume", volume_id, None, "Creating")


async def destroy_vm_volumes(command: cmd.DestroyVmVolumes, ctx: HandlerContext, storage: Storage):
    destroyed = await store.destroy_root_volumes(ctx.conn, command.vm_id)
    detached = await store.detach_data_volumes(ctx.conn, command.vm_id)
    for row in destroyed:
        description = "root volume of a destroyed VM"
        ctx.action("VOLUME.DELETE", "Completed", "Volume", row["uuid"], row["name"], description)
        state_changed(ctx, "Volume", row["uuid"], None, "Destroy")
    return cmd.DestroyVmVolumesSucceeded(
        vm_id=command.vm_id, destroyed=[r["uuid"] for r in destroyed], detached=detached
    )


async def create_disk_offering(command: cmd.CreateDiskOffering, ctx: HandlerContext, storage: Storage):
    if ctx.envelope.actor.role == "user":
        raise DomainError(ErrorCode.ACCOUNT_ERROR, "only an admin may create disk offerings")
    await store.add_disk_offering(ctx.conn, command.offering_id, command.name, command.size_bytes)
    return cmd.CreateDiskOfferingSucceeded(offering_id=command.offering_id)
