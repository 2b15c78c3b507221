"""Volumes: list, blank, from one disk of a VM snapshot, attach, detach, resize, delete; disk offerings."""

from __future__ import annotations

import uuid

from contracts import storage
from contracts.types import MAX_DISK_BYTES
from services.api import render
from services.api.commands import lookup
from services.api.commands.results import volume_objects
from services.api.errors import denied, param_error
from services.api.params import Param
from services.api.table import Api, Call, page

VOLUME = "Volume"
ID = Param("id", "uuid", "The volume.", required=True)


async def list_volumes(call: Call) -> dict:
    owner = await call.owner_filter()
    query = storage.ListVolumes(
        id=call.args.get("id"), vm_id=call.args.get("virtualmachineid"), account_id=owner
    )
    volumes = [v for v in (await call.ctx.ask(query, call.caller.actor)).volumes if v.state != "Expunged"]
    if "type" in call.args:
        volumes = [v for v in volumes if v.type == call.args["type"].upper()]
    if "name" in call.args:
        volumes = [v for v in volumes if v.name == call.args["name"]]
    return page(call, "volume", await volume_objects(call.ctx, call.caller.actor, volumes))


async def _submit(call: Call, command, volume_id: uuid.UUID, actor=None) -> uuid.UUID:
    return await call.submit(command, VOLUME, volume_id, actor=actor or call.caller.actor)


async def create_volume_from_vm_snapshot(call: Call) -> dict:
    args = call.args
    snapshot = await lookup.vm_snapshot(call, args["vmsnapshotid"])
    source = await lookup.volume(call, args["volumeid"], "volumeid")
    if source.vm_id != snapshot.vm_id:
        raise param_error(f"volume {source.name} is not a volume of the VM of VM snapshot {snapshot.name}")
    if "diskofferingid" in args:
        await lookup.disk_offering(call, args["diskofferingid"])
    zone = await lookup.zone_named(call, args["zoneid"]) if "zoneid" in args else None
    new_id = uuid.uuid4()
    command = storage.CreateVolumeFromVmSnapshot(
        new_volume_id=new_id,
        vm_snapshot_id=snapshot.id,
        volume_id=source.id,
        name=args["name"],
        disk_offering_id=args.get("diskofferingid"),
        zone_id=zone,
    )
    job = await _submit(call, command, new_id, await call.actor())
    return {"id": str(new_id), "jobid": str(job)}


async def create_volume(call: Call) -> dict:
    """A blank data volume (CloudStack's createVolume without snapshotid): the size of the disk
    offering, or ``size`` GiB for a custom one, on a pool of the zone."""
    args = call.args
    if "diskofferingid" not in args:
        raise param_error("Either disk offering or snapshot id must be passed whilst creating volume")
    offering = await lookup.disk_offering(call, args["diskofferingid"])
    if offering.size_bytes is None:
        if "size" not in args:
            raise param_error("This disk offering requires a custom size specified")
        if not 1 <= args["size"] <= MAX_DISK_BYTES // render.GIB:
            raise param_error(f"Disk size must be between 1 and {MAX_DISK_BYTES // render.GIB} GiB")
        size = args["size"] * render.GIB
    else:
        if "size" in args and args["size"] * render.GIB != offering.size_bytes:
            raise param_error(f"disk offering {offering.name} has a fixed size; size cannot be given")
        size = offering.size_bytes
    zone = await lookup.zone_named(call, args["zoneid"])
    storage_id = None
    if "storageid" in args:
        if not call.caller.is_admin:
            raise denied("only root admins choose the storage pool of a volume (storageid)")
        pool = await lookup.storage_pool(call, args["storageid"])
        if pool.zone_id != zone:
            raise param_error(f"storage pool {pool.name} is not in zone {zone}")
        storage_id = pool.id
    new_id = uuid.uuid4()
    command = storage.CreateVolume(
        new_volume_id=new_id,
        name=args.get("name") or f"volume-{new_id.hex[:8]}",
        zone_id=zone,
        size_bytes=size,
        disk_offering_id=offering.id,
        storage_id=storage_id,
    )
    job = await _submit(call, command, new_id, await call.actor())
    return {"id": str(new_id), "jobid": str(job)}


async def attach_volume(call: Call) -> dict:
    volume = await lookup.volume(call, call.args["id"])
    vm = await lookup.vm(call, call.args["virtualmachineid"], "virtualmachineid")
    command = storage.AttachVolume(volume_id=volume.id, vm_id=vm.id, device_id=call.args.get("deviceid"))
    return {"jobid": str(await _submit(call, command, volume.id))}


async def detach_volume(call: Call) -> dict:
    volume = await lookup.volume(call, call.args["id"])
    return {"jobid": str(await _submit(call, storage.DetachVolume(volume_id=volume.id), volume.id))}


