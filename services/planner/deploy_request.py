"""The DeployVirtualMachine request: the spec's checks (nothing is created when one fails), the
instance and its NICs, then the deployment's steps (``deploy.STEPS``)."""

from __future__ import annotations

import uuid

import asyncpg

from contracts import planner as cmd
from contracts.errors import ErrorCode
from contracts.vsphere import VmSnapshotConfig, root_disk
from services.planner import deploy, domain, saga, steps, store
from services.planner.common import Planner, job, vm_state
from services.planner.state import Deployment, NicPlan, Offering, SnapshotSource, TemplateSource
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import DEFERRED, HandlerContext

# The owner of what is deployed from a template by a caller with no account (a service).
SYSTEM_ACCOUNT = uuid.UUID("00000000-0000-0000-0000-000000000000")


async def deploy_virtual_machine(command: cmd.DeployVirtualMachine, ctx: HandlerContext, planner: Planner):
    conn = ctx.conn
    existing = await store.instance(conn, command.vm_id)
    if existing is not None:
        return await answer_again(ctx, existing)
    if command.vm_snapshot_id is not None:
        source, found = await snapshot_source(ctx, command)
    else:
        source, found = await template_source(ctx, command)
    if command.service_offering_id is None:
        raise DomainError(ErrorCode.PARAM_ERROR, "service_offering_id is required")
    offering = await store.offering(conn, command.service_offering_id)
    if offering is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR, f"service offering {command.service_offering_id} does not exist"
        )
    config = None
    if found["config"] is not None:  # else the "configs" step checks it once it has read it
        config = VmSnapshotConfig.model_validate(found["config"])
        domain.check_offering(offering["name"], offering["cpu_number"], config)
    zone, pool = found["zone"], found["pool"]
    networks = []
    for network_id in command.network_ids:
        network = await store.network_in_zone(conn, network_id, zone)
        if network is None:
            raise DomainError(ErrorCode.PARAM_ERROR, f"network {network_id} does not exist in zone {zone}")
        networks.append(NicPlan(nic_id=uuid.uuid4(), network=network["name"], network_id=network_id))
    if command.host_id is not None:
        host = await store.host(conn, command.host_id)
        if host is None:
            raise DomainError(ErrorCode.PARAM_ERROR, f"host {command.host_id} does not exist")
        if pool not in host["pools"]:
            raise DomainError(
                ErrorCode.PARAM_ERROR,
                f"host {host['name']} cannot reach storage pool {pool}, which holds the {found['kind']}",
            )
    name = command.name or f"i-{command.vm_id.hex[:8]}"
    if await store.name_taken(conn, name):
        raise DomainError(ErrorCode.PARAM_ERROR, f"an instance named {name} already exists")

    deployment = Deployment(
        vm_id=command.vm_id,
        name=name,
        account=ctx.envelope.actor.account_id or found["owner"],
        zone=zone,
        pool=pool,
        source=source,
        offering=Offering(**{k: offering[k] for k in ("name", "cpu_number", "cpu_speed_mhz", "memory_mb")}),
        networks=networks,
        requested_host=command.host_id,
        vm_template_id=found["template_id"],
        disk_offering_id=found["disk_offering_id"],
        root_volume_id=uuid.uuid4(),
        root_size=found.get("root_size"),
    )
    if config is not None and command.vm_snapshot_id in planner.seeded:
        # Seeded already: the deployment clones the seed, so the configuration stored with the
        # snapshot is all it needs of it (no "configs" round trip to vCenter).
        deployment.config_known = True
        deployment.cores_per_socket = config.cores_per_socket
        deployment.root_size = root_disk(config.disks).size_bytes
    await create_instance(ctx, deployment, offering, command)
    ctx.action(
        "VM.CREATE", "Scheduled", "VirtualMachine", command.vm_id, name,
        f"deploying {name} from {found['description']}", account_id=deployment.account,
    )  # fmt: skip
    vm_state(ctx, command.vm_id, None, "Starting")
    job(ctx, "in_progress", "DeployVirtualMachine")
    await pending.park(ctx, command.vm_id, deploy.DEPLOY)  # first: the flow may end at once
    await steps.begin(ctx, deploy.FLOW, command.vm_id, deployment, planner)
    return DEFERRED


