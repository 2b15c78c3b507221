"""Deploying a VM from a VM snapshot or a template: the saga of DESIGN section 5, as its steps.

Read top to bottom, ``STEPS`` is the deployment; each step's undo sits beside it. Any failure
names its step and undoes, last first, what the completed steps made (the partial VM, the
root volume, the host's reservation); the instance ends in Error with the reason. The request
checks are in ``deploy_request``.
"""

from __future__ import annotations

import asyncpg

from contracts import agent, storage
from contracts import planner as cmd
from contracts.vsphere import root_disk
from services.planner import domain, hosts, saga, store
from services.planner.common import Planner, vm_state
from services.planner.state import (
    Deployment,
    HostChoice,
    Seed,
    TemplateSource,
    legacy_deployment,
)
from services.planner.steps import AGAIN, Failure, Flow, Step
from shared.messaging import HandlerContext as Ctx

DEPLOY = "deploy"


async def read_configs(d: Deployment, ctx: Ctx, planner: Planner):
    if isinstance(d.source, TemplateSource):
        return None  # a template's shape is known from the inventory
    if d.config_known:
        return None  # seeded already: the stored configuration was taken at the request
    return agent.GetVmSnapshotConfigs(
        zone_id=d.zone, vm_ref=d.source.vm_ref, snapshot_ref=d.source.snapshot_ref
    )


async def check_configs(
    d: Deployment, reply: agent.GetVmSnapshotConfigsSucceeded, ctx: Ctx, planner: Planner
):
    domain.check_offering(d.offering.name, d.offering.cpu_number, reply.config)
    d.cores_per_socket = reply.config.cores_per_socket
    d.root_size = root_disk(reply.config.disks).size_bytes


async def reserve_host(d: Deployment, ctx: Ctx, planner: Planner):
    """Host choice lives in ``hosts.reserve`` (the one place); here only what it chose is kept."""
    host = await hosts.reserve(
        ctx.conn,
        planner,
        zone=d.zone,
        pool=d.pool,
        offering=d.offering.model_dump(),
        host_id=d.requested_host,
    )
    d.host = HostChoice(id=host["uuid"], ref=host["ref"], name=host["name"])
    await store.placed(ctx.conn, d.vm_id, d.host.id)
    ctx.action(
        "VM.CREATE",
        "Started",
        "VirtualMachine",
        d.vm_id,
        d.name,
        f"placed on host {d.host.name}",
        account_id=d.account,
    )


async def release_host(d: Deployment, ctx: Ctx, planner: Planner):
    await hosts.release_for(ctx.conn, d.vm_id)


async def seed(d: Deployment, ctx: Ctx, planner: Planner):
    if isinstance(d.source, TemplateSource):  # a template is its own seed
        d.seed = Seed(
            id=None, template_ref=d.source.template_ref, base_snapshot_ref=d.source.base_snapshot_ref
        )
        return None
    # Storage has what the root volume needs: it is allocated on the seed with the same request.
    if d.root_volume_id is None:  # a deployment begun before typed state: the id is the instance's
        d.root_volume_id = await store.root_volume_id(ctx.conn, d.vm_id)
    d.root_on_seed = True
    return storage.SeedTemplateFromVmSnapshot(
        zone_id=d.zone,
        vm_snapshot_id=d.source.vm_snapshot_id,
        storage_id=storage.pool_id(d.zone, d.pool),
        root_volume=storage.RootVolumeOnSeed(
            volume_id=d.root_volume_id,
            vm_id=d.vm_id,
            name=root_volume_name(d),
            size_bytes=d.root_size,
            template_id=d.vm_template_id,
            disk_offering_id=d.disk_offering_id,
        ),
    )


def root_volume_name(d: Deployment) -> str:
    return f"ROOT-{d.name}"


async def seeded(
    d: Deployment, reply: storage.SeedTemplateFromVmSnapshotSucceeded, ctx: Ctx, planner: Planner
):
    planner.seeded.add(d.source.vm_snapshot_id)
    d.seed = Seed(
        id=reply.seed_id, template_ref=reply.template_ref, base_snapshot_ref=reply.base_snapshot_ref
    )


async def allocate_root_volume(d: Deployment, ctx: Ctx, planner: Planner):
    if d.root_on_seed:
        return None  # allocated with the seed
    if d.root_volume_id is None:  # a deployment begun before typed state: the id is the instance's
        d.root_volume_id = await store.root_volume_id(ctx.conn, d.vm_id)
    return storage.AllocateRootVolume(
        volume_id=d.root_volume_id,
        vm_id=d.vm_id,
        name=root_volume_name(d),
        zone_id=d.zone,
        storage_id=storage.pool_id(d.zone, d.pool),
        size_bytes=d.root_size,
        seed_id=d.seed.id,
        template_id=d.vm_template_id,
        disk_offering_id=d.disk_offering_id,
    )


