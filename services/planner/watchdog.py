"""Late replies: a step past its deadline is sent again; after ``max_resends`` it fails (or, while
undoing, the undo is given up on and the next one runs)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime

import structlog

from contracts.envelope import Envelope
from services.planner import flows, saga, steps
from services.planner.common import Planner
from shared.db import outbox
from shared.messaging import HandlerContext

log = structlog.get_logger("planner")


async def run(runtime, *, planner: Planner, interval: float, max_resends: int) -> None:
    """Late replies: re-send the step's idempotent command; after ``max_resends``, the step fails.

    At most one pass per ``interval``, and only when a saga's deadline has come or something
    was written (every saga step writes its command to the outbox, here or on another replica):
    with no saga waiting for a reply, the watchdog makes no query at all.
    """
    activity = runtime.relay.activity()
    due: float | None = 0.0  # unknown at start: look once
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        if due is None or due > loop.time():
            wait = None if due is None else due - loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(activity.wait(), wait)
        activity.clear()
        try:
            due = await one_pass(runtime, planner=planner, max_resends=max_resends)
        except Exception as error:
            due = 0.0
            log.warning("watchdog pass failed", error=repr(error))


async def one_pass(runtime, *, planner: Planner, max_resends: int) -> float | None:
    """One pass; the loop time of the next deadline of a saga waiting for a reply (None: none waits).

    With no saga late (the usual case) a pass is one read: no transaction of its own, no write."""
    loop = asyncio.get_running_loop()
    async with runtime.pool.acquire() as conn:
        late, seconds = await saga.lateness(conn)
    if not late:
        return None if seconds is None else loop.time() + max(0.0, seconds)
    async with runtime.pool.acquire() as conn, conn.transaction():
        cause = Envelope(
            message_id=uuid.uuid4(),
            type="SagaWatchdog",
            schema_version=1,
            occurred_at=datetime.now(UTC),
            source="planner",
            payload={},
        )
        ctx = HandlerContext(cause, "planner", conn=conn)
        for row in await saga.overdue(conn):
            ctx.envelope = cause.model_copy(update={"correlation_id": row["job_id"]})
            if row["resends"] < max_resends:
                log.warning("step overdue, sending it again", kind=row["kind"], step=row["step"])
                await saga.resend(ctx, row)
            else:
                flow, process = flows.load(saga.Saga.of(row))
                await steps.timed_out(flow, process, ctx, planner)
        await outbox.add(conn, ctx.outgoing)
        seconds = await saga.next_deadline(conn)
    if ctx.outgoing:
        runtime.relay.wake()
    return None if seconds is None else loop.time() + max(0.0, seconds)
