"""Processes that span several replies (DESIGN section 4, resumable sagas).

A saga is a row: its kind and resource, the step it is at, and what it knows so far; the
command whose reply it awaits is remembered by ``shared.db.awaited``, as storage's are. Each
step commits with the command it sends (outbox), so a planner killed at any point resumes
from its last committed step: the reply waits in the durable queue. A step past its deadline
re-sends its (idempotent) command; after ``max_resends`` the saga fails.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from contracts.base import Command
from contracts.catalogue import CATALOGUE
from contracts.topology import PLANNER_REPLIES
from shared.db import awaited
from shared.messaging import HandlerContext


@dataclass
class Saga:
    """A saga row: ``model`` is the flow's typed state; ``completed`` the steps done, ``undo``
    the undos still to run, ``error`` why it failed. ``raw`` is ``data`` as stored (rows written
    before typed state hold the old flat dict: the flow's ``legacy`` reads those)."""

    kind: str
    resource_id: uuid.UUID
    step: str
    state: str = "running"
    model: Any = None
    completed: list[str] = field(default_factory=list)
    undo: list[str] = field(default_factory=list)
    error: Any = None
    job_id: uuid.UUID | None = None
    resends: int = 0
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: asyncpg.Record) -> Saga:
        raw = dict(row["data"])
        typed = raw.get("v") == VERSION
        return cls(
            kind=row["kind"],
            resource_id=row["resource_id"],
            step=row["step"],
            state=row["state"],
            completed=list(raw.get("completed", [])) if typed else [],
            undo=list(raw.get("undo", [])) if typed else [],
            error=raw.get("error") if typed else None,
            job_id=row["job_id"],
            resends=row["resends"],
            raw=raw,
        )

    @property
    def legacy(self) -> bool:
        return self.raw.get("v") != VERSION

    def data(self) -> dict[str, Any]:
        error = self.error
        if error is not None and not isinstance(error, dict):
            error = {"step": error.step, "code": error.code, "text": error.text, "fault": error.fault}
        return {
            "v": VERSION,
            "state": self.model.model_dump(mode="json"),
            "completed": self.completed,
            "undo": self.undo,
            "error": error,
        }


VERSION = 2  # data = {"v", "state" (the flow's model), "completed", "undo", "error"}


async def begin(ctx: HandlerContext, kind: str, resource_id: uuid.UUID, model: Any) -> Saga:
    saga = Saga(kind, resource_id, step="start", model=model, job_id=ctx.envelope.correlation_id)
    await ctx.conn.execute(
        """INSERT INTO sagas (kind, resource_id, job_id, state, step, data)
           VALUES ($1, $2, $3, 'running', 'start', $4)
           ON CONFLICT (kind, resource_id) DO UPDATE SET job_id = excluded.job_id, state = 'running',
               step = 'start', data = excluded.data, awaiting = NULL, error_code = NULL, error_text = NULL,
               resends = 0, updated = now()""",
        kind,
        resource_id,
        saga.job_id,
        saga.data(),
    )
    return saga


async def running(conn: asyncpg.Connection, kind: str, resource_id: uuid.UUID) -> Saga | None:
    """The saga on the resource if it is still going (row locked: a request that parks itself to
    wait for it cannot miss the answer given by a reply handled at the same moment)."""
    row = await conn.fetchrow(
        """SELECT * FROM sagas WHERE kind = $1 AND resource_id = $2 AND state IN ('running', 'compensating')
           FOR UPDATE""",
        kind,
        resource_id,
    )
    return Saga.of(row) if row else None


async def busy(conn: asyncpg.Connection, resource_id: uuid.UUID) -> str | None:
    """The kind of process running on a resource, if any."""
    return await conn.fetchval(
        "SELECT kind FROM sagas WHERE resource_id = $1 AND state IN ('running', 'compensating') LIMIT 1",
        resource_id,
    )


