"""Deploying a VM from a VM snapshot: the saga of DESIGN section 5.

configs -> (offering check, host planned and reserved) -> seed -> root volume -> clone ->
reconfigure -> record the root disk -> one NIC per network, in order -> power on. Each step
is a command whose reply moves the saga on. Any failure compensates in reverse (destroy the
partial VM, destroy the root volume, release the host's capacity and the NICs) and leaves the
instance in Error with a reason that names the step and the vCenter fault.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts import agent, storage
from contracts import planner as cmd
from contracts.base import CommandFailed
from contracts.catalogue import failed_reply
from contracts.errors import ErrorCode
from contracts.vsphere import DiskConfig, VmSnapshotConfig, root_disk
from services.planner import domain, hosts, saga
from services.planner.common import Planner, job, vm_state
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED, HandlerContext

# The owner of what is deployed from a template by a caller with no account (a service).
SYSTEM_ACCOUNT = uuid.UUID("00000000-0000-0000-0000-000000000000")

DEPLOY = "deploy"
STEP_NAMES = {
    "configs": "reading the VM snapshot's configuration",
    "seed": "seeding the template",
    "root_volume": "allocating the root volume",
    "clone": "cloning",
    "reconfigure": "reconfiguring",
    "record": "recording the root volume",
    "nic": "adding a NIC",
    "power_on": "powering on",
}


# -- the request ---------------------------------------------------------------------------------------


async def deploy_virtual_machine(command: cmd.DeployVirtualMachine, ctx: HandlerContext, planner: Planner):
    conn = ctx.conn
    existing = await conn.fetchrow("SELECT * FROM instances WHERE uuid = $1", command.vm_id)
    if existing is not None:
        return await answer_again(ctx, existing)
    if command.vm_snapshot_id is not None:
        source = await snapshot_source(ctx, command)
    else:
        source = await template_source(ctx, command)
    if command.service_offering_id is None:
        raise DomainError(ErrorCode.PARAM_ERROR, "service_offering_id is required")
    offering = await conn.fetchrow(
        "SELECT * FROM service_offerings WHERE uuid = $1", command.service_offering_id
    )
    if offering is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"service offering {command.service_offering_id} does not exist"
        )
    if source["config"] is not None:  # else the saga checks it once it has read the configuration
        domain.check_offering(
            offering["name"], offering["cpu_number"], VmSnapshotConfig.model_validate(source["config"])
        )
    zone, pool = source["zone"], source["pool"]
    networks = []
    for network_id in command.network_ids:
        network = await conn.fetchrow(
            "SELECT * FROM networks WHERE uuid = $1 AND zone_id = $2", network_id, zone
        )
        if network is None:
            raise DomainError(ErrorCode.PARAM_ERROR, f"network {network_id} does not exist in zone {zone}")
        networks.append(
            {"nic_id": str(uuid.uuid4()), "network": network["name"], "network_id": str(network_id)}
        )
    if command.host_id is not None:
        host = await conn.fetchrow("SELECT * FROM hosts WHERE uuid = $1", command.host_id)
        if host is None:
            raise DomainError(ErrorCode.PARAM_ERROR, f"host {command.host_id} does not exist")
        if pool not in host["pools"]:
            raise DomainError(
                ErrorCode.PARAM_ERROR,
                f"host {host['name']} cannot reach storage pool {pool}, which holds the {source['kind']}",
            )
    name = command.name or f"i-{command.vm_id.hex[:8]}"
    if await conn.fetchval("SELECT 1 FROM instances WHERE name = $1", name):
        raise DomainError(ErrorCode.PARAM_ERROR, f"an instance named {name} already exists")

    account = ctx.envelope.actor.account_id or source["owner"]
    await conn.execute(
        """INSERT INTO instances (uuid, name, display_name, account_id, zone_id, state, hypervisor,
               service_offering_id, vm_template_id, disk_offering_id, source_vm_snapshot_id, root_volume_id,
               pool, cpu_number, cpu_speed_mhz, memory_mb)
           VALUES ($1, $2, $3, $4, $5, 'Starting', 'VMware', $6, $7, $8, $9, $10, $11, $12, $13, $14)""",
        command.vm_id,
        name,
        command.display_name or name,
        account,
        zone,
        offering["uuid"],
        source["template_id"],
        source["disk_offering_id"],
        command.vm_snapshot_id,
        uuid.uuid4(),
        pool,
        offering["cpu_number"],
        offering["cpu_speed_mhz"],
        offering["memory_mb"],
    )
    for order, network in enumerate(networks):
        await conn.execute(
            """INSERT INTO nics (uuid, instance_uuid, network_uuid, device_order, state)
               VALUES ($1, $2, $3, $4, 'Allocated')""",
            uuid.UUID(network["nic_id"]),
            command.vm_id,
            uuid.UUID(network["network_id"]),
            order,
        )
    data = {
        **source["saga"],
        "zone": zone,
        "name": name,
        "account": str(account),
        "pool": pool,
        "offering": {k: offering[k] for k in ("name", "cpu_number", "cpu_speed_mhz", "memory_mb")},
        "networks": networks,
        "host_id": str(command.host_id) if command.host_id else None,
        "template_id": str(source["template_id"]) if source["template_id"] else None,
        "disk_offering_id": str(source["disk_offering_id"]) if source["disk_offering_id"] else None,
    }
    deployment = await saga.begin(ctx, DEPLOY, command.vm_id, data)
    ctx.action(
        "VM.CREATE",
        "Scheduled",
        "VirtualMachine",
        command.vm_id,
        name,
        f"deploying {name} from {source['description']}",
        account_id=account,
    )
    vm_state(ctx, command.vm_id, None, "Starting")
    job(ctx, "in_progress", "DeployVirtualMachine")
    if "template" in data:  # a template needs no configuration read and no seed
        await place(deployment, ctx, planner)
    else:
        await saga.send(
            ctx,
            deployment,
            "configs",
            agent.GetVmSnapshotConfigs(
                zone_id=zone, vm_ref=data["source_vm_ref"], snapshot_ref=data["snapshot_ref"]
            ),
            timeout=planner.step_timeout,
        )
    await pending.park(ctx, command.vm_id, DEPLOY)
    return DEFERRED


async def snapshot_source(ctx: HandlerContext, command: cmd.DeployVirtualMachine) -> dict[str, Any]:
    """Deploying from a VM snapshot: the spec's request checks, and what the saga needs of it."""
    domain.check_snapshot_request(command)
    snapshot = await ctx.conn.fetchrow(
        """SELECT s.*, i.vm_ref, i.zone_id, i.hypervisor, i.pool, i.vm_template_id, i.disk_offering_id,
                  i.account_id AS owner
           FROM vm_snapshots s JOIN instances i ON i.uuid = s.instance_uuid WHERE s.uuid = $1""",
        command.vm_snapshot_id,
    )
    if snapshot is None or snapshot["state"] != "Ready":
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM snapshot {command.vm_snapshot_id} does not exist")
    actor = ctx.envelope.actor
    if not domain.may_use(actor.role, actor.account_id, snapshot["owner"]):
        raise DomainError(
            ErrorCode.ACCOUNT_ERROR, f"account {actor.account_id} may not use VM snapshot {snapshot['name']}"
        )
    domain.require_vmware(snapshot["hypervisor"])
    return {
        "kind": "VM snapshot",
        "description": f"VM snapshot {snapshot['name']}",
        "zone": snapshot["zone_id"],
        "pool": snapshot["pool"],
        "owner": snapshot["owner"],
        "config": snapshot["config"],
        "template_id": snapshot["vm_template_id"],
        "disk_offering_id": snapshot["disk_offering_id"],
        "saga": {
            "source_vm_ref": snapshot["vm_ref"],
            "snapshot_ref": snapshot["snapshot_ref"],
            "snapshot_id": str(command.vm_snapshot_id),
        },
    }


