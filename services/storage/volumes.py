"""Volumes: created blank or from one disk of a VM snapshot, attached, detached, resized, deleted.

A volume from a VM snapshot is a full copy of that disk as it was at the snapshot, on the
same pool, of the same size; its full size is reserved before the copy. States go
Allocated -> Creating -> Ready, or Error with the reason (collected by the scavenger).
A blank volume reserves its size on a pool of the zone, then the agent makes an empty disk;
if that fails, the agent has removed what it made, so the volume goes straight to Expunged
with the reason and its bytes leave the pool (reconciliation deletes a disk that shows up later).
Attach, detach and resize are refused while the VM has VM snapshots (CloudStack's rule).
"""

from __future__ import annotations

import uuid

from contracts import agent
from contracts import storage as cmd
from contracts.catalogue import failed_reply
from contracts.errors import ErrorCode
from contracts.vsphere import DiskConfig
from services.storage import domain, store
from services.storage.common import Storage, call_agent, require_owner, state_changed
from shared.db import awaited, pending
from shared.errors import DomainError
from shared.messaging import DEFERRED, HandlerContext

COPY, CREATE, ATTACH, DETACH, RESIZE = "copy", "create", "attach", "detach", "resize"


def figures(pool, storage: Storage) -> domain.PoolFigures:
    return domain.PoolFigures(
        pool["name"], pool["capacity_bytes"], pool["allocated_bytes"], storage.overprovisioning
    )


def volume_failed(command: type, error_code: int, text: str, fault: str | None = None):
    return failed_reply(command)(error_code=error_code, error_text=text, fault=fault)


# -- from a VM snapshot -------------------------------------------------------------------------------


async def create_volume_from_vm_snapshot(
    command: cmd.CreateVolumeFromVmSnapshot, ctx: HandlerContext, storage: Storage
):
    conn = ctx.conn
    # Locked: a copy finishing now answers the parked requests under the same row lock.
    existing = await store.volume_or_none(conn, command.new_volume_id, lock=True)
    if existing is not None:
        return await answer_existing(ctx, existing)
    snapshot = await store.vm_snapshot(conn, command.vm_snapshot_id)
    require_owner(ctx, snapshot["account_id"], f"VM snapshot {snapshot['name']}")
    domain.require_vmware(snapshot["hypervisor"], "creating a volume from a VM snapshot")
    if command.zone_id and command.zone_id != snapshot["zone_id"]:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"VM snapshot {snapshot['name']} is in zone {snapshot['zone_id']}, not {command.zone_id}",
        )
    if command.disk_offering_id is not None and not await store.disk_offering_exists(
        conn, command.disk_offering_id
    ):
        raise DomainError(ErrorCode.PARAM_ERROR, f"disk offering {command.disk_offering_id} does not exist")
    source = await store.volume(conn, command.volume_id)
    if source["vm_uuid"] != snapshot["vm_uuid"]:
        vm = await store.vm(conn, snapshot["vm_uuid"])
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"volume {source['name']} is not a volume of VM {vm['name']}, "
            f"the VM of VM snapshot {snapshot['name']}",
        )
    disks = [DiskConfig.model_validate(d) for d in snapshot["disks"]]
    disk = next((d for d in disks if d.key == source["device_key"]), None)
    if disk is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"volume {source['name']} was not on the VM when {snapshot['name']} was taken",
        )
    pool = await store.pool_named(conn, snapshot["zone_id"], disk.datastore) or await store.pool(
        conn, id_=source["pool_id"]
    )
    if not await store.reserve(conn, pool["id"], disk.size_bytes, storage.overprovisioning):
        raise domain.insufficient_capacity(figures(pool, storage), disk.size_bytes, f"volume {command.name}")
    await store.add_volume(
        conn,
        uuid=command.new_volume_id,
        name=command.name,
        type="DATADISK",
        state="Creating",
        size_bytes=disk.size_bytes,
        pool_id=pool["id"],
        disk_offering_id=command.disk_offering_id or source["disk_offering_id"],
        template_id=source["template_id"],
        source_vm_snapshot_id=command.vm_snapshot_id,
        counted_bytes=disk.size_bytes,
    )
    await call_agent(
        ctx,
        agent.CopyVolumeFromSnapshot(
            zone_id=snapshot["zone_id"],
            volume_id=str(command.new_volume_id),
            vm_ref=snapshot["vm_ref"],
            snapshot_ref=snapshot["snapshot_ref"],
            disk_key=disk.key,
        ),
        COPY,
        command.new_volume_id,
    )
    description = f"volume {command.name} from disk {disk.key} of VM snapshot {snapshot['name']}"
    ctx.action("VOLUME.CREATE", "Started", "Volume", command.new_volume_id, command.name, description)
    state_changed(ctx, "Volume", command.new_volume_id, None, "Allocated")
    state_changed(ctx, "Volume", command.new_volume_id, "Allocated", "Creating")
    await pending.park(ctx, command.new_volume_id, COPY)
    return DEFERRED