async def destroy_root_volume(d: Deployment, ctx: Ctx, planner: Planner):
    return None if d.root_on_seed else storage.DestroyVmVolumes(vm_id=d.vm_id)


async def destroy_root_volume_on_seed(d: Deployment, ctx: Ctx, planner: Planner):
    """The seed step's undo, run even when that step failed: storage may have allocated the root
    volume while the seeding itself failed or its reply never came (a no-op when nothing was)."""
    return storage.DestroyVmVolumes(vm_id=d.vm_id) if d.root_on_seed else None


async def clone(d: Deployment, ctx: Ctx, planner: Planner):
    """The clone is made in the offering's shape, with its NICs and powered on: no reconfigure,
    NIC or power-on command after it (the NIC step only records the NICs)."""
    d.clone_made_whole = True
    return agent.CloneFromSnapshot(
        zone_id=d.zone,
        vm_id=str(d.vm_id),
        vm_name=d.name,
        template_ref=d.seed.template_ref,
        base_snapshot_ref=d.seed.base_snapshot_ref,
        host_ref=d.host.ref,
        datastore=d.pool,
        shape=shape(d),
        nics=[agent.NicRequest(nic_id=str(n.nic_id), network=n.network) for n in d.networks],
        power_on=True,
    )


async def cloned(d: Deployment, reply: agent.CloneFromSnapshotSucceeded, ctx: Ctx, planner: Planner):
    d.vm_ref, d.root_disk = reply.vm_ref, reply.root_disk
    d.cloned_macs = {nic.nic_id: nic.mac for nic in reply.nics}
    d.powered_on = reply.powered_on
    await store.cloned(ctx.conn, d.vm_id, d.vm_ref)


async def destroy_clone(d: Deployment, ctx: Ctx, planner: Planner):
    return agent.DestroyVm(zone_id=d.zone, vm_ref=d.vm_ref) if d.vm_ref else None


def shape(d: Deployment) -> agent.VmShape:
    cpus = d.offering.cpu_number
    return agent.VmShape(
        num_cpus=cpus,
        cores_per_socket=d.cores_per_socket if cpus % d.cores_per_socket == 0 else 1,
        memory_mb=d.offering.memory_mb,
        cpu_mhz=d.offering.cpu_speed_mhz,
    )


async def reconfigure(d: Deployment, ctx: Ctx, planner: Planner):
    """Only for a clone sent without the shape (a deployment begun before clones carried it)."""
    if d.clone_made_whole:
        return None
    return agent.ReconfigureVm(zone_id=d.zone, vm_ref=d.vm_ref, **shape(d).model_dump())


async def record_root_volume(d: Deployment, ctx: Ctx, planner: Planner):
    root = storage.VmVolume(
        volume_id=d.root_volume_id,
        type="ROOT",
        disk=d.root_disk,
        template_id=d.vm_template_id,
        disk_offering_id=d.disk_offering_id,
    )
    return storage.RecordVirtualMachine(
        vm_id=d.vm_id, account_id=d.account, zone_id=d.zone, vm_ref=d.vm_ref, name=d.name, volumes=[root]
    )


async def recorded(d: Deployment, reply, ctx: Ctx, planner: Planner):
    description = f"{d.name} created on {d.host.name}"
    ctx.action("VM.CREATE", "Completed", "VirtualMachine", d.vm_id, d.name, description, account_id=d.account)


def adding_nic(d: Deployment) -> str:
    return f"adding NIC {d.nics_attached} on network {d.networks[d.nics_attached].network}"


async def attach_nic(d: Deployment, ctx: Ctx, planner: Planner):
    """The next NIC, in the order the networks were asked for; made with the clone, all are only
    recorded here (after the root volume, as NICs added one by one are)."""
    if d.clone_made_whole:
        while d.nics_attached < len(d.networks):
            await nic_made(d, ctx, d.cloned_macs[str(d.networks[d.nics_attached].nic_id)])
        return None
    if d.nics_attached == len(d.networks):
        return None
    nic = d.networks[d.nics_attached]
    return agent.AttachNic(zone_id=d.zone, vm_ref=d.vm_ref, nic_id=str(nic.nic_id), network=nic.network)


async def nic_attached(d: Deployment, reply: agent.AttachNicSucceeded, ctx: Ctx, planner: Planner):
    await nic_made(d, ctx, reply.mac)
    return AGAIN