async def awaiting(conn: asyncpg.Connection, message_id: uuid.UUID | None) -> Saga | None:
    """The saga waiting for the reply to ``message_id`` (locked), if any.

    The saga row is locked before the awaited reply is taken, in the watchdog's order, so a
    reply and a re-send of the same step never wait for each other."""
    row = await conn.fetchrow(
        """SELECT s.* FROM awaited_replies a
           JOIN sagas s ON s.kind = a.operation AND s.resource_id = a.resource_id
           WHERE a.message_id = $1 AND s.state IN ('running', 'compensating')
           FOR UPDATE OF s""",
        message_id,
    )
    if row is None or await awaited.take(conn, message_id) is None:
        return None  # not awaited, ended, or the step was sent again meanwhile
    return Saga.of(row)


async def send(ctx: HandlerContext, saga: Saga, step: str, command: Command, *, timeout: float) -> None:
    """Move to ``step`` by sending ``command``; its reply comes back to the planner."""
    await awaited.send(
        ctx, command, reply_to=PLANNER_REPLIES.name, operation=saga.kind, resource_id=saga.resource_id,
        instead=True,
    )  # fmt: skip
    saga.step = step
    last = {
        "service": command.service,
        "type": command.type_name(),
        "payload": command.model_dump(mode="json"),
    }
    await ctx.conn.execute(
        """UPDATE sagas SET step = $3, state = $4, data = $5, awaiting = NULL, last_command = $6, resends = 0,
               deadline = now() + make_interval(secs => $7), updated = now()
           WHERE kind = $1 AND resource_id = $2""",
        saga.kind,
        saga.resource_id,
        step,
        saga.state,
        saga.data(),
        {**last, "timeout": timeout},
        timeout,
    )


async def finish(
    ctx: HandlerContext, saga: Saga, *, failed: bool = False, code: int | None = None, text: str | None = None
) -> None:
    saga.state = "failed" if failed else "done"
    await awaited.forget(ctx.conn, saga.kind, saga.resource_id)
    await ctx.conn.execute(
        """UPDATE sagas SET state = $3, data = $4, awaiting = NULL, deadline = NULL, error_code = $5,
               error_text = $6, updated = now() WHERE kind = $1 AND resource_id = $2""",
        saga.kind,
        saga.resource_id,
        saga.state,
        saga.data(),
        code,
        text,
    )


async def overdue(conn: asyncpg.Connection, limit: int = 20) -> list[asyncpg.Record]:
    """Sagas whose awaited reply is late (locked; each handled by one replica)."""
    return await conn.fetch(
        """SELECT * FROM sagas WHERE state IN ('running', 'compensating') AND deadline < now()
           ORDER BY deadline LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )


async def lateness(conn: asyncpg.Connection) -> tuple[bool, float | None]:
    """Whether a saga waiting for a reply is past its deadline, and the seconds until the earliest
    deadline (None: none waits); one read, nothing locked."""
    row = await conn.fetchrow(
        """SELECT bool_or(deadline < now()) AS late,
                  extract(epoch FROM min(deadline) - now())::float8 AS seconds
           FROM sagas WHERE state IN ('running', 'compensating')"""
    )
    return bool(row["late"]), row["seconds"]


async def next_deadline(conn: asyncpg.Connection) -> float | None:
    """Seconds until the earliest deadline of a saga waiting for a reply (None: none waits)."""
    return await conn.fetchval(
        """SELECT extract(epoch FROM min(deadline) - now())::float8 FROM sagas
           WHERE state IN ('running', 'compensating')"""
    )


async def resend(ctx: HandlerContext, row: asyncpg.Record) -> None:
    """Send the step's command again (a new message id; the command is idempotent)."""
    last = row["last_command"] if isinstance(row["last_command"], dict) else json.loads(row["last_command"])
    spec = CATALOGUE.get(last["service"], last["type"])
    kind, resource_id = row["kind"], row["resource_id"]
    await awaited.send(
        ctx,
        spec.model.model_validate(last["payload"]),
        reply_to=PLANNER_REPLIES.name,
        operation=kind,
        resource_id=resource_id,
        instead=True,  # a late reply to the first sending is not ours
    )
    await ctx.conn.execute(
        """UPDATE sagas SET resends = resends + 1, deadline = now() + make_interval(secs => $3),
               updated = now() WHERE kind = $1 AND resource_id = $2""",
        kind,
        resource_id,
        last["timeout"],
    )