async def answer_existing(ctx: HandlerContext, volume):
    """The same request again (or another for the same new volume id)."""
    if volume["state"] == "Ready":
        pool = await store.pool(ctx.conn, id_=volume["pool_id"])
        return cmd.CreateVolumeFromVmSnapshotSucceeded(
            volume_id=volume["uuid"], size_bytes=volume["size_bytes"], storage_id=pool["uuid"]
        )
    if volume["state"] in ("Allocated", "Creating"):
        await pending.park(ctx, volume["uuid"], COPY)
        return DEFERRED
    raise DomainError(
        ErrorCode.PARAM_ERROR,
        f"volume {volume['uuid']} already exists in state {volume['state']}"
        + (f": {volume['reason']}" if volume["reason"] else ""),
    )


async def copy_volume_succeeded(event: agent.CopyVolumeFromSnapshotSucceeded, ctx: HandlerContext) -> None:
    await creation_succeeded(
        event, ctx, what="volume", operation=COPY,
        reply=lambda volume, pool: cmd.CreateVolumeFromVmSnapshotSucceeded(
            volume_id=volume["uuid"], size_bytes=volume["size_bytes"], storage_id=pool["uuid"]
        ),
    )  # fmt: skip


async def creation_succeeded(event, ctx: HandlerContext, *, what: str, operation: str, reply) -> None:
    """The agent made a volume's disk: the volume is Ready and whoever waits for it is answered
    with ``reply(volume, pool)``."""
    conn = ctx.conn
    if await awaited.take(conn, ctx.envelope.causation_id) is None:
        return
    volume_uuid = uuid.UUID(event.volume_id)
    volume = await store.move_volume(conn, volume_uuid, ("Creating",), "Ready", disk_path=event.disk_path)
    if volume is None:
        return
    pool = await store.pool(conn, id_=volume["pool_id"])
    description = f"{what} {volume['name']} at {event.disk_path}"
    ctx.action("VOLUME.CREATE", "Completed", "Volume", volume_uuid, volume["name"], description)
    state_changed(ctx, "Volume", volume_uuid, "Creating", "Ready")
    ctx.outgoing.extend(
        await pending.answer(conn, volume_uuid, operation, reply(volume, pool), source="storage")
    )


async def copy_volume_failed(event, ctx: HandlerContext) -> None:
    await creation_failed(
        event, ctx, doing="copying the disk from the VM snapshot", to="Error",
        command=cmd.CreateVolumeFromVmSnapshot, operation=COPY,
    )  # fmt: skip


async def creation_failed(
    event, ctx: HandlerContext, *, doing: str, to: str, command: type, operation: str
) -> None:
    """The agent could not make a volume's disk: the volume moves ``to`` a final state with the
    reason, its size goes back to the pool, and whoever waits for it is told why."""
    conn = ctx.conn
    call = await awaited.take(conn, ctx.envelope.causation_id)
    if call is None:
        return
    volume_uuid = call["resource_id"]
    reason = f"{doing} failed: {event.error_text}"
    volume = await store.move_volume(conn, volume_uuid, ("Creating",), to, reason=reason, counted_bytes=0)
    if volume is None:
        return
    await store.count(conn, volume["pool_id"], -volume["size_bytes"])
    ctx.action("VOLUME.CREATE", "Completed", "Volume", volume_uuid, volume["name"], reason, failed=True)
    state_changed(ctx, "Volume", volume_uuid, "Creating", to, reason)
    failure = volume_failed(command, event.error_code, reason, event.fault)
    ctx.outgoing.extend(await pending.answer(conn, volume_uuid, operation, failure, source="storage"))


# -- blank ----------------------------------------------------------------------------------------------


