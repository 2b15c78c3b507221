"""Adopting a vCenter VM with its snapshot tree into an account ("VM snapshots created before
the upgrade"): storage records the VM and its disks, then each snapshot's configuration is read
and recorded, so every adopted snapshot is Ready as a taken one is."""

from __future__ import annotations

import uuid

from contracts import agent, storage
from contracts import planner as cmd
from contracts.errors import ErrorCode
from contracts.vsphere import VmInfo, root_disk
from services.planner import saga, steps, store
from services.planner.common import Planner
from services.planner.state import AdoptedSnapshot, Adoption, legacy_adoption
from services.planner.steps import AGAIN, Failure, Flow, Step
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED
from shared.messaging import HandlerContext as Ctx

ADOPT = "import"
_ADOPTED = uuid.UUID("5c3e9a70-8d21-4f6b-b0c4-7e2a1d9f3b86")


def adopted_id(*parts: str) -> uuid.UUID:
    """Ids of adopted VMs, volumes and snapshots: the same vCenter object always gets the same id."""
    return uuid.uuid5(_ADOPTED, "/".join(parts))


async def record_vm(a: Adoption, ctx: Ctx, planner: Planner):
    return storage.RecordVirtualMachine(
        vm_id=a.vm_id, account_id=a.account, zone_id=a.zone, vm_ref=a.vm_ref, name=a.name,
        volumes=[storage.VmVolume.model_validate(v) for v in a.volumes],
    )  # fmt: skip


async def next_snapshot(a: Adoption, ctx: Ctx, planner: Planner):
    """One snapshot at a time: read its configuration, then have storage record it."""
    todo = next((s for s in a.snapshots if not s.recorded), None)
    if todo is None:
        return None
    if todo.config is None:
        return agent.GetVmSnapshotConfigs(zone_id=a.zone, vm_ref=a.vm_ref, snapshot_ref=todo.ref)
    return storage.RecordVmSnapshot(
        vm_snapshot_id=todo.id, vm_id=a.vm_id, account_id=a.account, zone_id=a.zone, vm_ref=a.vm_ref,
        snapshot_ref=todo.ref, name=todo.name, disks=todo.config.disks,
    )  # fmt: skip


async def snapshot_done(a: Adoption, reply, ctx: Ctx, planner: Planner):
    todo = next(s for s in a.snapshots if not s.recorded)
    if isinstance(reply, agent.GetVmSnapshotConfigsSucceeded):
        todo.config = reply.config
        return AGAIN
    await store.snapshot_ready(ctx.conn, todo.id, todo.config)
    todo.recorded = True
    return AGAIN


STEPS = [
    Step("record_vm", "recording the VM with storage", record_vm, (storage.RecordVirtualMachine,)),
    Step("snapshots", "adopting its snapshots", next_snapshot,
         (agent.GetVmSnapshotConfigs, storage.RecordVmSnapshot), snapshot_done),
]  # fmt: skip


async def adopted(a: Adoption, ctx: Ctx, planner: Planner):
    description = f"adopted {a.name} with {len(a.snapshots)} VM snapshots"
    ctx.action("VM.IMPORT", "Completed", "VirtualMachine", a.vm_id, a.name, description, account_id=a.account)
    return cmd.ImportVirtualMachineSucceeded(vm_id=a.vm_id, vm_snapshot_ids=[s.id for s in a.snapshots])


async def forgotten(a: Adoption, error: Failure, ctx: Ctx, planner: Planner) -> None:
    # Nothing half-made is kept: the next import starts again with the same ids.
    await store.forget_instance(ctx.conn, a.vm_id)


def from_legacy(process: saga.Saga) -> saga.Saga:
    process.model = legacy_adoption(process.raw, process.resource_id, process.step)
    if process.step in ("configs", "record_snapshot"):
        process.completed, process.step = ["record_vm"], "snapshots"
    return process


FLOW = Flow(
    kind=ADOPT, command=cmd.ImportVirtualMachine, state=Adoption, steps=STEPS, succeed=adopted,
    failed=forgotten, failure_text=lambda a, doing, why: f"importing {a.name} failed while {doing}: {why}",
    legacy=from_legacy,
)  # fmt: skip


async def import_virtual_machine(command: cmd.ImportVirtualMachine, ctx: Ctx, planner: Planner):
    conn = ctx.conn
    if ctx.envelope.actor.role == "user":
        raise DomainError(ErrorCode.ACCOUNT_ERROR, "only an admin may import a VM into an account")
    info = await store.vcenter_vm(conn, command.zone_id, command.vm_ref)
    if info is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"zone {command.zone_id} has no VM {command.vm_ref} (sync the zone's inventory first)",
        )
    vm = VmInfo.model_validate(info)
    if vm.template or not vm.disks:
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"{vm.name} is a template or has no disk; only VMs can be imported"
        )
    vm_id = adopted_id(command.zone_id, vm.ref)
    if await saga.running(conn, ADOPT, vm_id):
        await pending.park(ctx, vm_id, ADOPT)
        return DEFERRED
    if await store.instance(conn, vm_id) is not None:
        return cmd.ImportVirtualMachineSucceeded(
            vm_id=vm_id, vm_snapshot_ids=await store.snapshot_ids(conn, vm_id)
        )
    root = root_disk(vm.disks)
    host = await store.host_id_of(conn, command.zone_id, vm.host)
    await store.add_instance(
        conn,
        uuid=vm_id,
        name=vm.name,
        display_name=vm.name,
        account_id=command.account_id,
        zone_id=command.zone_id,
        state="Running" if vm.power_state == "poweredOn" else "Stopped",
        host_uuid=host,
        vm_ref=vm.ref,
        service_offering_id=command.service_offering_id,
        root_volume_id=adopted_id(command.zone_id, vm.ref, str(root.key)),
        pool=root.datastore,
        cpu_number=vm.num_cpus,
        cpu_speed_mhz=0,
        memory_mb=vm.memory_mb,
    )
    ids = {s.ref: adopted_id(command.zone_id, vm.ref, s.ref) for s in vm.snapshots}
    for s in vm.snapshots:  # parents come first
        await store.add_snapshot(
            conn,
            uuid=ids[s.ref],
            instance_uuid=vm_id,
            account_id=command.account_id,
            name=s.name,
            description=s.description,
            parent_uuid=ids.get(s.parent_ref),
            snapshot_ref=s.ref,
            memory=s.has_memory,
            created=s.created,
            current=s.ref == vm.current_snapshot_ref,
        )
    volumes = [
        storage.VmVolume(
            volume_id=adopted_id(command.zone_id, vm.ref, str(disk.key)),
            type="ROOT" if disk.key == root.key else "DATADISK",
            disk=disk,
        ).model_dump(mode="json")
        for disk in vm.disks
    ]
    adoption = Adoption(
        vm_id=vm_id, zone=command.zone_id, vm_ref=vm.ref, name=vm.name, account=command.account_id,
        volumes=volumes,
        snapshots=[AdoptedSnapshot(id=ids[s.ref], ref=s.ref, name=s.name) for s in vm.snapshots],
    )  # fmt: skip
    await pending.park(ctx, vm_id, ADOPT)
    await steps.begin(ctx, FLOW, vm_id, adoption, planner)
    return DEFERRED