async def create_instance(ctx: HandlerContext, d: Deployment, offering, command) -> None:
    await store.add_instance(
        ctx.conn,
        uuid=d.vm_id,
        name=d.name,
        display_name=command.display_name or d.name,
        account_id=d.account,
        zone_id=d.zone,
        state="Starting",
        hypervisor="VMware",
        service_offering_id=offering["uuid"],
        vm_template_id=d.vm_template_id,
        disk_offering_id=d.disk_offering_id,
        source_vm_snapshot_id=command.vm_snapshot_id,
        root_volume_id=d.root_volume_id,
        pool=d.pool,
        cpu_number=offering["cpu_number"],
        cpu_speed_mhz=offering["cpu_speed_mhz"],
        memory_mb=offering["memory_mb"],
    )
    await store.add_nics(ctx.conn, d.vm_id, [(nic.nic_id, nic.network_id) for nic in d.networks])


async def snapshot_source(ctx: HandlerContext, command: cmd.DeployVirtualMachine):
    """Deploying from a VM snapshot: the spec's request checks, and what the deployment needs of it."""
    domain.check_snapshot_request(command)
    snapshot = await store.snapshot_to_deploy(ctx.conn, command.vm_snapshot_id)
    if snapshot is None or snapshot["state"] != "Ready":
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM snapshot {command.vm_snapshot_id} does not exist")
    actor = ctx.envelope.actor
    if not domain.may_use(actor.role, actor.account_id, snapshot["owner"]):
        raise DomainError(
            ErrorCode.ACCOUNT_ERROR, f"account {actor.account_id} may not use VM snapshot {snapshot['name']}"
        )
    domain.require_vmware(snapshot["hypervisor"])
    source = SnapshotSource(
        vm_snapshot_id=command.vm_snapshot_id,
        vm_ref=snapshot["vm_ref"],
        snapshot_ref=snapshot["snapshot_ref"],
    )
    return source, {
        "kind": "VM snapshot",
        "description": f"VM snapshot {snapshot['name']}",
        "zone": snapshot["zone_id"],
        "pool": snapshot["pool"],
        "owner": snapshot["owner"],
        "config": snapshot["config"],
        "template_id": snapshot["vm_template_id"],
        "disk_offering_id": snapshot["disk_offering_id"],
    }


async def template_source(ctx: HandlerContext, command: cmd.DeployVirtualMachine):
    """Deploying from a template: the same steps, cloned from the template's base snapshot."""
    template = await store.template(ctx.conn, command.template_id)
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
    source = TemplateSource(template_ref=template["ref"], base_snapshot_ref=template["base_snapshot_ref"])
    return source, {
        "kind": "template",
        "description": f"template {template['name']}",
        "zone": template["zone_id"],
        "pool": template["pool"],
        "owner": ctx.envelope.actor.account_id or SYSTEM_ACCOUNT,
        "config": None,
        "template_id": template["uuid"],
        "disk_offering_id": None,
        "root_size": template["root_size"],
    }


async def answer_again(ctx: HandlerContext, instance: asyncpg.Record):
    """The same deployment asked again: wait for the one in flight, or answer as it ended."""
    if await saga.running(ctx.conn, deploy.DEPLOY, instance["uuid"]):
        await pending.park(ctx, instance["uuid"], deploy.DEPLOY)
        return DEFERRED
    # The saga may have ended since the instance was read: read it as it ended.
    instance = await store.instance(ctx.conn, instance["uuid"])
    if instance["state"] == "Error":
        raise DomainError(ErrorCode.INTERNAL_ERROR, instance["reason"] or "the deployment failed")
    return deploy.succeeded(instance)