async def create_volume(command: cmd.CreateVolume, ctx: HandlerContext, storage: Storage):
    conn = ctx.conn
    existing = await store.volume_or_none(conn, command.new_volume_id, lock=True)
    if existing is not None:
        return await answer_existing_blank(ctx, existing)
    if command.disk_offering_id is not None and not await store.disk_offering_exists(
        conn, command.disk_offering_id
    ):
        raise DomainError(ErrorCode.PARAM_ERROR, f"disk offering {command.disk_offering_id} does not exist")
    pool = await blank_volume_pool(conn, command, storage)
    await store.add_volume(
        conn,
        uuid=command.new_volume_id,
        name=command.name,
        type="DATADISK",
        state="Creating",
        size_bytes=command.size_bytes,
        pool_id=pool["id"],
        disk_offering_id=command.disk_offering_id,
        account_id=ctx.envelope.actor.account_id,
        counted_bytes=command.size_bytes,
    )
    await call_agent(
        ctx,
        agent.CreateDisk(
            zone_id=command.zone_id,
            volume_id=str(command.new_volume_id),
            datastore=pool["name"],
            size_bytes=command.size_bytes,
        ),
        CREATE,
        command.new_volume_id,
    )
    description = f"blank volume {command.name} of {command.size_bytes} bytes on pool {pool['name']}"
    ctx.action("VOLUME.CREATE", "Started", "Volume", command.new_volume_id, command.name, description)
    state_changed(ctx, "Volume", command.new_volume_id, None, "Allocated")
    state_changed(ctx, "Volume", command.new_volume_id, "Allocated", "Creating")
    await pending.park(ctx, command.new_volume_id, CREATE)
    return DEFERRED


async def blank_volume_pool(conn, command: cmd.CreateVolume, storage: Storage):
    """The pool the blank volume's size is reserved on (atomically): the one named, else the zone's
    pool with the most room left under its allocation limit."""
    if command.storage_id is not None:
        pool = await store.pool(conn, uuid_=command.storage_id)
        if pool["zone_id"] != command.zone_id:
            raise DomainError(
                ErrorCode.PARAM_ERROR, f"storage pool {pool['name']} is not in zone {command.zone_id}"
            )
        candidates = [pool]
    else:
        candidates = await store.pools_by_room(conn, command.zone_id, storage.overprovisioning)
        if not candidates:
            raise DomainError(ErrorCode.PARAM_ERROR, f"zone {command.zone_id} has no storage pool")
    for pool in candidates:
        if await store.reserve(conn, pool["id"], command.size_bytes, storage.overprovisioning):
            return pool
    best = candidates[0]
    raise domain.insufficient_capacity(figures(best, storage), command.size_bytes, f"volume {command.name}")


async def answer_existing_blank(ctx: HandlerContext, volume):
    """The same request again: its answer as it stands (a failed one fails again, with its reason)."""
    if volume["state"] in ("Allocated", "Creating"):
        await pending.park(ctx, volume["uuid"], CREATE)
        return DEFERRED
    if volume["state"] == "Expunged" and volume["reason"]:
        raise DomainError(ErrorCode.INTERNAL_ERROR, volume["reason"])
    if volume["disk_path"] is None or volume["source_vm_snapshot_id"] is not None:
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"volume {volume['uuid']} already exists in state {volume['state']}"
        )
    pool = await store.pool(ctx.conn, id_=volume["pool_id"])
    return cmd.CreateVolumeSucceeded(
        volume_id=volume["uuid"],
        size_bytes=volume["size_bytes"],
        storage_id=pool["uuid"],
        disk_path=volume["disk_path"],
    )


async def create_disk_succeeded(event: agent.CreateDiskSucceeded, ctx: HandlerContext) -> None:
    await creation_succeeded(
        event, ctx, what="blank volume", operation=CREATE,
        reply=lambda volume, pool: cmd.CreateVolumeSucceeded(
            volume_id=volume["uuid"], size_bytes=volume["size_bytes"], storage_id=pool["uuid"],
            disk_path=volume["disk_path"],
        ),
    )  # fmt: skip


async def create_disk_failed(event, ctx: HandlerContext) -> None:
    # Nothing of it is left in vCenter (the agent removed what it wrote): the volume is gone.
    await creation_failed(
        event, ctx, doing="creating the disk", to="Expunged", command=cmd.CreateVolume, operation=CREATE
    )


# -- attach, detach, resize, delete ----------------------------------------------------------------------


async def busy_volume(ctx: HandlerContext, volume_uuid: uuid.UUID):
    """The volume, locked; refused while another operation on it is in flight."""
    volume = await store.volume(ctx.conn, volume_uuid, lock=True)
    require_owner(ctx, await store.volume_account(ctx.conn, volume), f"volume {volume['name']}")
    operation = await awaited.in_flight(ctx.conn, volume_uuid)
    if operation is not None:
        raise DomainError(
            ErrorCode.RESOURCE_IN_USE, f"volume {volume['name']} is busy ({operation} in progress)"
        )
    return volume


