"""The objects a command's answer carries (sync answers and async jobresults), read when asked."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts import planner, storage
from contracts.envelope import Actor
from services.api import render
from services.api.commands.lookup import AUTHORITY, names
from services.api.context import ApiContext

# Commands whose jobresult is {"success": true} (delete-style).
SUCCESS_ONLY = {"deleteVMSnapshot", "deleteVolume"}


async def vm_objects(
    ctx: ApiContext, actor: Actor, vms: list[planner.VirtualMachine]
) -> list[dict[str, Any]]:
    known = await names(
        ctx, accounts={vm.account_id for vm in vms}, offerings={vm.service_offering_id for vm in vms}
    )
    return [render.virtual_machine(vm, known) for vm in vms]


async def vm_object(ctx: ApiContext, vm_id: uuid.UUID, actor: Actor = AUTHORITY) -> dict[str, Any]:
    vms = (await ctx.ask(planner.ListVirtualMachines(id=vm_id), actor)).vms
    return (await vm_objects(ctx, actor, vms))[0] if vms else {"id": str(vm_id)}


def current_snapshots(snapshots: list[planner.VmSnapshot]) -> set[uuid.UUID]:
    """Each VM's current snapshot: as the planner reports it when it does (it follows vCenter, and
    a revert); else the VM's latest Ready one, the parent the planner gives the next snapshot."""
    if "current" in planner.VmSnapshot.model_fields:
        return {s.id for s in snapshots if s.current}
    latest: dict[uuid.UUID, planner.VmSnapshot] = {}
    for s in snapshots:  # oldest first
        if s.state == "Ready":
            latest[s.vm_id] = s
    return {s.id for s in latest.values()}


async def snapshot_objects(
    ctx: ApiContext, actor: Actor, snapshots: list[planner.VmSnapshot]
) -> list[dict[str, Any]]:
    known = await names(ctx, accounts={s.account_id for s in snapshots})
    vm_ids = {s.vm_id for s in snapshots}
    vms = {
        vm.id: vm
        for vm in (await ctx.ask(planner.ListVirtualMachines(), actor)).vms
        if vm.id in vm_ids
    } if snapshots else {}  # fmt: skip
    every = (await ctx.ask(planner.ListVmSnapshots(), AUTHORITY)).snapshots
    all_names = {s.id: s.name for s in every}
    currents = current_snapshots(every)
    volumes: dict[uuid.UUID, list[storage.Volume]] = {}
    for vm_id in vm_ids:
        volumes[vm_id] = (await ctx.ask(storage.ListVolumes(vm_id=vm_id), actor)).volumes
    return [
        render.vm_snapshot(
            s, known, vms=vms, parents=all_names, volumes=volumes.get(s.vm_id, []), current=s.id in currents
        )
        for s in snapshots
    ]


async def snapshot_object(ctx: ApiContext, snapshot_id: uuid.UUID) -> dict[str, Any]:
    found = (await ctx.ask(planner.ListVmSnapshots(id=snapshot_id), AUTHORITY)).snapshots
    return (await snapshot_objects(ctx, AUTHORITY, found))[0] if found else {"id": str(snapshot_id)}


async def volume_objects(
    ctx: ApiContext, actor: Actor, volumes: list[storage.Volume]
) -> list[dict[str, Any]]:
    known = await names(ctx, accounts={v.account_id for v in volumes}, pools=True)
    vm_ids = {v.vm_id for v in volumes if v.vm_id}
    vms = {vm.id: vm for vm in (await ctx.ask(planner.ListVirtualMachines(), actor)).vms if vm.id in vm_ids}
    return [render.volume(v, known, vms) for v in volumes]


async def volume_object(ctx: ApiContext, volume_id: uuid.UUID) -> dict[str, Any]:
    found = (await ctx.ask(storage.ListVolumes(id=volume_id), AUTHORITY)).volumes
    return (await volume_objects(ctx, AUTHORITY, found))[0] if found else {"id": str(volume_id)}


async def seed_objects(ctx: ApiContext, actor: Actor, seeds: list[storage.Seed]) -> list[dict[str, Any]]:
    known = await names(ctx, pools=True)
    snapshots = {s.id: s.name for s in (await ctx.ask(planner.ListVmSnapshots(), AUTHORITY)).snapshots}
    vms = (await ctx.ask(planner.ListVirtualMachines(), AUTHORITY)).vms
    out = []
    for seed in seeds:
        pool = known.pools.get(seed.pool_id)
        hanging = [
            vm.id
            for vm in vms
            if vm.source_vm_snapshot_id == seed.vm_snapshot_id
            and pool is not None
            and vm.pool == pool.name
            and vm.state not in ("Destroyed", "Expunged", "Error")
        ]
        out.append(
            render.seeded_template(
                seed, known, snapshot_name=snapshots.get(seed.vm_snapshot_id), vm_ids=hanging
            )
        )
    return out


async def seed_object(ctx: ApiContext, seed_id: uuid.UUID) -> dict[str, Any]:
    found = [s for s in (await ctx.ask(storage.ListSeeds(), AUTHORITY)).seeds if s.id == seed_id]
    return (await seed_objects(ctx, AUTHORITY, found))[0] if found else {"id": str(seed_id)}


async def offering_object(ctx: ApiContext, offering_id: uuid.UUID) -> dict[str, Any]:
    for offering in (await ctx.ask(planner.ListServiceOfferings(), AUTHORITY)).offerings:
        if offering.id == offering_id:
            return render.service_offering(offering)
    return {"id": str(offering_id)}


async def disk_offering_object(ctx: ApiContext, offering_id: uuid.UUID) -> dict[str, Any]:
    for offering in (await ctx.ask(storage.ListDiskOfferings(), AUTHORITY)).offerings:
        if offering.id == offering_id:
            return render.disk_offering(offering)
    return {"id": str(offering_id)}


async def job_result(ctx: ApiContext, job: asyncpg.Record, payload: dict[str, Any]) -> dict[str, Any]:
    """The jobresult of a finished command: its object as the owning service has it now."""
    kind, instance = job["instance_type"], job["instance_id"]
    if job["cmd"] in SUCCESS_ONLY or kind is None:
        return {"success": True}
    if kind == "VirtualMachine":  # an adopted VM's id is known from the reply only
        return {"virtualmachine": await vm_object(ctx, instance or uuid.UUID(payload["vm_id"]))}
    if kind == "VmSnapshot":
        return {"vmsnapshot": await snapshot_object(ctx, instance)}
    if kind == "Volume":
        return {"volume": await volume_object(ctx, instance)}
    if kind == "SeededTemplate":
        return {"seededtemplate": await seed_object(ctx, uuid.UUID(payload["seed_id"]))}
    if kind == "ServiceOffering":
        return {"serviceoffering": await offering_object(ctx, instance)}
    if kind == "DiskOffering":
        return {"diskoffering": await disk_offering_object(ctx, instance)}
    return {"success": True}
