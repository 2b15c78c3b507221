"""Commands of the planner: deployments (the saga), VM lifecycle, VM snapshots, offerings."""

from __future__ import annotations

import uuid

from pydantic import Field, model_validator

from contracts.base import Command, Succeeded


class PlannerCommand(Command):
    service = "planner"


class DeployVirtualMachine(PlannerCommand):
    """Deploy a VM from a VM snapshot (``vm_snapshot_id``) or a template (``template_id``): exactly one.

    From a snapshot, ``zone_id`` and ``template_id`` are refused and ``service_offering_id`` is
    required; the vCPU count of the offering must match the snapshot's."""

    vm_id: uuid.UUID = Field(
        description="Id the new instance will have (chosen by the caller; idempotency key)."
    )
    vm_snapshot_id: uuid.UUID | None = None
    template_id: uuid.UUID | None = None
    zone_id: str | None = None
    service_offering_id: uuid.UUID | None = None
    network_ids: list[uuid.UUID] = Field(default_factory=list)
    host_id: uuid.UUID | None = None
    name: str | None = None
    display_name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DeployVirtualMachine:
        if (self.vm_snapshot_id is None) == (self.template_id is None):
            raise ValueError("exactly one of vm_snapshot_id and template_id is required")
        return self


class DeployVirtualMachineSucceeded(Succeeded):
    """The VM is running."""

    vm_id: uuid.UUID
    name: str
    host_id: uuid.UUID
    root_volume_id: uuid.UUID


class StartVirtualMachine(PlannerCommand):
    """Power a stopped VM on."""

    vm_id: uuid.UUID


class StartVirtualMachineSucceeded(Succeeded):
    """The VM is running."""

    vm_id: uuid.UUID


class StopVirtualMachine(PlannerCommand):
    """Power a running VM off."""

    vm_id: uuid.UUID
    forced: bool = False


class StopVirtualMachineSucceeded(Succeeded):
    """The VM is stopped."""

    vm_id: uuid.UUID


class DestroyVirtualMachine(PlannerCommand):
    """Destroy a VM; with ``expunge`` its vCenter VM and root volume are removed at once."""

    vm_id: uuid.UUID
    expunge: bool = False


class DestroyVirtualMachineSucceeded(Succeeded):
    """The VM is destroyed (or expunged)."""

    vm_id: uuid.UUID
    state: str


class CreateVmSnapshot(PlannerCommand):
    """Take a VM snapshot; its parent is the VM's current snapshot, so snapshots form a tree."""

    vm_snapshot_id: uuid.UUID = Field(description="Id the snapshot will have (idempotency key).")
    vm_id: uuid.UUID
    name: str
    description: str = ""
    memory: bool = False


class CreateVmSnapshotSucceeded(Succeeded):
    """The VM snapshot exists."""

    vm_snapshot_id: uuid.UUID
    vm_id: uuid.UUID
    parent_id: uuid.UUID | None


class DeleteVmSnapshot(PlannerCommand):
    """Delete a VM snapshot (its children stay)."""

    vm_snapshot_id: uuid.UUID


class DeleteVmSnapshotSucceeded(Succeeded):
    """The VM snapshot is gone."""

    vm_snapshot_id: uuid.UUID


class ImportVirtualMachine(PlannerCommand):
    """Adopt a VM found in vCenter (with its snapshot tree) into an account."""

    zone_id: str
    vm_ref: str
    account_id: uuid.UUID
    service_offering_id: uuid.UUID | None = None


class ImportVirtualMachineSucceeded(Succeeded):
    """The VM and its snapshots are owned by the account."""

    vm_id: uuid.UUID
    vm_snapshot_ids: list[uuid.UUID]


class CreateServiceOffering(PlannerCommand):
    """Admin: a compute offering (vCPUs, CPU speed, memory)."""

    offering_id: uuid.UUID
    name: str
    cpu_number: int = Field(ge=1)
    cpu_speed_mhz: int = Field(ge=1)
    memory_mb: int = Field(ge=1)


class CreateServiceOfferingSucceeded(Succeeded):
    """The offering exists."""

    offering_id: uuid.UUID