async def template_source(ctx: HandlerContext, command: cmd.DeployVirtualMachine) -> dict[str, Any]:
    """Deploying from a template: the same pipeline, cloned from the template's base snapshot."""
    template = await ctx.conn.fetchrow("SELECT * FROM templates WHERE uuid = $1", command.template_id)
    if template is None:
        raise DomainError(ErrorCode.PARAM_ERROR, f"template {command.template_id} does not exist")
    if command.zone_id is not None and command.zone_id != template["zone_id"]:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"template {template['name']} is in zone {template['zone_id']}, not {command.zone_id}",
        )
    if template["base_snapshot_ref"] is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"template {template['name']} has no snapshot to make linked clones from"
        )
    return {
        "kind": "template",
        "description": f"template {template['name']}",
        "zone": template["zone_id"],
        "pool": template["pool"],
        "owner": ctx.envelope.actor.account_id or SYSTEM_ACCOUNT,
        "config": None,
        "template_id": template["uuid"],
        "disk_offering_id": None,
        "saga": {
            "template": {"ref": template["ref"], "base": template["base_snapshot_ref"]},
            "root_size": template["root_size"],
            "cores_per_socket": 1,
        },
    }


async def answer_again(ctx: HandlerContext, instance: asyncpg.Record):
    """The same deployment asked again: wait for the one in flight, or answer as it ended."""
    if await saga.running(ctx.conn, DEPLOY, instance["uuid"]):
        await pending.park(ctx, instance["uuid"], DEPLOY)
        return DEFERRED
    # The saga may have ended since the instance was read: read it as it ended.
    instance = await ctx.conn.fetchrow("SELECT * FROM instances WHERE uuid = $1", instance["uuid"])
    if instance["state"] == "Error":
        raise DomainError(ErrorCode.INTERNAL_ERROR, instance["reason"] or "the deployment failed")
    return succeeded(instance)