async def nic_made(d: Deployment, ctx: Ctx, mac: str) -> None:
    index, nic = d.nics_attached, d.networks[d.nics_attached]
    await store.nic_reserved(ctx.conn, nic.nic_id, mac)
    description = f"NIC {index} of {d.name} on {nic.network} ({mac})"
    ctx.action("NIC.CREATE", "Completed", "Nic", nic.nic_id, nic.network, description, account_id=d.account)
    d.nics_attached += 1


async def power_on(d: Deployment, ctx: Ctx, planner: Planner):
    """Only for a clone that is still off (a deployment begun before clones powered on)."""
    doing = f"{d.name} powered on with its clone" if d.powered_on else f"powering on {d.name}"
    ctx.action("VM.START", "Started", "VirtualMachine", d.vm_id, d.name, doing, account_id=d.account)
    return None if d.powered_on else agent.PowerOnVm(zone_id=d.zone, vm_ref=d.vm_ref)


STEPS: list[Step[Deployment]] = [
    Step("configs", "reading the VM snapshot's configuration", read_configs, (agent.GetVmSnapshotConfigs,),
         check_configs),
    Step("place", "reserving capacity on a host", reserve_host, undo=release_host),
    Step("seed", "seeding the template", seed, (storage.SeedTemplateFromVmSnapshot,), seeded, long=True,
         undo=destroy_root_volume_on_seed, undo_sends=(storage.DestroyVmVolumes,), undo_if_failed=True),
    Step("root_volume", "allocating the root volume", allocate_root_volume, (storage.AllocateRootVolume,),
         undo=destroy_root_volume, undo_sends=(storage.DestroyVmVolumes,)),
    Step("clone", "cloning", clone, (agent.CloneFromSnapshot,), cloned,
         undo=destroy_clone, undo_sends=(agent.DestroyVm,), long=True),
    Step("reconfigure", "reconfiguring", reconfigure, (agent.ReconfigureVm,)),
    Step("record", "recording the root volume", record_root_volume, (storage.RecordVirtualMachine,),
         recorded),
    Step("nic", adding_nic, attach_nic, (agent.AttachNic,), nic_attached),
    Step("power_on", "powering on", power_on, (agent.PowerOnVm,)),
]  # fmt: skip


# -- the end, either way ------------------------------------------------------------------------------------


def succeeded(instance: asyncpg.Record) -> cmd.DeployVirtualMachineSucceeded:
    return cmd.DeployVirtualMachineSucceeded(
        vm_id=instance["uuid"], name=instance["name"], host_id=instance["host_uuid"],
        root_volume_id=instance["root_volume_id"],
    )  # fmt: skip


async def running(d: Deployment, ctx: Ctx, planner: Planner) -> cmd.DeployVirtualMachineSucceeded:
    instance = await store.set_state(ctx.conn, d.vm_id, "Running")
    ctx.action(
        "VM.START",
        "Completed",
        "VirtualMachine",
        d.vm_id,
        d.name,
        f"{d.name} is running",
        account_id=d.account,
    )
    vm_state(ctx, d.vm_id, "Starting", "Running")
    return succeeded(instance)


async def in_error(d: Deployment, error: Failure, ctx: Ctx, planner: Planner) -> None:
    await hosts.release_for(ctx.conn, d.vm_id)  # once: a no-op when "place" was undone
    await store.release_nics(ctx.conn, d.vm_id)
    await store.set_state(ctx.conn, d.vm_id, "Error", reason=error.text)
    ctx.action("VM.CREATE", "Failed", "VirtualMachine", d.vm_id, d.name, error.text, account_id=d.account)
    vm_state(ctx, d.vm_id, "Starting", "Error", error.text)


def failure_text(d: Deployment, doing: str, why: str) -> str:
    return f"deployment of {d.name} failed while {doing}: {why}"


def from_legacy(process: saga.Saga) -> saga.Saga:
    """A deployment saga written before typed state: the same steps, so the same names."""
    raw = process.raw
    process.model = legacy_deployment(raw, process.resource_id)
    order = [s.name for s in STEPS]
    if process.step in order:
        process.completed = order[: order.index(process.step)]
    elif process.step.startswith("undo_"):
        process.completed = order
        process.step = {"undo_vm": "undo:clone", "undo_volumes": "undo:root_volume"}[process.step]
        process.undo = [{"vm": "clone", "volumes": "root_volume"}[u] for u in raw["undo"]] + ["place"]
        error = raw["error"]
        process.error = Failure("unknown", error["code"], error["text"], error.get("fault"))
    return process


FLOW = Flow(
    kind=DEPLOY,
    command=cmd.DeployVirtualMachine,
    state=Deployment,
    steps=STEPS,
    succeed=running,
    failed=in_error,
    failure_text=failure_text,
    legacy=from_legacy,
)
