"""Resolving the ids a request names, before anything is sent: 431 when there is no such thing,
531 when it belongs to another account (CloudStack's ParamProcessWorker and access checks).

These look-ups use the api's own authority (a service actor) so that "not yours" can be told
from "does not exist"; the request's own queries and commands always carry the caller as actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from contracts import planner, storage
from services.api.context import AUTHORITY, ApiContext
from services.api.errors import ApiError, denied, param_error
from services.api.render import Names, zone_uuid
from services.api.table import Call


def unable(call: Call, text: str) -> ApiError:
    return param_error(f"Unable to execute API command {call.command.lower()}: {text}")


async def zones(call: Call) -> list[str]:
    """Zones are where hosts are; every account may know them (hosts themselves are the operator's)."""
    hosts = (await call.ctx.ask(planner.ListHosts(), AUTHORITY)).hosts
    return sorted({h.zone_id for h in hosts})


async def zone_named(call: Call, value: object, param: str = "zoneid") -> str:
    """A zone by its id (uuid) or its name."""
    for zone in await zones(call):
        if str(value) in (zone, str(zone_uuid(zone))):
            return zone
    raise unable(call, f"zone {value} ({param}) does not exist")


async def names(
    ctx: ApiContext,
    *,
    accounts: Iterable[uuid.UUID | None] | None = None,
    offerings: Iterable[uuid.UUID | None] = (),
    pools: bool = False,
) -> Names:
    """Names of what objects refer to (an owner's, an offering's, a pool's) are shown to whoever
    sees the object. ``accounts`` and ``offerings``: the ids the objects name (known names are
    kept, so nothing is read for objects whose names are known; ``accounts=None``: every account,
    read now)."""
    out = Names(accounts=await ctx.account_names(accounts))
    offerings = set(offerings)
    if offerings:
        out.offerings = await ctx.offerings(offerings)
    if pools:
        found = (await ctx.ask(storage.ListStoragePools(), AUTHORITY)).pools
        out.pools = {p.id: p for p in found}
    return out


def _check_owner(call: Call, what: str, name: str, owner: uuid.UUID | None) -> None:
    if not call.may_use(owner):
        raise denied(f"Account {call.caller.account} does not have permission to operate on {what} {name}")


async def vm(call: Call, vm_id: uuid.UUID, param: str = "id") -> planner.VirtualMachine:
    found = (await call.ctx.ask(planner.ListVirtualMachines(id=vm_id), AUTHORITY)).vms
    if not found or found[0].state in ("Expunged",):
        raise unable(call, f"no virtual machine {vm_id} ({param})")
    _check_owner(call, "virtual machine", found[0].name, found[0].account_id)
    return found[0]


async def vm_snapshot(call: Call, snapshot_id: uuid.UUID, param: str = "vmsnapshotid") -> planner.VmSnapshot:
    found = (await call.ctx.ask(planner.ListVmSnapshots(id=snapshot_id), AUTHORITY)).snapshots
    if not found:
        raise unable(call, f"no VM snapshot {snapshot_id} ({param})")
    _check_owner(call, "VM snapshot", found[0].name, found[0].account_id)
    return found[0]


async def volume(call: Call, volume_id: uuid.UUID, param: str = "id") -> storage.Volume:
    found = (await call.ctx.ask(storage.ListVolumes(id=volume_id), AUTHORITY)).volumes
    if not found or found[0].state == "Expunged":
        raise unable(call, f"no volume {volume_id} ({param})")
    _check_owner(call, "volume", found[0].name, found[0].account_id)
    return found[0]


async def service_offering(call: Call, offering_id: uuid.UUID) -> planner.ServiceOffering:
    for offering in (await call.ctx.ask(planner.ListServiceOfferings(), AUTHORITY)).offerings:
        if offering.id == offering_id:
            return offering
    raise unable(call, f"no service offering {offering_id} (serviceofferingid)")


async def disk_offering(call: Call, offering_id: uuid.UUID) -> storage.DiskOffering:
    for offering in (await call.ctx.ask(storage.ListDiskOfferings(), AUTHORITY)).offerings:
        if offering.id == offering_id:
            return offering
    raise unable(call, f"no disk offering {offering_id} (diskofferingid)")


async def storage_pool(call: Call, pool_id: uuid.UUID) -> storage.StoragePool:
    found = (await call.ctx.ask(storage.ListStoragePools(id=pool_id), AUTHORITY)).pools
    if not found:
        raise unable(call, f"no storage pool {pool_id} (storageid)")
    return found[0]


def exclusive(call: Call, *names_: str) -> None:
    given = [n for n in names_ if n in call.args]
    if len(given) > 1:
        raise unable(call, f"{' and '.join(given)} are mutually exclusive")


def planner_command(name: str) -> type:
    """A planner command that a newer planner contract brings (revert, reboot); 432 until it is there."""
    command = getattr(planner, name, None)
    if command is None:
        raise ApiError(432, f"this installation's planner does not offer {name} yet")
    return command
