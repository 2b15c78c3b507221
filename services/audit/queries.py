"""Reading the trail: filtered, paged event lists and the trail of one job (a deployment).

``scope`` is the only account the caller may see (None: every account): a record is that
account's when it names the account (an ActionEvent's owner) or ran on its behalf (the actor).
"""

from __future__ import annotations

import heapq
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from contracts.audit import AuditRecord, DeploymentTrail, GetDeploymentTrail, ListEvents, TrailEntry
from services.audit.rows import deep, unescape
from shared.errors import DomainError

RECORD_COLUMNS = ", ".join(f for f in AuditRecord.model_fields if f != "seq")
SELECT_RECORDS = f"SELECT id AS seq, {RECORD_COLUMNS}, nul_escaped FROM events"

# ListEvents filter -> SQL condition on its parameter
FILTERS = {
    "correlation_id": "correlation_id = {}",
    "resource_id": "resource_id = {}",
    "type": "type = {}",
    "event_type": "event_type = {}",
    "account_id": "account_id = {}",
    "since": "occurred_at >= {}",
    "until": "occurred_at < {}",
}


def record(row: asyncpg.Record) -> AuditRecord:
    fields = dict(row)
    if fields.pop("nul_escaped"):  # stored escaped: give back what was received
        fields = {k: unescape(v) if isinstance(v, str) else v for k, v in fields.items()}
        fields["payload"] = deep(fields["payload"], unescape)
    return AuditRecord(**fields)


SCOPE = "(account_id = {0} OR actor_account_id = {0})"