def succeeded(instance: asyncpg.Record) -> cmd.DeployVirtualMachineSucceeded:
    return cmd.DeployVirtualMachineSucceeded(
        vm_id=instance["uuid"],
        name=instance["name"],
        host_id=instance["host_uuid"],
        root_volume_id=instance["root_volume_id"],
    )


# -- the steps ---------------------------------------------------------------------------------------------


async def advance(deployment: saga.Saga, reply: Any, ctx: HandlerContext, planner: Planner) -> None:
    if deployment.state == "compensating":
        await compensate(deployment, ctx, planner)
        return
    if isinstance(reply, CommandFailed):
        await fail(deployment, ctx, planner, reply.error_code, reply.error_text, fault=reply.fault)
        return
    try:
        await STEPS[deployment.step](deployment, reply, ctx, planner)
    except DomainError as error:
        await fail(deployment, ctx, planner, error.code, error.text, fault=error.fault)


async def on_configs(
    deployment: saga.Saga, reply: agent.GetVmSnapshotConfigsSucceeded, ctx, planner: Planner
):
    d = deployment.data
    config: VmSnapshotConfig = reply.config
    domain.check_offering(d["offering"]["name"], d["offering"]["cpu_number"], config)
    root = root_disk(config.disks)
    d["cores_per_socket"] = config.cores_per_socket
    d["root_size"] = root.size_bytes
    await place(deployment, ctx, planner)


async def place(deployment: saga.Saga, ctx, planner: Planner):
    """Plan the host and reserve its capacity; then seed (from a snapshot) or go on to the root volume."""
    d = deployment.data
    host = await hosts.reserve(
        ctx.conn,
        planner,
        zone=d["zone"],
        pool=d["pool"],
        offering=d["offering"],
        host_id=uuid.UUID(d["host_id"]) if d["host_id"] else None,
    )
    d["host"] = {"uuid": str(host["uuid"]), "ref": host["ref"], "name": host["name"]}
    await ctx.conn.execute(
        "UPDATE instances SET host_uuid = $2, reserved = true, updated = now() WHERE uuid = $1",
        deployment.resource_id,
        host["uuid"],
    )
    ctx.action(
        "VM.CREATE",
        "Started",
        "VirtualMachine",
        deployment.resource_id,
        d["name"],
        f"placed on host {host['name']}",
        account_id=uuid.UUID(d["account"]),
    )
    if "template" in d:
        d["seed"] = {"id": None, "template_ref": d["template"]["ref"], "base": d["template"]["base"]}
        await allocate_root(deployment, ctx, planner)
        return
    await saga.send(
        ctx,
        deployment,
        "seed",
        storage.SeedTemplateFromVmSnapshot(
            zone_id=d["zone"],
            vm_snapshot_id=uuid.UUID(d["snapshot_id"]),
            storage_id=storage.pool_id(d["zone"], d["pool"]),
        ),
        timeout=planner.copy_timeout,
    )


async def on_seed(
    deployment: saga.Saga, reply: storage.SeedTemplateFromVmSnapshotSucceeded, ctx, planner: Planner
):
    d = deployment.data
    d["seed"] = {
        "id": str(reply.seed_id),
        "template_ref": reply.template_ref,
        "base": reply.base_snapshot_ref,
    }
    await allocate_root(deployment, ctx, planner)


async def allocate_root(deployment: saga.Saga, ctx, planner: Planner):
    d = deployment.data
    root_volume = await ctx.conn.fetchval(
        "SELECT root_volume_id FROM instances WHERE uuid = $1", deployment.resource_id
    )
    d["root_volume"] = str(root_volume)
    await saga.send(
        ctx,
        deployment,
        "root_volume",
        storage.AllocateRootVolume(
            volume_id=root_volume,
            vm_id=deployment.resource_id,
            name=f"ROOT-{d['name']}",
            zone_id=d["zone"],
            storage_id=storage.pool_id(d["zone"], d["pool"]),
            size_bytes=d["root_size"],
            seed_id=d["seed"]["id"],
            template_id=d["template_id"],
            disk_offering_id=d["disk_offering_id"],
        ),
        timeout=planner.step_timeout,
    )