async def attach_volume(command: cmd.AttachVolume, ctx: HandlerContext, storage: Storage):
    volume = await busy_volume(ctx, command.volume_id)
    if volume["vm_uuid"] == command.vm_id:
        return cmd.AttachVolumeSucceeded(
            volume_id=command.volume_id, vm_id=command.vm_id, device_id=volume["device_id"]
        )
    if volume["vm_uuid"] is not None:
        raise DomainError(ErrorCode.RESOURCE_IN_USE, f"volume {volume['name']} is attached to another VM")
    if volume["state"] != "Ready":
        raise DomainError(ErrorCode.PARAM_ERROR, f"volume {volume['name']} is {volume['state']}, not Ready")
    vm = await store.vm(ctx.conn, command.vm_id)
    require_owner(ctx, vm["account_id"], f"VM {vm['name']}")
    domain.refuse_with_snapshots(
        volume["name"], "attach", await store.snapshot_names(ctx.conn, command.vm_id)
    )
    await store.move_volume(ctx.conn, command.volume_id, ("Ready",), "Attaching")
    await call_agent(
        ctx,
        agent.AttachDisk(
            zone_id=vm["zone_id"],
            vm_ref=vm["vm_ref"],
            disk_path=volume["disk_path"],
            unit_number=command.device_id,
        ),
        ATTACH,
        command.volume_id,
        vm=str(command.vm_id),
    )
    await pending.park(ctx, command.volume_id, ATTACH)
    return DEFERRED