async def list_events(
    conn: asyncpg.Connection, query: ListEvents, scope: uuid.UUID | None = None
) -> tuple[int, list[AuditRecord]]:
    if query.since and query.until and query.since >= query.until:
        raise DomainError(431, "since must be before until")
    conditions, args = [], []
    for name, condition in FILTERS.items():
        value = getattr(query, name)
        if value is not None:
            args.append(value)
            conditions.append(condition.format(f"${len(args)}"))
    if scope is not None:
        args.append(scope)
        conditions.append(SCOPE.format(f"${len(args)}"))
    where = " AND ".join(conditions) or "TRUE"
    total = await conn.fetchval(f"SELECT count(*) FROM events WHERE {where}", *args)
    rows = await conn.fetch(
        f"""{SELECT_RECORDS} WHERE {where} ORDER BY occurred_at, id
            LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",
        *args,
        query.page_size,
        (query.page - 1) * query.page_size,
    )
    return total, [record(r) for r in rows]


async def deployment_trail(
    conn: asyncpg.Connection, query: GetDeploymentTrail, scope: uuid.UUID | None = None
) -> DeploymentTrail:
    rows = await conn.fetch(
        f"""{SELECT_RECORDS} WHERE correlation_id = $1 AND ($3::uuid IS NULL OR {SCOPE.format("$3")})
            ORDER BY occurred_at, id LIMIT $2""",
        query.correlation_id,
        query.limit + 1,
        scope,
    )
    records = [record(r) for r in rows[: query.limit]]
    return build_trail(query.correlation_id, records, truncated=len(rows) > query.limit)


# -- assembling a trail (pure) ---------------------------------------------------------------------


def causal_order(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """By time, except that no message comes before the message that caused it (clocks of
    different services disagree by a little)."""
    records = list(records)
    present = {r.message_id for r in records}
    children: dict[uuid.UUID, list[AuditRecord]] = defaultdict(list)
    ready: list[tuple[datetime, int, AuditRecord]] = []
    for r in records:
        if r.causation_id in present and r.causation_id != r.message_id:
            children[r.causation_id].append(r)
        else:
            ready.append((r.occurred_at, r.seq, r))
    heapq.heapify(ready)
    ordered: list[AuditRecord] = []
    while ready:
        _, _, r = heapq.heappop(ready)
        ordered.append(r)
        for child in children.pop(r.message_id, ()):
            heapq.heappush(ready, (child.occurred_at, child.seq, child))
    # a causation cycle (never produced by snapdeploy) still shows every message, at the end
    stranded = sorted((c for cs in children.values() for c in cs), key=lambda r: (r.occurred_at, r.seq))
    return ordered + stranded


def _ms(start: datetime, end: datetime) -> int:
    return max(0, round((end - start).total_seconds() * 1000))


def durations(records: list[AuditRecord]) -> dict[uuid.UUID, int]:
    """Duration per message id: commands and their replies, finished actions, vCenter tasks."""
    out: dict[uuid.UUID, int] = {}
    commands = {r.message_id: r for r in records if r.kind == "command"}
    action_start: dict[tuple[str | None, uuid.UUID | None], datetime] = {}
    for r in records:
        if r.kind == "reply" and r.causation_id in commands:
            took = _ms(commands[r.causation_id].occurred_at, r.occurred_at)
            out[r.message_id] = took
            out.setdefault(r.causation_id, took)
        elif r.type == "VcenterTask" and r.duration_ms is not None:
            out[r.message_id] = r.duration_ms
        elif r.event_type is not None:
            key = (r.event_type, r.resource_id)
            if r.state in ("Scheduled", "Started"):
                action_start.setdefault(key, r.occurred_at)
            elif key in action_start:
                out[r.message_id] = _ms(action_start[key], r.occurred_at)
    return out


def summary(r: AuditRecord) -> str:
    if r.event_type is not None:
        name = r.resource_name or (str(r.resource_id) if r.resource_id else "")
        return " ".join(p for p in (r.event_type, r.state, r.resource_type, name) if p)
    if r.type == "VcenterTask":
        parts = [r.task_name or "task", r.state or "", r.payload.get("entity_name") or r.task_entity or ""]
        if r.fault:
            parts.append(f"{r.fault}: {r.error_text or ''}".strip())
        return " ".join(p for p in parts if p)
    if r.kind == "reply" and r.error_text is not None:
        return f"{r.type} ({r.error_code}): {r.error_text}"
    return r.type


def _status(ordered: list[AuditRecord]) -> tuple[str, AuditRecord | None]:
    """The outcome: the terminal reply of the job's first command, else its last JobStatusChanged."""
    if not ordered:
        return "unknown", None
    first = next((r for r in ordered if r.kind == "command"), None)
    if first is not None:
        reply = next((r for r in ordered if r.kind == "reply" and r.causation_id == first.message_id), None)
        if reply is not None:
            return ("failed" if reply.type.endswith("Failed") else "succeeded"), reply
    job = [r for r in ordered if r.type == "JobStatusChanged" and r.payload.get("status") != "in_progress"]
    if job:
        return str(job[-1].payload.get("status")), job[-1]
    return "in_progress", None


def build_trail(correlation_id: uuid.UUID, records: list[AuditRecord], *, truncated: bool) -> DeploymentTrail:
    ordered = causal_order(records)
    took = durations(ordered)
    status, terminal = _status(ordered)
    error_code = error_text = None
    if status == "failed" and terminal is not None:
        error_code = terminal.error_code or terminal.payload.get("error_code")
        error_text = terminal.error_text or terminal.payload.get("error_text")
    started = ordered[0].occurred_at if ordered else None
    ended = max(r.occurred_at for r in ordered) if status in ("succeeded", "failed") else None
    return DeploymentTrail(
        correlation_id=correlation_id,
        status=status,
        started_at=started,
        ended_at=ended,
        duration_ms=_ms(started, ended) if started and ended else None,
        error_code=error_code,
        error_text=error_text,
        entries=[entry(r, took.get(r.message_id)) for r in ordered],
        truncated=truncated,
    )


def entry(r: AuditRecord, duration_ms: int | None) -> TrailEntry:
    shared: dict[str, Any] = {name: getattr(r, name) for name in _ENTRY_FIELDS}
    return TrailEntry(**shared, summary=summary(r), duration_ms=duration_ms)


_ENTRY_FIELDS = [name for name in TrailEntry.model_fields if name in AuditRecord.model_fields]
_ENTRY_FIELDS.remove("duration_ms")