async def on_root_volume(deployment: saga.Saga, reply, ctx, planner: Planner):
    d = deployment.data
    d["root_allocated"] = True
    await saga.send(
        ctx,
        deployment,
        "clone",
        agent.CloneFromSnapshot(
            zone_id=d["zone"],
            vm_id=str(deployment.resource_id),
            vm_name=d["name"],
            template_ref=d["seed"]["template_ref"],
            base_snapshot_ref=d["seed"]["base"],
            host_ref=d["host"]["ref"],
            datastore=d["pool"],
        ),
        timeout=planner.copy_timeout,
    )


async def on_clone(deployment: saga.Saga, reply: agent.CloneFromSnapshotSucceeded, ctx, planner: Planner):
    d = deployment.data
    d["vm_ref"] = reply.vm_ref
    d["root_disk"] = reply.root_disk.model_dump(mode="json")
    await ctx.conn.execute(
        "UPDATE instances SET vm_ref = $2, updated = now() WHERE uuid = $1",
        deployment.resource_id,
        reply.vm_ref,
    )
    offering = d["offering"]
    await saga.send(
        ctx,
        deployment,
        "reconfigure",
        agent.ReconfigureVm(
            zone_id=d["zone"],
            vm_ref=reply.vm_ref,
            num_cpus=offering["cpu_number"],
            cores_per_socket=d["cores_per_socket"]
            if offering["cpu_number"] % d["cores_per_socket"] == 0
            else 1,
            memory_mb=offering["memory_mb"],
            cpu_mhz=offering["cpu_speed_mhz"],
        ),
        timeout=planner.step_timeout,
    )


async def on_reconfigure(deployment: saga.Saga, reply, ctx, planner: Planner):
    d = deployment.data
    root = storage.VmVolume(
        volume_id=uuid.UUID(d["root_volume"]),
        type="ROOT",
        disk=DiskConfig.model_validate(d["root_disk"]),
        template_id=d["template_id"],
        disk_offering_id=d["disk_offering_id"],
    )
    await saga.send(
        ctx,
        deployment,
        "record",
        storage.RecordVirtualMachine(
            vm_id=deployment.resource_id,
            account_id=uuid.UUID(d["account"]),
            zone_id=d["zone"],
            vm_ref=d["vm_ref"],
            name=d["name"],
            volumes=[root],
        ),
        timeout=planner.step_timeout,
    )


async def on_record(deployment: saga.Saga, reply, ctx, planner: Planner):
    d = deployment.data
    ctx.action(
        "VM.CREATE",
        "Completed",
        "VirtualMachine",
        deployment.resource_id,
        d["name"],
        f"{d['name']} created on {d['host']['name']}",
        account_id=uuid.UUID(d["account"]),
    )
    await next_nic(deployment, 0, ctx, planner)


async def on_nic(deployment: saga.Saga, reply: agent.AttachNicSucceeded, ctx, planner: Planner):
    d = deployment.data
    index = d["nic_index"]
    network = d["networks"][index]
    await ctx.conn.execute(
        "UPDATE nics SET mac = $2, state = 'Reserved' WHERE uuid = $1",
        uuid.UUID(network["nic_id"]),
        reply.mac,
    )
    ctx.action(
        "NIC.CREATE",
        "Completed",
        "Nic",
        uuid.UUID(network["nic_id"]),
        network["network"],
        f"NIC {index} of {d['name']} on {network['network']} ({reply.mac})",
        account_id=uuid.UUID(d["account"]),
    )
    await next_nic(deployment, index + 1, ctx, planner)


async def next_nic(deployment: saga.Saga, index: int, ctx, planner: Planner):
    d = deployment.data
    if index < len(d["networks"]):
        d["nic_index"] = index
        network = d["networks"][index]
        await saga.send(
            ctx,
            deployment,
            "nic",
            agent.AttachNic(
                zone_id=d["zone"], vm_ref=d["vm_ref"], nic_id=network["nic_id"], network=network["network"]
            ),
            timeout=planner.step_timeout,
        )
        return
    ctx.action(
        "VM.START",
        "Started",
        "VirtualMachine",
        deployment.resource_id,
        d["name"],
        f"powering on {d['name']}",
        account_id=uuid.UUID(d["account"]),
    )
    await saga.send(
        ctx,
        deployment,
        "power_on",
        agent.PowerOnVm(zone_id=d["zone"], vm_ref=d["vm_ref"]),
        timeout=planner.step_timeout,
    )


