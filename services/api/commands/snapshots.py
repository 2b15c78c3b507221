"""VM snapshots: take, list, delete, revert; seeded templates from them (admin)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from contracts import planner, storage
from services.api.commands import lookup
from services.api.commands.results import seed_objects, snapshot_objects
from services.api.errors import param_error
from services.api.params import Param
from services.api.table import Api, Call, page

SNAPSHOT_ID = Param("vmsnapshotid", "uuid", "The VM snapshot.", required=True)


async def list_vm_snapshot(call: Call) -> dict:
    owner = await call.owner_filter()
    query = planner.ListVmSnapshots(
        vm_id=call.args.get("virtualmachineid"), id=call.args.get("vmsnapshotid"), account_id=owner
    )
    snapshots = (await call.ctx.ask(query, call.caller.actor)).snapshots
    if "name" in call.args:
        snapshots = [s for s in snapshots if s.name == call.args["name"]]
    if "state" in call.args:
        snapshots = [s for s in snapshots if s.state == call.args["state"]]
    return page(call, "vmSnapshot", await snapshot_objects(call.ctx, call.caller.actor, snapshots))


async def create_vm_snapshot(call: Call) -> dict:
    vm = await lookup.vm(call, call.args["virtualmachineid"], "virtualmachineid")
    snapshot_id = uuid.uuid4()
    name = call.args.get("name") or f"{vm.name}_VS_{datetime.now(UTC):%Y%m%d%H%M%S}"
    command = planner.CreateVmSnapshot(
        vm_snapshot_id=snapshot_id,
        vm_id=vm.id,
        name=name,
        description=call.args.get("description", ""),
        memory=call.args.get("snapshotmemory", False),
    )
    job = await call.submit(command, "VmSnapshot", snapshot_id)
    return {"id": str(snapshot_id), "jobid": str(job)}


async def delete_vm_snapshot(call: Call) -> dict:
    snapshot = await lookup.vm_snapshot(call, call.args["vmsnapshotid"])
    job = await call.submit(planner.DeleteVmSnapshot(vm_snapshot_id=snapshot.id), "VmSnapshot", snapshot.id)
    return {"jobid": str(job)}


async def revert_to_vm_snapshot(call: Call) -> dict:
    revert = lookup.planner_command("RevertToVmSnapshot")
    snapshot = await lookup.vm_snapshot(call, call.args["vmsnapshotid"])
    if snapshot.state != "Ready":
        raise param_error(f"VM snapshot {snapshot.name} is {snapshot.state}, not Ready")
    job = await call.submit(revert(vm_snapshot_id=snapshot.id), "VirtualMachine", snapshot.vm_id)
    return {"jobid": str(job)}


async def seed_template_from_vm_snapshot(call: Call) -> dict:
    snapshot = await lookup.vm_snapshot(call, call.args["vmsnapshotid"])
    zone = await lookup.zone_named(call, call.args["zoneid"])
    pool = await lookup.storage_pool(call, call.args["storageid"])
    if snapshot.zone_id and snapshot.zone_id != zone:
        raise param_error(f"VM snapshot {snapshot.name} is in zone {snapshot.zone_id}, not {zone}")
    if pool.zone_id != zone:
        raise param_error(f"storage pool {pool.name} is in zone {pool.zone_id}, not {zone}")
    job = await call.submit(
        storage.SeedTemplateFromVmSnapshot(zone_id=zone, vm_snapshot_id=snapshot.id, storage_id=pool.id),
        "SeededTemplate",
        None,
    )
    return {"jobid": str(job)}


async def list_seeded_templates(call: Call) -> dict:
    seeds = (
        await call.ctx.ask(
            storage.ListSeeds(
                vm_snapshot_id=call.args.get("vmsnapshotid"), pool_id=call.args.get("storageid")
            ),
            call.caller.actor,
        )
    ).seeds
    items = await seed_objects(call.ctx, call.caller.actor, seeds)
    return page(call, "seededtemplate", items, name_of="vmsnapshotname")


APIS = [
    Api(
        "listVMSnapshot",
        list_vm_snapshot,
        "Lists VM snapshots.",
        (
            Param("virtualmachineid", "uuid", "Of this VM."),
            Param("vmsnapshotid", "uuid", "This VM snapshot."),
            Param("name", "string", "Exact name."),
            Param("state", "string", "Ready, Creating, ..."),
        ),
        listing=True,
        response="vmSnapshot",
    ),
    Api(
        "createVMSnapshot",
        create_vm_snapshot,
        "Takes a VM snapshot; its parent is the VM's current snapshot.",
        (
            Param("virtualmachineid", "uuid", "The VM.", required=True),
            Param("name", "string", "Name of the snapshot."),
            Param("description", "string", "Description.", length=1024),
            Param("snapshotmemory", "boolean", "Include the memory state."),
            Param("quiescevm", "boolean", "Quiesce the guest file system (accepted, not used)."),
        ),
        isasync=True,
        response="vmsnapshot",
    ),
    Api("deleteVMSnapshot", delete_vm_snapshot, "Deletes a VM snapshot.", (SNAPSHOT_ID,), isasync=True),
    Api(
        "revertToVMSnapshot",
        revert_to_vm_snapshot,
        "Returns the VM's disks to a VM snapshot; it becomes the current one.",
        (SNAPSHOT_ID,),
        isasync=True,
        response="virtualmachine",
    ),
    Api(
        "seedTemplateFromVmSnapshot",
        seed_template_from_vm_snapshot,
        "Seeds a template from a VM snapshot on a storage pool, so deployments from it copy no disk.",
        (
            Param("zoneid", "uuid", "The zone.", required=True),
            SNAPSHOT_ID,
            Param("storageid", "uuid", "The storage pool.", required=True),
        ),
        isasync=True,
        admin=True,
        response="seededtemplate",
    ),
    Api(
        "listSeededTemplates",
        list_seeded_templates,
        "Lists templates seeded from VM snapshots (snapdeploy).",
        (
            Param("storageid", "uuid", "On this pool."),
            Param("vmsnapshotid", "uuid", "From this VM snapshot."),
        ),
        listing=True,
        admin=True,
        response="seededtemplate",
    ),
]
