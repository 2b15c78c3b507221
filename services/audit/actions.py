"""What the CloudStack republish remembers between messages, in the ingest transaction.

CloudStack's texts and keys need more than one ActionEvent tells: every phase repeats the
action's description (its first phase's), the first phase of an action that creates its entity
is preceded by ``Created``, a VM snapshot's events go under its VM, and when a job's main action
(its first, e.g. a deployment's ``VM.CREATE``) fails, every action the job left open (the root
``VOLUME.CREATE`` of a failed deployment) is closed with ``Error while ...``, once. An action is
a job's event type on one resource (``cloudstack_actions``); a closing that comes after the
action was closed is not sent again.
"""

from __future__ import annotations

import json
import uuid

import asyncpg

from services.audit.cloudstack import (
    CLOSING,
    Action,
    CloudStackEvent,
    aborted,
    cloudstack_type,
    to_cloudstack,
)
from services.audit.rows import EventRow

# Messages that name a VM snapshot and its VM (planner's; the agent's snapshot ids are vSphere's).
_SNAPSHOT_OF_VM = {"CreateVmSnapshot", "CreateVmSnapshotSucceeded", "RevertToVmSnapshotSucceeded"}
_ADOPTED = "ImportVirtualMachineSucceeded"

_REMEMBER = """
    INSERT INTO cloudstack_actions (correlation_id, event_type, resource_id, resource_type, resource_name,
                                    account_id, user_id, description, closed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT DO NOTHING
    RETURNING id"""
_CLOSE = """
    UPDATE cloudstack_actions SET closed = true, updated = now()
    WHERE correlation_id = $1 AND event_type = $2 AND resource_id = $3 AND NOT closed
    RETURNING id, description"""
_TOUCH = """
    UPDATE cloudstack_actions SET updated = now()
    WHERE correlation_id = $1 AND event_type = $2 AND resource_id = $3
    RETURNING id, description"""
_IS_MAIN = "SELECT min(id) = $2 FROM cloudstack_actions WHERE correlation_id = $1"
_CLOSE_THE_REST = """
    UPDATE cloudstack_actions SET closed = true, updated = now()
    WHERE correlation_id = $1 AND NOT closed
    RETURNING event_type, resource_id, resource_type, account_id, user_id, description"""


def _uuid(value) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def vm_snapshots_named(rows: list[EventRow]) -> dict[uuid.UUID, uuid.UUID]:
    """VM snapshot id -> VM id, from the messages of the batch that say so."""
    found: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows:
        if row.type not in _SNAPSHOT_OF_VM and row.type != _ADOPTED:
            continue
        payload = json.loads(row.payload)
        vm = _uuid(payload.get("vm_id"))
        if vm is None:
            continue
        if row.type == _ADOPTED:
            snapshots = payload.get("vm_snapshot_ids") or []
        else:
            snapshots = [payload.get("vm_snapshot_id")]
        for snapshot in filter(None, map(_uuid, snapshots)):
            found[snapshot] = vm
    return found


def phase_of(row: EventRow) -> Action:
    return Action(
        message_id=row.message_id,
        event_type=row.event_type,
        state=row.state,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        text=row.description or "",
        occurred_at=row.occurred_at,
        account_id=row.account_id,
        user_id=row.actor_user_id,
    )


async def republish(conn: asyncpg.Connection, rows: list[EventRow]) -> list[CloudStackEvent]:
    """The CloudStack events of newly stored rows, in their order (only ActionEvents have any)."""
    parents = vm_snapshots_named(rows)
    if parents:
        await conn.execute(
            """INSERT INTO cloudstack_vm_snapshots (vm_snapshot_id, vm_id)
               SELECT * FROM unnest($1::uuid[], $2::uuid[])
               ON CONFLICT (vm_snapshot_id) DO UPDATE SET vm_id = excluded.vm_id, updated = now()""",
            list(parents),
            list(parents.values()),
        )
    events: list[CloudStackEvent] = []
    for row in rows:
        if row.type != "ActionEvent" or row.event_type is None:
            continue
        action = phase_of(row)
        if cloudstack_type(action.event_type, action.resource_type) == "VmSnapshot" and action.resource_id:
            vm = await conn.fetchval(
                "SELECT vm_id FROM cloudstack_vm_snapshots WHERE vm_snapshot_id = $1", action.resource_id
            )
            action = Action(**{**action.__dict__, "vm_id": vm})
        if row.correlation_id is None or row.resource_id is None:  # not an action we can follow
            events += to_cloudstack(action)
            continue
        known = await _remember(conn, row, action)
        if known is None:
            continue  # closed already (by its job's failure): CloudStack closes an action once
        action, action_id = known
        events += to_cloudstack(action)
        if action.state == "Failed" and await conn.fetchval(_IS_MAIN, row.correlation_id, action_id):
            left_open = await conn.fetch(_CLOSE_THE_REST, row.correlation_id)
            events += [aborted(_open_action(r, action), action) for r in left_open]
    return events


async def _remember(conn: asyncpg.Connection, row: EventRow, action: Action) -> tuple[Action, int] | None:
    """The phase with its action's description; None for a closing of an action already closed."""
    closing = action.state in CLOSING
    key = (row.correlation_id, row.event_type, row.resource_id)
    first = await conn.fetchrow(
        _REMEMBER,
        *key,
        row.resource_type,
        row.resource_name,
        row.account_id,
        row.actor_user_id,
        action.text,
        closing,
    )
    if first is not None:
        creates = action.event_type.endswith(".CREATE") and not closing
        return Action(**{**action.__dict__, "description": action.text, "creates": creates}), first["id"]
    known = await conn.fetchrow(_CLOSE if closing else _TOUCH, *key)
    if known is None:
        return None
    return Action(**{**action.__dict__, "description": known["description"]}), known["id"]


def _open_action(record: asyncpg.Record, cause: Action) -> Action:
    return Action(
        message_id=cause.message_id,
        event_type=record["event_type"],
        state="Started",
        resource_type=record["resource_type"],
        resource_id=record["resource_id"],
        text=record["description"],
        occurred_at=cause.occurred_at,
        account_id=record["account_id"],
        user_id=record["user_id"],
        description=record["description"],
    )