async def on_power_on(deployment: saga.Saga, reply, ctx, planner: Planner):
    d = deployment.data
    instance = await ctx.conn.fetchrow(
        "UPDATE instances SET state = 'Running', updated = now() WHERE uuid = $1 RETURNING *",
        deployment.resource_id,
    )
    ctx.action(
        "VM.START",
        "Completed",
        "VirtualMachine",
        deployment.resource_id,
        d["name"],
        f"{d['name']} is running",
        account_id=uuid.UUID(d["account"]),
    )
    vm_state(ctx, deployment.resource_id, "Starting", "Running")
    reply_ok = succeeded(instance)
    job(ctx, "succeeded", "DeployVirtualMachine", result=reply_ok.model_dump(mode="json"))
    await saga.finish(ctx, deployment)
    ctx.outgoing.extend(
        await pending.answer(ctx.conn, deployment.resource_id, DEPLOY, reply_ok, source="planner")
    )


STEPS = {
    "configs": on_configs,
    "seed": on_seed,
    "root_volume": on_root_volume,
    "clone": on_clone,
    "reconfigure": on_reconfigure,
    "record": on_record,
    "nic": on_nic,
    "power_on": on_power_on,
}


# -- failure and compensation ------------------------------------------------------------------------------


async def fail(
    deployment: saga.Saga, ctx, planner: Planner, code: int, text: str, *, fault: str | None = None
):
    """Record why, then undo in reverse: the partial VM, the root volume, then the reservations."""
    d = deployment.data
    step = STEP_NAMES.get(deployment.step, deployment.step)
    if deployment.step == "nic":
        step = f"adding NIC {d['nic_index']} on network {d['networks'][d['nic_index']]['network']}"
    d["error"] = {
        "code": code,
        "text": f"deployment of {d['name']} failed while {step}: {text}",
        "fault": fault,
    }
    deployment.state = "compensating"
    # What was made, undone in reverse order: the partial VM first, then its root volume.
    d["undo"] = (["vm"] if d.get("vm_ref") else []) + (["volumes"] if d.get("root_allocated") else [])
    await compensate(deployment, ctx, planner)


async def compensate(deployment: saga.Saga, ctx, planner: Planner):
    d = deployment.data
    undo = d["undo"]
    if undo and undo[0] == "vm":
        undo.pop(0)
        await saga.send(
            ctx,
            deployment,
            "undo_vm",
            agent.DestroyVm(zone_id=d["zone"], vm_ref=d["vm_ref"]),
            timeout=planner.step_timeout,
        )
        return
    if undo and undo[0] == "volumes":
        undo.pop(0)
        await saga.send(
            ctx,
            deployment,
            "undo_volumes",
            storage.DestroyVmVolumes(vm_id=deployment.resource_id),
            timeout=planner.step_timeout,
        )
        return
    await finish_failed(deployment, ctx)


async def finish_failed(deployment: saga.Saga, ctx) -> None:
    d = deployment.data
    error = d["error"]
    await hosts.release_for(ctx.conn, deployment.resource_id)
    await ctx.conn.execute(
        "UPDATE nics SET state = 'Released' WHERE instance_uuid = $1", deployment.resource_id
    )
    await ctx.conn.execute(
        "UPDATE instances SET state = 'Error', reason = $2, updated = now() WHERE uuid = $1",
        deployment.resource_id,
        error["text"],
    )
    ctx.action(
        "VM.CREATE",
        "Failed",
        "VirtualMachine",
        deployment.resource_id,
        d["name"],
        error["text"],
        account_id=uuid.UUID(d["account"]),
    )
    vm_state(ctx, deployment.resource_id, "Starting", "Error", error["text"])
    job(ctx, "failed", "DeployVirtualMachine", error_code=error["code"], error_text=error["text"])
    await saga.finish(ctx, deployment, failed=True, code=error["code"], text=error["text"])
    failure = failed_reply(cmd.DeployVirtualMachine)(
        error_code=error["code"], error_text=error["text"], fault=error["fault"]
    )
    ctx.outgoing.extend(
        await pending.answer(ctx.conn, deployment.resource_id, DEPLOY, failure, source="planner")
    )


async def timed_out(deployment: saga.Saga, ctx, planner: Planner) -> None:
    """The step's reply never came, even after re-sending: fail (or, if undoing, carry on undoing)."""
    if deployment.state == "compensating":
        await compensate(deployment, ctx, planner)
        return
    await fail(deployment, ctx, planner, ErrorCode.INTERNAL_ERROR, "no reply within the step's deadline")
