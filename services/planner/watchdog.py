"""Late replies: a step past its deadline is sent again; after ``max_resends`` it fails (or, while
undoing, the undo is given up on and the next one runs)."""

from __future__ import annotations

import asyncio
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
    """Late replies: re-send the step's idempotent command; after ``max_resends``, the step fails."""
    while True:
        await asyncio.sleep(interval)
        try:
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
            runtime.relay.wake()
        except Exception as error:
            log.warning("watchdog pass failed", error=repr(error))
