"""Events any service may emit (namespace ``events``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from contracts.base import Event
from contracts.vsphere import DatastoreInfo, HostInfo, NetworkInfo, VmInfo


class ActionEvent(Event):
    """Audit-grade record of a resource action, in CloudStack's vocabulary (``VM.CREATE`` ...)."""

    event_type: str = Field(description="CloudStack event type, e.g. VM.CREATE, VOLUME.CREATE, NIC.CREATE.")
    state: Literal["Scheduled", "Started", "Completed", "Failed"]
    level: Literal["INFO", "WARN", "ERROR"] = "INFO"
    resource_type: str | None = Field(
        default=None, description="CloudStack resource type, e.g. VirtualMachine, Volume, Nic, VmSnapshot."
    )
    resource_id: uuid.UUID | None = Field(default=None, description="None for an action on no one resource.")
    resource_name: str | None = None
    account_id: uuid.UUID | None = None
    description: str

    def routing_detail(self) -> str:
        return self.event_type.lower().replace(".", "_")


class VcenterTask(Event):
    """One vCenter task the agent ran, with its timing and fault."""

    zone_id: str
    task_key: str
    name: str = Field(description="e.g. CloneVM_Task, ReconfigVM_Task, PowerOnVM_Task.")
    entity: str | None = Field(default=None, description="Managed object the task ran on.")
    entity_name: str | None = None
    state: Literal["queued", "running", "success", "error"]
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    fault: str | None = None
    fault_message: str | None = None

    def routing_detail(self) -> str:
        return self.state


class InventorySynced(Event):
    """Everything the agent found in its zone."""

    zone_id: str
    datacenter: str
    hosts: list[HostInfo]
    datastores: list[DatastoreInfo]
    networks: list[NetworkInfo]
    vms: list[VmInfo]
    volume_disks: list[str] = Field(
        default_factory=list,
        description="Disk files in snapdeploy's volume folders "
        "('[ds1] snapdeploy-volumes/<volume id>.vmdk'), so that reconciliation finds those no volume owns.",
    )


class JobStatusChanged(Event):
    """Async job progress and result (CloudStack ``jobstatus`` 0 in progress, 1 succeeded, 2 failed)."""

    job_id: uuid.UUID
    status: Literal["in_progress", "succeeded", "failed"]
    command: str
    result: dict[str, Any] | None = None
    error_code: int | None = None
    error_text: str | None = None
    steps_done: int | None = Field(
        default=None, ge=0, description="Steps of the job's flow completed so far."
    )
    step: str | None = Field(default=None, description="The step under way, in words ('cloning').")


class ResourceStateChanged(Event):
    """A VM, volume or seeded template moved from one state to another."""

    resource_type: str
    resource_id: uuid.UUID
    old_state: str | None
    new_state: str
    reason: str | None = None


class BusPrincipalChanged(Event):
    """A RabbitMQ user now acts as an account and role on the bus (or, ``removed``, for no one).

    The planner owns the mapping (``RegisterBusPrincipal``, ``RemoveBusPrincipal``); every
    service that answers producers keeps a copy in its own schema. ``version`` grows with each
    change of one user, so a copy never goes back to an older state."""

    broker_user: str
    account_id: uuid.UUID | None
    role: Literal["admin", "user"] | None
    removed: bool = False
    version: int = Field(ge=1)


class QueryFailed(Event):
    """A query could not be answered (bad filter, unknown id); sent to the caller's reply-to."""

    query: str
    error_code: int
    error_text: str
