"""The ingest consumer: every command and event, stored in batches, acked only once committed.

Deliveries of ``audit.ingest`` are decoded as they arrive (a body that is not an envelope is
rejected to ``audit.ingest.dlq`` at once) and buffered. A batch is taken when ``batch_size``
deliveries are waiting or ``linger`` has passed since the batch loop started waiting; it is
inserted in one transaction with ``ON CONFLICT (message_id) DO NOTHING`` (a redelivered or
republished message is stored once), together with the CloudStack copies of the action events
that were new. After the commit the batch is acked, one ``multiple`` ack per channel.

Failures: a database that is unreachable keeps the batch unacked and retried with backoff (the
broker's delivery count does not grow while the database is down); a row the database refuses
(bad data) is found by storing the batch one by one, and only it goes to the DLQ. Deliveries
whose channel closed meanwhile are redelivered by the broker and deduplicated here.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from dataclasses import dataclass

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError
from prometheus_client import Counter, Histogram
from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.topology import AUDIT_INGEST
from services.audit import actions, cloudstack
from services.audit.rows import COLUMNS, SQL_TYPES, EventRow, to_row
from shared.bus.dispatcher import explain
from shared.metrics import Metrics

log = structlog.get_logger("audit.ingest")

# Data the database refuses whatever the retry: isolate the row, dead-letter it.
REFUSED = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.ProgramLimitExceededError,
)

# One round trip per batch: columns as arrays, unnested in delivery order.
INSERT = f"""
    INSERT INTO events ({", ".join(COLUMNS)})
    SELECT {", ".join(f"{c}::jsonb" if c == "payload" else c for c in COLUMNS)}
    FROM unnest({", ".join(f"${i}::{SQL_TYPES[c]}[]" for i, c in enumerate(COLUMNS, 1))})
         WITH ORDINALITY AS batch ({", ".join(COLUMNS)}, ord)
    ORDER BY ord
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id"""


async def as_principals(
    conn: asyncpg.Connection, rows: list[EventRow], service_users: frozenset[str]
) -> list:
    """A producer's message is recorded as acting for its principal, whatever its envelope says
    (the dispatcher runs it so); a service's as the actor it states."""
    producers = {r.broker_user for r in rows if r.broker_user and r.broker_user not in service_users}
    if not producers:
        return rows
    principals = {
        p["broker_user"]: p
        for p in await conn.fetch(
            """SELECT broker_user, account_id, role FROM bus_principals
               WHERE broker_user = ANY($1) AND NOT removed""",
            list(producers),
        )
    }
    out = []
    for row in rows:
        principal = principals.get(row.broker_user) if row.broker_user in producers else None
        if principal is not None:
            owner = row.account_id if row.account_id != row.actor_account_id else principal["account_id"]
            row = dataclasses.replace(
                row, actor_account_id=principal["account_id"], actor_role=principal["role"], account_id=owner
            )
        out.append(row)
    return out


async def insert_rows(conn: asyncpg.Connection, rows: list[EventRow]) -> set:
    """Insert what is new; returns the message ids that were."""
    columns = list(zip(*(row.values() for row in rows), strict=True))
    return {r["message_id"] for r in await conn.fetch(INSERT, *columns)}


class IngestMetrics:
    def __init__(self, metrics: Metrics):
        self.ingested = Counter(
            "snapdeploy_audit_ingested_total",
            "Messages the audit received, by outcome: stored, duplicate, rejected.",
            ["outcome"],
            registry=metrics.registry,
        )
        self.batch_size = Histogram(
            "snapdeploy_audit_batch_size",
            "Deliveries per ingest transaction.",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2000),
            registry=metrics.registry,
        )
        self.batch_seconds = Histogram(
            "snapdeploy_audit_batch_seconds", "Ingest transaction duration.", registry=metrics.registry
        )


@dataclass
class Pending:
    delivery: AbstractIncomingMessage
    row: EventRow
    settled: bool = False  # acked or rejected (a multiple ack settles a delivery without touching it)


def _channel(delivery: AbstractIncomingMessage):
    try:
        return delivery.channel
    except ChannelInvalidStateError:
        return None


async def _settle(settlement) -> None:
    try:
        await settlement
    except Exception as error:  # channel gone: the broker redelivers, the insert dedupes
        log.warning("could not settle delivery (will be redelivered)", error=repr(error))


async def finish(work, *, timeout: float) -> None:
    """Shutdown work, run to its end (within ``timeout``) even though the runtime cancels a job
    more than once while it stops."""
    task = asyncio.ensure_future(asyncio.wait_for(work, timeout))
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("shutdown work not finished", error=repr(task.exception()))