async def resize_volume(call: Call) -> dict:
    lookup.exclusive(call, "size", "diskofferingid")
    volume = await lookup.volume(call, call.args["id"])
    if "size" in call.args:
        size = call.args["size"] * render.GIB
    elif "diskofferingid" in call.args:
        offering = await lookup.disk_offering(call, call.args["diskofferingid"])
        if offering.size_bytes is None:
            raise param_error("a custom disk offering needs size")
        size = offering.size_bytes
    else:
        raise param_error("Unable to execute API command resizevolume due to missing parameter size")
    if size <= 0:
        raise param_error("size must be positive")
    if size < volume.size_bytes and not call.args.get("shrinkok"):
        raise param_error(f"volume {volume.name} is {volume.size_bytes} bytes; shrinking needs shrinkok=true")
    command = storage.ResizeVolume(volume_id=volume.id, size_bytes=size)
    return {"jobid": str(await _submit(call, command, volume.id))}


async def delete_volume(call: Call) -> dict:
    volume = await lookup.volume(call, call.args["id"])
    await call.run(storage.DeleteVolume(volume_id=volume.id), VOLUME, volume.id)
    return {"success": True}


async def list_disk_offerings(call: Call) -> dict:
    offerings = (await call.ctx.ask(storage.ListDiskOfferings(), call.caller.actor)).offerings
    if "id" in call.args:
        offerings = [o for o in offerings if o.id == call.args["id"]]
    return page(call, "diskoffering", [render.disk_offering(o) for o in offerings])


async def create_disk_offering(call: Call) -> dict:
    args = call.args
    if args.get("customized"):
        if "disksize" in args:
            raise param_error("a customized disk offering takes no disksize; the volume gives its size")
        size = None
    else:
        if "disksize" not in args:
            raise param_error("Disksize is required for a non-customized disk offering")
        if not 1 <= args["disksize"] <= MAX_DISK_BYTES // render.GIB:
            raise param_error(f"disksize must be between 1 and {MAX_DISK_BYTES // render.GIB} GiB")
        size = args["disksize"] * render.GIB
    offering_id = uuid.uuid4()
    command = storage.CreateDiskOffering(offering_id=offering_id, name=args["name"], size_bytes=size)
    return await call.run(command, "DiskOffering", offering_id)


APIS = [
    Api(
        "listVolumes",
        list_volumes,
        "Lists volumes.",
        (
            Param("id", "uuid", "The volume."),
            Param("virtualmachineid", "uuid", "Of this VM."),
            Param("type", "string", "ROOT or DATADISK."),
            Param("name", "string", "Exact name."),
        ),
        listing=True,
        response="volume",
    ),
    Api(
        "createVolumeFromVmSnapshot",
        create_volume_from_vm_snapshot,
        "Creates a volume with the contents of one disk of a VM snapshot, on the same pool.",
        (
            Param("vmsnapshotid", "uuid", "The VM snapshot.", required=True),
            Param(
                "volumeid", "uuid", "A volume of the snapshot's VM (see listVMSnapshot disks).", required=True
            ),
            Param("name", "string", "Name of the new volume.", required=True),
            Param("diskofferingid", "uuid", "Disk offering of the new volume."),
            Param("zoneid", "uuid", "The zone (must be the snapshot's)."),
        ),
        isasync=True,
        acts_for=True,
        response="volume",
    ),
    Api(
        "createVolume",
        create_volume,
        "Creates a blank data volume (detached) of a disk offering's size, on a pool of the zone.",
        (
            Param("name", "string", "Name (generated when not given)."),
            Param(
                "diskofferingid",
                "uuid",
                "Disk offering (required here; from a snapshot see createVolumeFromVmSnapshot).",
            ),
            Param("zoneid", "uuid", "Zone.", required=True),
            Param("size", "long", "Size in GiB, for a custom disk offering."),
            Param("storageid", "uuid", "Admins: the storage pool (default: the zone's with most room)."),
        ),
        isasync=True,
        acts_for=True,
        response="volume",
    ),
    Api(
        "attachVolume",
        attach_volume,
        "Attaches a volume to a VM (refused while the VM has VM snapshots).",
        (
            ID,
            Param("virtualmachineid", "uuid", "The VM.", required=True),
            Param("deviceid", "long", "Device position."),
        ),
        isasync=True,
        response="volume",
    ),
    Api(
        "detachVolume",
        detach_volume,
        "Detaches a data volume (refused while the VM has VM snapshots).",
        (ID,),
        isasync=True,
        response="volume",
    ),
    Api(
        "resizeVolume",
        resize_volume,
        "Grows a volume (refused while its VM has VM snapshots).",
        (
            ID,
            Param("size", "long", "New size in GiB."),
            Param("diskofferingid", "uuid", "Take the size of this offering."),
            Param("shrinkok", "boolean", "Allow shrinking."),
        ),
        isasync=True,
        response="volume",
    ),
    Api("deleteVolume", delete_volume, "Deletes a detached volume.", (ID,)),
    Api(
        "createDiskOffering",
        create_disk_offering,
        "Creates a disk offering: a fixed size, or customized (the volume gives its size).",
        (
            Param("name", "string", "Name.", required=True),
            Param("displaytext", "string", "Display text."),
            Param("disksize", "long", "Size in GiB (not for a customized offering)."),
            Param("customized", "boolean", "The volume gives its size."),
        ),
        admin=True,
        response="diskoffering",
    ),
    Api(
        "listDiskOfferings",
        list_disk_offerings,
        "Lists disk offerings.",
        (Param("id", "uuid", "The offering."),),
        listing=True,
        response="diskoffering",
    ),
]
