"""Agent handlers: one per command of the agent catalogue; the registry is at the end.

Each handler runs its vCenter work through the agent's worker (thread pool, admission by
vCenter's per-operation costs, single flight), publishes a ``VcenterTask`` event as each
vCenter task ends, and returns the command's ``Succeeded`` reply. vSphere faults become
``DomainError`` (the ``Failed`` reply names the fault); retryable ones (session lost, task in
progress, vCenter unreachable) become ``TransientError`` so the command is retried with backoff.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from contracts import agent as cmd
from contracts.envelope import Envelope
from contracts.errors import ErrorCode
from contracts.events import VcenterTask
from contracts.topology import EVENTS, event_routing_key
from services.hypervisor_agent.admission import FULL_COPY, LINKED_CLONE
from services.hypervisor_agent.vsphere import ops
from services.hypervisor_agent.vsphere.faults import VsphereError
from services.hypervisor_agent.vsphere.tasks import TaskOutcome
from services.hypervisor_agent.worker import VcenterWorker
from shared.errors import DomainError, TransientError
from shared.messaging import HandlerContext, Handlers, Outgoing, derived_id


@dataclass
class Agent:
    """What the handlers need; ``worker`` and ``bus`` are set when the service starts."""

    zone_id: str
    task_timeout: float = 1800.0
    worker: VcenterWorker | None = None
    bus: Any = None

    async def vcenter(
        self, ctx: HandlerContext, fn: Callable[..., Any], *args: Any, tasks: bool = True, **kwargs: Any
    ) -> Any:
        """Run ``fn(session, ...)`` in the worker; report its tasks; translate its faults."""
        loop = asyncio.get_running_loop()
        reports: list[Any] = []

        def report(outcome: TaskOutcome) -> None:  # called from the worker thread
            reports.append(asyncio.run_coroutine_threadsafe(self._publish_task(ctx.envelope, outcome), loop))

        if tasks:
            kwargs.update(report=report, timeout=self.task_timeout)
        try:
            result = await self.worker.run(fn, *args, **kwargs)
        except VsphereError as error:
            await self._reported(reports)
            if error.retryable:
                raise TransientError(str(error)) from error
            raise DomainError(error.code, str(error), fault=error.fault) from error
        except BaseException:
            await self._reported(reports)
            raise
        # the task reports are confirmed with the reply (before the ack), not ahead of it
        ctx.confirming.extend(asyncio.wrap_future(published) for published in reports)
        return result

    @staticmethod
    async def _reported(reports: list[Any]) -> None:
        for published in reports:
            await asyncio.wrap_future(published)

    async def _publish_task(self, cause: Envelope, outcome: TaskOutcome) -> None:
        event = VcenterTask(
            zone_id=self.zone_id,
            task_key=outcome.key,
            name=outcome.name,
            entity=outcome.entity,
            entity_name=outcome.entity_name,
            state=outcome.state,
            started_at=outcome.started_at,
            completed_at=outcome.completed_at,
            duration_ms=outcome.duration_ms,
            fault=outcome.fault,
            fault_message=outcome.fault_message,
        )
        envelope = cause.caused(
            event, source="agent", message_id=derived_id(cause.message_id, f"task:{outcome.key}")
        )
        await self.bus.publish_until_confirmed(
            Outgoing(envelope, EVENTS.name, event_routing_key("agent", event))
        )

    def check_zone(self, command: cmd.AgentCommand) -> None:
        if command.zone_id != self.zone_id:
            raise DomainError(
                ErrorCode.PARAM_ERROR,
                f"zone {command.zone_id} is not served by this agent (zone {self.zone_id})",
            )


# -- inventory and snapshots ---------------------------------------------------------------------


async def sync_inventory(
    command: cmd.SyncInventory, ctx: HandlerContext, agent: Agent
) -> cmd.SyncInventorySucceeded:
    found = await agent.vcenter(ctx, ops.read_inventory, command.zone_id, tasks=False)
    ctx.emit(found)
    return cmd.SyncInventorySucceeded(
        hosts=len(found.hosts),
        datastores=len(found.datastores),
        networks=len(found.networks),
        vms=len(found.vms),
    )


async def get_vm_snapshot_configs(
    command: cmd.GetVmSnapshotConfigs, ctx: HandlerContext, agent: Agent
) -> cmd.GetVmSnapshotConfigsSucceeded:
    config = await agent.vcenter(
        ctx, ops.get_snapshot_config, command.vm_ref, command.snapshot_ref, tasks=False
    )
    return cmd.GetVmSnapshotConfigsSucceeded(
        vm_ref=command.vm_ref, snapshot_ref=command.snapshot_ref, config=config
    )


async def create_vm_snapshot(
    command: cmd.CreateVmSnapshot, ctx: HandlerContext, agent: Agent
) -> cmd.CreateVmSnapshotSucceeded:
    snapshot = await agent.vcenter(
        ctx,
        ops.create_snapshot,
        command.vm_ref,
        key=("snapshot", command.snapshot_id),
        snapshot_id=command.snapshot_id,
        name=command.name,
        description=command.description,
        memory=command.memory,
        quiesce=command.quiesce,
    )
    return cmd.CreateVmSnapshotSucceeded(vm_ref=command.vm_ref, snapshot=snapshot)


async def remove_vm_snapshot(
    command: cmd.RemoveVmSnapshot, ctx: HandlerContext, agent: Agent
) -> cmd.RemoveVmSnapshotSucceeded:
    await agent.vcenter(
        ctx, ops.remove_snapshot, command.vm_ref, command.snapshot_ref, key=("snapshot", command.snapshot_ref)
    )
    return cmd.RemoveVmSnapshotSucceeded(vm_ref=command.vm_ref, snapshot_ref=command.snapshot_ref)


async def revert_to_vm_snapshot(
    command: cmd.RevertToVmSnapshot, ctx: HandlerContext, agent: Agent
) -> cmd.RevertToVmSnapshotSucceeded:
    power_state = await agent.vcenter(
        ctx, ops.revert_to_snapshot, command.vm_ref, command.snapshot_ref, key=("vm", command.vm_ref)
    )
    return cmd.RevertToVmSnapshotSucceeded(
        vm_ref=command.vm_ref, snapshot_ref=command.snapshot_ref, power_state=power_state
    )


# -- seeding and cloning ----------------------------------------------------------------------------


async def seed_template(
    command: cmd.SeedTemplate, ctx: HandlerContext, agent: Agent
) -> cmd.SeedTemplateSucceeded:
    seed = await agent.vcenter(
        ctx,
        ops.seed_template,
        key=("seed", command.seed_id),
        cost=FULL_COPY,
        on_datastore=command.datastore,
        datastore=command.datastore,
        seed_id=command.seed_id,
        vm_ref=command.vm_ref,
        snapshot_ref=command.snapshot_ref,
    )
    return cmd.SeedTemplateSucceeded(
        seed_id=command.seed_id,
        template_ref=seed.template_ref,
        template_name=seed.template_name,
        base_snapshot_ref=seed.base_snapshot_ref,
        disk_path=seed.disk_path,
        size_bytes=seed.size_bytes,
    )


async def clone_from_snapshot(
    command: cmd.CloneFromSnapshot, ctx: HandlerContext, agent: Agent
) -> cmd.CloneFromSnapshotSucceeded:
    """The clone, powered on when asked: by the clone itself (one task) while the host has units to
    spare; else by a power-on of its own once the clone has given its units back (a power-on is
    not a provisioning operation, and other deployments' clones wait for those units)."""
    in_clone = command.power_on and agent.worker.admission.spare(command.host_ref)
    clone = await agent.vcenter(
        ctx,
        ops.clone_from_snapshot,
        key=("vm", command.vm_id),
        cost=LINKED_CLONE,
        on_host=command.host_ref,
        on_datastore=command.datastore,
        datastore=command.datastore,
        vm_id=command.vm_id,
        vm_name=command.vm_name,
        template_ref=command.template_ref,
        base_snapshot_ref=command.base_snapshot_ref,
        host_ref=command.host_ref,
        shape=command.shape,
        nics=command.nics,
        power_on=in_clone,
    )
    if command.power_on and not clone.powered_on:
        host_ref = await agent.vcenter(ctx, ops.power_on, clone.vm_ref, key=("power", clone.vm_ref))
        clone = replace(clone, powered_on=True, host_ref=host_ref)
    return cmd.CloneFromSnapshotSucceeded(
        vm_id=command.vm_id,
        vm_ref=clone.vm_ref,
        vm_name=clone.vm_name,
        root_disk=clone.root_disk,
        nics=clone.nics,
        powered_on=clone.powered_on,
        host_ref=clone.host_ref,
    )


async def copy_volume_from_snapshot(
    command: cmd.CopyVolumeFromSnapshot, ctx: HandlerContext, agent: Agent
) -> cmd.CopyVolumeFromSnapshotSucceeded:
    copy = await agent.vcenter(
        ctx,
        ops.copy_volume_from_snapshot,
        key=("volume", command.volume_id),
        cost=FULL_COPY,
        volume_id=command.volume_id,
        vm_ref=command.vm_ref,
        snapshot_ref=command.snapshot_ref,
        disk_key=command.disk_key,
    )
    return cmd.CopyVolumeFromSnapshotSucceeded(
        volume_id=command.volume_id,
        disk_path=copy.disk_path,
        datastore=copy.datastore,
        size_bytes=copy.size_bytes,
    )


async def create_disk(command: cmd.CreateDisk, ctx: HandlerContext, agent: Agent) -> cmd.CreateDiskSucceeded:
    made = await agent.vcenter(
        ctx,
        ops.create_disk,
        key=("volume", command.volume_id),
        volume_id=command.volume_id,
        datastore=command.datastore,
        size_bytes=command.size_bytes,
    )
    return cmd.CreateDiskSucceeded(
        volume_id=command.volume_id,
        disk_path=made.disk_path,
        datastore=made.datastore,
        size_bytes=made.size_bytes,
    )


# -- the rest of the lifecycle -----------------------------------------------------------------------


async def reconfigure_vm(
    command: cmd.ReconfigureVm, ctx: HandlerContext, agent: Agent
) -> cmd.ReconfigureVmSucceeded:
    await agent.vcenter(
        ctx,
        ops.reconfigure_vm,
        command.vm_ref,
        key=("vm", command.vm_ref),
        num_cpus=command.num_cpus,
        cores_per_socket=command.cores_per_socket,
        memory_mb=command.memory_mb,
        cpu_mhz=command.cpu_mhz,
    )
    return cmd.ReconfigureVmSucceeded(vm_ref=command.vm_ref)


async def attach_nic(command: cmd.AttachNic, ctx: HandlerContext, agent: Agent) -> cmd.AttachNicSucceeded:
    device_key, mac = await agent.vcenter(
        ctx,
        ops.attach_nic,
        command.vm_ref,
        key=("nic", command.nic_id),
        nic_id=command.nic_id,
        network=command.network,
        adapter_type=command.adapter_type,
        mac=command.mac,
    )
    return cmd.AttachNicSucceeded(
        vm_ref=command.vm_ref, nic_id=command.nic_id, device_key=device_key, mac=mac
    )


async def detach_nic(command: cmd.DetachNic, ctx: HandlerContext, agent: Agent) -> cmd.DetachNicSucceeded:
    await agent.vcenter(ctx, ops.detach_nic, command.vm_ref, key=("nic", command.nic_id), mac=command.mac)
    return cmd.DetachNicSucceeded(vm_ref=command.vm_ref, nic_id=command.nic_id)


async def power_on_vm(command: cmd.PowerOnVm, ctx: HandlerContext, agent: Agent) -> cmd.PowerOnVmSucceeded:
    host_ref = await agent.vcenter(ctx, ops.power_on, command.vm_ref, key=("power", command.vm_ref))
    return cmd.PowerOnVmSucceeded(vm_ref=command.vm_ref, host_ref=host_ref)


async def power_off_vm(command: cmd.PowerOffVm, ctx: HandlerContext, agent: Agent) -> cmd.PowerOffVmSucceeded:
    await agent.vcenter(ctx, ops.power_off, command.vm_ref, key=("power", command.vm_ref))
    return cmd.PowerOffVmSucceeded(vm_ref=command.vm_ref)


async def destroy_vm(command: cmd.DestroyVm, ctx: HandlerContext, agent: Agent) -> cmd.DestroyVmSucceeded:
    await agent.vcenter(ctx, ops.destroy_vm, command.vm_ref, key=("vm", command.vm_ref))
    return cmd.DestroyVmSucceeded(vm_ref=command.vm_ref)


async def attach_disk(command: cmd.AttachDisk, ctx: HandlerContext, agent: Agent) -> cmd.AttachDiskSucceeded:
    disk = await agent.vcenter(
        ctx,
        ops.attach_disk,
        command.vm_ref,
        key=("disk", command.disk_path),
        disk_path=command.disk_path,
        unit_number=command.unit_number,
    )
    return cmd.AttachDiskSucceeded(vm_ref=command.vm_ref, disk=disk)


async def detach_disk(command: cmd.DetachDisk, ctx: HandlerContext, agent: Agent) -> cmd.DetachDiskSucceeded:
    await agent.vcenter(
        ctx, ops.detach_disk, command.vm_ref, key=("disk", command.disk_path), disk_path=command.disk_path
    )
    return cmd.DetachDiskSucceeded(vm_ref=command.vm_ref, disk_path=command.disk_path)


async def extend_disk(command: cmd.ExtendDisk, ctx: HandlerContext, agent: Agent) -> cmd.ExtendDiskSucceeded:
    await agent.vcenter(
        ctx,
        ops.extend_disk,
        key=("disk", command.disk_path),
        disk_path=command.disk_path,
        size_bytes=command.size_bytes,
        vm_ref=command.vm_ref,
    )
    return cmd.ExtendDiskSucceeded(disk_path=command.disk_path, size_bytes=command.size_bytes)


async def delete_disk(command: cmd.DeleteDisk, ctx: HandlerContext, agent: Agent) -> cmd.DeleteDiskSucceeded:
    await agent.vcenter(ctx, ops.delete_disk, key=("disk", command.disk_path), disk_path=command.disk_path)
    return cmd.DeleteDiskSucceeded(disk_path=command.disk_path)


async def delete_template(
    command: cmd.DeleteTemplate, ctx: HandlerContext, agent: Agent
) -> cmd.DeleteTemplateSucceeded:
    await agent.vcenter(ctx, ops.delete_template, command.template_ref, key=("vm", command.template_ref))
    return cmd.DeleteTemplateSucceeded(template_ref=command.template_ref)


HANDLERS_OF_AGENT = {
    cmd.SyncInventory: sync_inventory,
    cmd.GetVmSnapshotConfigs: get_vm_snapshot_configs,
    cmd.CreateVmSnapshot: create_vm_snapshot,
    cmd.RemoveVmSnapshot: remove_vm_snapshot,
    cmd.RevertToVmSnapshot: revert_to_vm_snapshot,
    cmd.SeedTemplate: seed_template,
    cmd.CloneFromSnapshot: clone_from_snapshot,
    cmd.CopyVolumeFromSnapshot: copy_volume_from_snapshot,
    cmd.CreateDisk: create_disk,
    cmd.ReconfigureVm: reconfigure_vm,
    cmd.AttachNic: attach_nic,
    cmd.DetachNic: detach_nic,
    cmd.PowerOnVm: power_on_vm,
    cmd.PowerOffVm: power_off_vm,
    cmd.DestroyVm: destroy_vm,
    cmd.AttachDisk: attach_disk,
    cmd.DetachDisk: detach_disk,
    cmd.ExtendDisk: extend_disk,
    cmd.DeleteDisk: delete_disk,
    cmd.DeleteTemplate: delete_template,
}


def handlers(agent: Agent) -> Handlers:
    """The registry, with the agent bound; every handler first checks the command's zone."""

    def bind(handler):
        @functools.wraps(handler)
        async def bound(command, ctx):
            agent.check_zone(command)
            return await handler(command, ctx, agent)

        return bound

    return {message: bind(handler) for message, handler in HANDLERS_OF_AGENT.items()}