class Ingestor:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus,
        metrics: Metrics,
        *,
        batch_size: int = 500,
        linger: float = 0.05,
        prefetch: int = 1000,
        republish: bool = True,
        relay: cloudstack.CloudStackRelay | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        service_users: frozenset[str] = frozenset(),
    ):
        self.pool = pool
        self.service_users = service_users
        self.bus = bus
        self.metrics = IngestMetrics(metrics)
        self.batch_size = batch_size
        self.linger = linger
        self.prefetch = max(prefetch, batch_size)
        self.republish = republish
        self.relay = relay
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._buffer: list[Pending] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()

    # -- receiving ---------------------------------------------------------------------------------

    async def on_delivery(self, delivery: AbstractIncomingMessage) -> None:
        try:
            envelope = Envelope.model_validate_json(delivery.body)
        except ValidationError as error:
            await _settle(delivery.reject(requeue=False))
            self.metrics.ingested.labels("rejected").inc()
            log.warning(
                "not a snapdeploy envelope, rejected to the dead-letter queue",
                reason=explain(error),
                message_id=delivery.message_id,
                routing_key=delivery.routing_key,
            )
            return
        row = to_row(
            envelope,
            exchange=delivery.exchange or "",
            routing_key=delivery.routing_key or "",
            broker_user=delivery.user_id,
        )
        self._buffer.append(Pending(delivery, row))
        self._arrived.set()
        if len(self._buffer) >= self.batch_size:
            self._full.set()

    # -- the batch loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume and store until cancelled; then store what was received and stop."""
        consumer = await self._consume()
        log.info("ingest consuming", batch_size=self.batch_size, linger_ms=self.linger * 1000)
        batch: list[Pending] = []
        try:
            while True:
                await self._arrived.wait()
                if len(self._buffer) < self.batch_size:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.linger)
                batch = self._take()
                await self._commit(batch)
                batch = []
        finally:
            await finish(self._stop(consumer, batch), timeout=15)

    async def _stop(self, consumer, batch: list[Pending]) -> None:
        """Shutdown: no new deliveries; store what arrived (anything unacked is redelivered anyway)."""
        with contextlib.suppress(Exception):
            await consumer.cancel()
        leftover = [p for p in batch + self._take(all_of_it=True) if not p.settled]
        if leftover:
            await self._commit(leftover, retry=False)
        log.info("ingest stopped", stored_at_shutdown=len(leftover))

    async def _consume(self):
        delay = self.backoff_base
        while True:
            try:
                return await self.bus.consume(AUDIT_INGEST, self.on_delivery, prefetch=self.prefetch)
            except Exception as error:  # broker away at start: the robust connection comes back
                log.warning("cannot consume audit.ingest yet", error=repr(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    def _take(self, *, all_of_it: bool = False) -> list[Pending]:
        size = len(self._buffer) if all_of_it else self.batch_size
        batch, self._buffer = self._buffer[:size], self._buffer[size:]
        if not self._buffer:
            self._arrived.clear()
        if len(self._buffer) < self.batch_size:
            self._full.clear()
        return batch

    async def _commit(self, batch: list[Pending], *, retry: bool = True) -> None:
        delay = self.backoff_base
        while True:
            try:
                await self._store(batch)
                return
            except REFUSED as error:
                if len(batch) > 1:
                    for one in batch:  # find the row(s) the database refuses
                        await self._commit([one], retry=retry)
                    return
                batch[0].settled = True
                await _settle(batch[0].delivery.reject(requeue=False))
                self.metrics.ingested.labels("rejected").inc()
                log.error(
                    "database refused the message, rejected to the dead-letter queue",
                    message_id=str(batch[0].row.message_id),
                    type=batch[0].row.type,
                    error=repr(error),
                )
                return
            except Exception as error:
                if not retry or all(_channel(p.delivery) is None for p in batch):
                    log.warning("batch not stored; the broker redelivers it", error=repr(error))
                    return
                log.warning("batch not stored, will retry", error=repr(error), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)

    async def _store(self, batch: list[Pending]) -> None:
        started = time.perf_counter()
        unique = list({p.row.message_id: p.row for p in reversed(batch)}.values())[::-1]
        async with self.pool.acquire() as conn, conn.transaction():
            unique = await as_principals(conn, unique, self.service_users)
            new = await insert_rows(conn, unique)
            republished = []
            if self.republish:
                republished = await actions.republish(conn, [r for r in unique if r.message_id in new])
                await cloudstack.enqueue(conn, republished)
        await self._ack(batch)
        if republished and self.relay is not None:
            self.relay.wake()
        self.metrics.ingested.labels("stored").inc(len(new))
        self.metrics.ingested.labels("duplicate").inc(len(batch) - len(new))
        self.metrics.batch_size.observe(len(batch))
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        log.debug("batch stored", size=len(batch), new=len(new), republished=len(republished))

    async def _ack(self, batch: list[Pending]) -> None:
        """One ``multiple`` ack per channel up to the batch's last tag, unless a delivery still
        buffered has a lower tag on that channel (then each is acked alone). A batch of one (the
        search for a refused row) is acked alone too: an earlier one may be unsettled."""
        if len(batch) == 1:
            batch[0].settled = True
            await _settle(batch[0].delivery.ack())
            return
        last: dict[int, AbstractIncomingMessage] = {}
        for p in batch:
            p.settled = True
            channel = _channel(p.delivery)
            if channel is None:
                continue  # redelivered on the new channel and deduplicated
            top = last.get(id(channel))
            if top is None or p.delivery.delivery_tag > top.delivery_tag:
                last[id(channel)] = p.delivery
        waiting = {}
        for p in self._buffer:
            channel = _channel(p.delivery)
            if channel is not None:
                tag = waiting.get(id(channel))
                waiting[id(channel)] = min(tag, p.delivery.delivery_tag) if tag else p.delivery.delivery_tag
        for key, top in last.items():
            lowest_waiting = waiting.get(key)
            if lowest_waiting is None or lowest_waiting > top.delivery_tag:
                await _settle(top.ack(multiple=True))
            else:
                for p in batch:
                    if (channel := _channel(p.delivery)) is not None and id(channel) == key:
                        await _settle(p.delivery.ack())
