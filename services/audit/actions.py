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
from dataclasses import replace

import asyncpg

from contracts.topology import EVENTS
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
_ACCEPTED_COMMANDS = """
    SELECT message_id, payload::text AS payload FROM events
    WHERE message_id = ANY($1::uuid[]) AND type = 'CreateVmSnapshot' AND exchange = 'snapdeploy.commands'"""

Key = tuple[uuid.UUID, str, uuid.UUID]  # (job, event type, resource): one action

_REMEMBER = """
    INSERT INTO cloudstack_actions (correlation_id, event_type, resource_id, resource_type, resource_name,
                                    account_id, user_id, description)
    SELECT correlation_id, event_type, resource_id, resource_type, resource_name, account_id, user_id,
           description
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::uuid[], $7::uuid[],
                $8::text[])
         WITH ORDINALITY AS phase (correlation_id, event_type, resource_id, resource_type, resource_name,
                                   account_id, user_id, description, ord)
    ORDER BY ord
    ON CONFLICT DO NOTHING
    RETURNING correlation_id, event_type, resource_id"""
_KNOWN = """
    SELECT a.correlation_id, a.event_type, a.resource_id, a.id, a.description, a.closed
    FROM cloudstack_actions a
    JOIN unnest($1::uuid[], $2::text[], $3::uuid[]) AS k (correlation_id, event_type, resource_id)
      USING (correlation_id, event_type, resource_id)"""
_UPDATE = """
    UPDATE cloudstack_actions a SET closed = a.closed OR k.closed, updated = now()
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bool[])
         AS k (correlation_id, event_type, resource_id, closed)
    WHERE (a.correlation_id, a.event_type, a.resource_id) = (k.correlation_id, k.event_type, k.resource_id)"""
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
    """VM snapshot id -> VM id, from the replies of the batch that say so.

    Only replies on the events exchange count: no producer may publish there, so they are a
    service's word. A command says only what its sender asked (anyone may send one, an invalid or
    a refused one included): its snapshot is learnt once the planner acts on it (``accepted``)."""
    found: dict[uuid.UUID, uuid.UUID] = {}
    for row in rows:
        if (row.type not in _SNAPSHOT_OF_VM and row.type != _ADOPTED) or row.exchange != EVENTS.name:
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


def snapshots_started(rows: list[EventRow]) -> dict[uuid.UUID, uuid.UUID]:
    """The planner's ``VMSNAPSHOT.CREATE`` Started actions of the batch: the message id of the
    ``CreateVmSnapshot`` that caused each -> the snapshot id. The planner emits one only for a
    command it accepted, so the command's VM is then the snapshot's."""
    return {
        row.causation_id: row.resource_id
        for row in rows
        if row.type == "ActionEvent" and row.exchange == EVENTS.name and row.event_type == "VMSNAPSHOT.CREATE"
        and row.state == "Started" and row.causation_id and row.resource_id
    }  # fmt: skip


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
    """The CloudStack events of newly stored rows, in their order (only ActionEvents have any).

    A handful of statements per batch, whatever its size: ingest throughput depends on it."""
    await _learn_vm_snapshots(conn, rows)
    phases = [
        (row, phase_of(row)) for row in rows if row.type == "ActionEvent" and row.event_type is not None
    ]
    if not phases:
        return []
    parents = await _vms_of_snapshots(conn, [a for _, a in phases])
    followed = [(row, action) for row, action in phases if row.correlation_id and row.resource_id]
    keys = list(dict.fromkeys(_key(row) for row, _ in followed))
    first = await _remember(conn, [row for row, _ in followed])
    known = {_key_of(r): r for r in await conn.fetch(_KNOWN, *_columns(keys))} if keys else {}
    closed = {key: record["closed"] for key, record in known.items()}
    events: list[CloudStackEvent] = []
    failures: list[tuple[EventRow, Action, int]] = []
    for row, action in phases:
        if cloudstack_type(action.event_type, action.resource_type) == "VmSnapshot":
            action = replace(action, vm_id=parents.get(action.resource_id))
        if not (row.correlation_id and row.resource_id):  # not an action we can follow
            events += to_cloudstack(action)
            continue
        key = _key(row)
        closing = action.state in CLOSING
        if closing and closed[key]:
            continue  # closed already (by its job's failure): CloudStack closes an action once
        creates = first.pop(key, None) is not None and action.event_type.endswith(".CREATE") and not closing
        action = replace(action, description=known[key]["description"], creates=creates)
        closed[key] = closed[key] or closing
        events += to_cloudstack(action)
        if action.state == "Failed":
            failures.append((row, action, known[key]["id"]))
    if keys:
        await conn.execute(_UPDATE, *_columns(keys), [closed[key] for key in keys])
    for row, action, action_id in failures:
        if await conn.fetchval(_IS_MAIN, row.correlation_id, action_id):
            left_open = await conn.fetch(_CLOSE_THE_REST, row.correlation_id)
            events += [aborted(_open_action(r, action), action) for r in left_open]
    return events


def _key(row: EventRow) -> Key:
    return (row.correlation_id, row.event_type, row.resource_id)


def _key_of(record: asyncpg.Record) -> Key:
    return (record["correlation_id"], record["event_type"], record["resource_id"])


def _columns(keys: list[Key]) -> tuple[list, list, list]:
    return [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]


async def _remember(conn: asyncpg.Connection, rows: list[EventRow]) -> dict[Key, bool]:
    """Record the actions seen for the first time; their keys."""
    if not rows:
        return {}
    columns = [
        [r.correlation_id for r in rows], [r.event_type for r in rows], [r.resource_id for r in rows],
        [r.resource_type for r in rows], [r.resource_name for r in rows], [r.account_id for r in rows],
        [r.actor_user_id for r in rows], [r.description or "" for r in rows],
    ]  # fmt: skip
    return {_key_of(r): True for r in await conn.fetch(_REMEMBER, *columns)}


async def _learn_vm_snapshots(conn: asyncpg.Connection, rows: list[EventRow]) -> None:
    parents = vm_snapshots_named(rows)
    started = snapshots_started(rows)
    if started:  # the commands are stored already (this transaction, or an earlier one)
        for command in await conn.fetch(_ACCEPTED_COMMANDS, list(started)):
            payload = json.loads(command["payload"])
            vm, snapshot = _uuid(payload.get("vm_id")), _uuid(payload.get("vm_snapshot_id"))
            if vm is not None and snapshot == started[command["message_id"]]:
                parents.setdefault(snapshot, vm)
    if parents:
        await conn.execute(
            """INSERT INTO cloudstack_vm_snapshots (vm_snapshot_id, vm_id)
               SELECT * FROM unnest($1::uuid[], $2::uuid[])
               ON CONFLICT (vm_snapshot_id) DO UPDATE SET vm_id = excluded.vm_id, updated = now()""",
            list(parents),
            list(parents.values()),
        )


async def _vms_of_snapshots(conn: asyncpg.Connection, actions: list[Action]) -> dict[uuid.UUID, uuid.UUID]:
    snapshots = [
        a.resource_id
        for a in actions
        if a.resource_id and cloudstack_type(a.event_type, a.resource_type) == "VmSnapshot"
    ]
    if not snapshots:
        return {}
    found = await conn.fetch(
        "SELECT vm_snapshot_id, vm_id FROM cloudstack_vm_snapshots WHERE vm_snapshot_id = ANY($1::uuid[])",
        snapshots,
    )
    return {r["vm_snapshot_id"]: r["vm_id"] for r in found}


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
