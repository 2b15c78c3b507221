"""Queries answered by the audit service, and the records they return."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import Query, QueryResult
from contracts.types import INT32_MAX, EventType, TypeName


class AuditRecord(BaseModel):
    """One recorded message: its envelope, the columns the audit reads from its payload, the payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(description="Ingest sequence: the tiebreaker of messages with one occurred_at.")
    message_id: uuid.UUID
    kind: Literal["command", "reply", "event"]
    type: str
    source: str
    routing_key: str
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    occurred_at: datetime
    recorded_at: datetime
    actor_account_id: uuid.UUID | None
    broker_user: str | None = Field(default=None, description="The RabbitMQ user that published it.")
    account_id: uuid.UUID | None = Field(description="The ActionEvent's account, else the actor's.")
    event_type: str | None = Field(description="ActionEvent: CloudStack event type, e.g. VM.CREATE.")
    state: str | None = Field(description="ActionEvent state, or the vCenter task state.")
    level: str | None
    resource_type: str | None
    resource_id: uuid.UUID | None
    resource_name: str | None
    description: str | None
    task_key: str | None = Field(description="VcenterTask: vCenter task key.")
    task_name: str | None = Field(description="VcenterTask: e.g. CloneVM_Task.")
    task_entity: str | None
    task_started_at: datetime | None
    task_completed_at: datetime | None
    duration_ms: int | None = Field(description="VcenterTask duration.")
    fault: str | None = Field(description="vSphere fault of a failed task or command.")
    error_code: int | None
    error_text: str | None = Field(
        description="Reason of a <Command>Failed reply, or a task's fault message."
    )
    payload: dict[str, Any]


class ListEvents(Query):
    """Recorded messages filtered by job, resource, type, account or time range, oldest first, paged."""

    service = "audit"

    correlation_id: uuid.UUID | None = None
    resource_id: uuid.UUID | None = None
    type: TypeName | None = None
    event_type: EventType | None = None
    account_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = Field(default=1, ge=1, le=INT32_MAX)
    page_size: int = Field(default=100, ge=1, le=1000)


class ListEventsResult(QueryResult):
    """One page of recorded messages."""

    total: int
    items: list[dict[str, Any]] = Field(description="AuditRecord objects, oldest first.")


class GetDeploymentTrail(Query):
    """The complete trail of one job (a deployment): commands, replies, action events and vCenter tasks."""

    service = "audit"

    correlation_id: uuid.UUID = Field(description="The job.")
    limit: int = Field(default=5000, ge=1, le=50000, description="Most entries returned.")


class TrailEntry(BaseModel):
    """One message of a job's trail with its duration: a command until its reply, an action from its
    first Scheduled/Started to its Completed/Failed, a vCenter task as vCenter measured it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int
    message_id: uuid.UUID
    kind: Literal["command", "reply", "event"]
    type: str
    source: str
    occurred_at: datetime
    causation_id: uuid.UUID | None
    summary: str = Field(description="One line for people, e.g. 'VM.CREATE Completed VirtualMachine web-1'.")
    event_type: str | None
    state: str | None
    resource_type: str | None
    resource_id: uuid.UUID | None
    resource_name: str | None
    task_name: str | None
    duration_ms: int | None
    error_code: int | None
    error_text: str | None
    fault: str | None


class DeploymentTrail(QueryResult):
    """A job's trail in causal order (a message after the one that caused it, else by time), its outcome
    from the first command's terminal reply (or the job's last status), and its overall duration."""

    correlation_id: uuid.UUID
    status: Literal["unknown", "in_progress", "succeeded", "failed"]
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    error_code: int | None
    error_text: str | None = Field(description="Why the job failed.")
    entries: list[TrailEntry]
    truncated: bool = Field(description="More entries exist than the limit returned.")