async def attach_disk_succeeded(event: agent.AttachDiskSucceeded, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    vm_uuid = uuid.UUID(call["detail"]["vm"])
    volume = await store.move_volume(
        ctx.conn,
        call["resource_id"],
        ("Attaching",),
        "Ready",
        vm_uuid=vm_uuid,
        device_id=event.disk.unit_number,
        device_key=event.disk.key,
    )
    ctx.action(
        "VOLUME.ATTACH",
        "Completed",
        "Volume",
        volume["uuid"],
        volume["name"],
        f"attached at device {event.disk.unit_number}",
    )
    reply = cmd.AttachVolumeSucceeded(
        volume_id=volume["uuid"], vm_id=vm_uuid, device_id=event.disk.unit_number
    )
    ctx.outgoing.extend(await pending.answer(ctx.conn, volume["uuid"], ATTACH, reply, source="storage"))


async def attach_disk_failed(event, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    volume = await store.move_volume(ctx.conn, call["resource_id"], ("Attaching",), "Ready")
    text = f"attaching volume {volume['name']} failed: {event.error_text}"
    ctx.action("VOLUME.ATTACH", "Completed", "Volume", volume["uuid"], volume["name"], text, failed=True)
    failure = volume_failed(cmd.AttachVolume, event.error_code, text, event.fault)
    ctx.outgoing.extend(await pending.answer(ctx.conn, volume["uuid"], ATTACH, failure, source="storage"))


async def detach_volume(command: cmd.DetachVolume, ctx: HandlerContext, storage: Storage):
    volume = await busy_volume(ctx, command.volume_id)
    if volume["vm_uuid"] is None:
        return cmd.DetachVolumeSucceeded(volume_id=command.volume_id)
    if volume["type"] == "ROOT":
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"volume {volume['name']} is a ROOT volume and cannot be detached"
        )
    vm = await store.vm(ctx.conn, volume["vm_uuid"])
    domain.refuse_with_snapshots(
        volume["name"], "detach", await store.snapshot_names(ctx.conn, volume["vm_uuid"])
    )
    await call_agent(
        ctx,
        agent.DetachDisk(zone_id=vm["zone_id"], vm_ref=vm["vm_ref"], disk_path=volume["disk_path"]),
        DETACH,
        command.volume_id,
    )
    await pending.park(ctx, command.volume_id, DETACH)
    return DEFERRED


async def detach_disk_succeeded(event: agent.DetachDiskSucceeded, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    volume = await store.move_volume(
        ctx.conn, call["resource_id"], ("Ready",), "Ready", vm_uuid=None, device_id=None
    )
    ctx.action("VOLUME.DETACH", "Completed", "Volume", volume["uuid"], volume["name"], "detached")
    reply = cmd.DetachVolumeSucceeded(volume_id=volume["uuid"])
    ctx.outgoing.extend(await pending.answer(ctx.conn, volume["uuid"], DETACH, reply, source="storage"))


async def detach_disk_failed(event, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    volume = await store.volume(ctx.conn, call["resource_id"])
    text = f"detaching volume {volume['name']} failed: {event.error_text}"
    ctx.action("VOLUME.DETACH", "Completed", "Volume", volume["uuid"], volume["name"], text, failed=True)
    failure = volume_failed(cmd.DetachVolume, event.error_code, text, event.fault)
    ctx.outgoing.extend(await pending.answer(ctx.conn, volume["uuid"], DETACH, failure, source="storage"))


async def resize_volume(command: cmd.ResizeVolume, ctx: HandlerContext, storage: Storage):
    volume = await busy_volume(ctx, command.volume_id)
    if command.size_bytes == volume["size_bytes"]:
        return cmd.ResizeVolumeSucceeded(volume_id=command.volume_id, size_bytes=command.size_bytes)
    if command.size_bytes < volume["size_bytes"]:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"volume {volume['name']} can only grow: {command.size_bytes} < {volume['size_bytes']} bytes",
        )
    if volume["state"] != "Ready":
        raise DomainError(ErrorCode.PARAM_ERROR, f"volume {volume['name']} is {volume['state']}, not Ready")
    vm = None
    if volume["vm_uuid"] is not None:
        vm = await store.vm(ctx.conn, volume["vm_uuid"])
        domain.refuse_with_snapshots(
            volume["name"], "resize", await store.snapshot_names(ctx.conn, volume["vm_uuid"])
        )
    pool = await store.pool(ctx.conn, id_=volume["pool_id"])
    grow = command.size_bytes - volume["size_bytes"]
    if not await store.reserve(ctx.conn, pool["id"], grow, storage.overprovisioning):
        raise domain.insufficient_capacity(figures(pool, storage), grow, f"resizing volume {volume['name']}")
    await store.move_volume(ctx.conn, command.volume_id, ("Ready",), "Resizing")
    await call_agent(
        ctx,
        agent.ExtendDisk(
            zone_id=pool["zone_id"],
            disk_path=volume["disk_path"],
            size_bytes=command.size_bytes,
            vm_ref=vm["vm_ref"] if vm else None,
        ),
        RESIZE,
        command.volume_id,
        grow=grow,
    )
    await pending.park(ctx, command.volume_id, RESIZE)
    return DEFERRED


async def extend_disk_succeeded(event: agent.ExtendDiskSucceeded, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    grow = call["detail"]["grow"]
    volume = await store.volume(ctx.conn, call["resource_id"])
    volume = await store.move_volume(
        ctx.conn,
        volume["uuid"],
        ("Resizing",),
        "Ready",
        size_bytes=event.size_bytes,
        counted_bytes=volume["counted_bytes"] + grow,
    )
    ctx.action(
        "VOLUME.RESIZE",
        "Completed",
        "Volume",
        volume["uuid"],
        volume["name"],
        f"resized to {event.size_bytes} bytes",
    )
    reply = cmd.ResizeVolumeSucceeded(volume_id=volume["uuid"], size_bytes=event.size_bytes)
    ctx.outgoing.extend(await pending.answer(ctx.conn, volume["uuid"], RESIZE, reply, source="storage"))


async def extend_disk_failed(event, ctx: HandlerContext) -> None:
    call = await awaited.take(ctx.conn, ctx.envelope.causation_id)
    if call is None:
        return
    volume = await store.move_volume(ctx.conn, call["resource_id"], ("Resizing",), "Ready")
    await store.count(ctx.conn, volume["pool_id"], -call["detail"]["grow"])
    text = f"resizing volume {volume['name']} failed: {event.error_text}"
    ctx.action("VOLUME.RESIZE", "Completed", "Volume", volume["uuid"], volume["name"], text, failed=True)
    failure = volume_failed(cmd.ResizeVolume, event.error_code, text, event.fault)
    ctx.outgoing.extend(await pending.answer(ctx.conn, volume["uuid"], RESIZE, failure, source="storage"))


async def delete_volume(command: cmd.DeleteVolume, ctx: HandlerContext, storage: Storage):
    volume = await busy_volume(ctx, command.volume_id)
    if volume["state"] in ("Destroy", "Expunging", "Expunged"):
        return cmd.DeleteVolumeSucceeded(volume_id=command.volume_id)
    if volume["vm_uuid"] is not None:
        raise DomainError(
            ErrorCode.RESOURCE_IN_USE,
            f"volume {volume['name']} is attached to a VM; detach it before deleting it",
        )
    await store.move_volume(ctx.conn, command.volume_id, (volume["state"],), "Destroy")
    state_changed(ctx, "Volume", command.volume_id, volume["state"], "Destroy")
    ctx.action(
        "VOLUME.DELETE",
        "Completed",
        "Volume",
        command.volume_id,
        volume["name"],
        "volume marked for deletion",
    )
    return cmd.DeleteVolumeSucceeded(volume_id=command.volume_id)
