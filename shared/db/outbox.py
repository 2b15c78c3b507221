"""Transactional outbox: messages are rows written in the handler's transaction; a relay
publishes them with confirms and deletes what the broker confirmed.

The transaction that adds rows also NOTIFYs ``snapdeploy_outbox_<schema>`` (delivered at
commit): every replica's relay LISTENs on it, so a relay wakes for rows any replica wrote and
an idle relay makes no query at all (it polls only while it cannot listen).

A handler's rows go out faster: written *claimed* (``claim=True``), they are published by the
writer itself the moment its transaction commits (``OutboxRelay.publish_claimed``), from the
bytes it already holds, with no wake-up and no query in between. Their NOTIFY says so:
relays leave claimed rows alone and look again once the claim has run out (``CLAIM_SECONDS``):
what a writer never published (it died, or was cancelled between its commit and its publish)
is then anyone's. A claimed row that could not be published is handed to the writer's relay.

A crash after commit and before publish loses nothing: the rows are there at restart. A
crash after publish and before the delete publishes a row twice; its ``message_id`` is the
same, and consumers' inboxes drop the second copy. Several replicas relay at once without
publishing a row twice at the same time (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
import structlog

from shared.messaging import Outgoing, awaited_first
from shared.metrics import Metrics

log = structlog.get_logger(__name__)

CHANNEL_PREFIX = "snapdeploy_outbox_"
# How long a writer's claim on the rows it publishes itself keeps other relays off them.
CLAIM_SECONDS = 5.0
# The payload of the NOTIFY of claimed rows (relays leave them to their writer).
CLAIMED = "claimed"


@dataclass(frozen=True)
class Row:
    """An outbox row as written: its id, where it goes, and the envelope's bytes."""

    id: int
    exchange: str
    routing_key: str
    body: bytes
    message_id: uuid.UUID
    type: str
    correlation_id: uuid.UUID | None
    reply_to: str | None
    mandatory: bool


async def add(conn: asyncpg.Connection, messages: Iterable[Outgoing], *, claim: bool = False) -> list[Row]:
    """Write the messages as outbox rows, the awaited first, and NOTIFY the relays: one statement.

    ``claim``: the caller publishes them itself once committed (``OutboxRelay.publish_claimed``)."""
    ordered = awaited_first(list(messages))
    if not ordered:
        return []
    bodies = [out.envelope.to_bytes() for out in ordered]
    ids = await conn.fetch(
        """WITH added AS (
               INSERT INTO outbox (message_id, exchange, routing_key, type, correlation_id, reply_to,
                                   mandatory, body, claimed_until)
               SELECT *, CASE WHEN $11 THEN now() + make_interval(secs => $12) END
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                           $7::boolean[], $8::bytea[])
               RETURNING id
           ),
           notified AS (SELECT pg_notify($9 || current_schema(), $10) FROM (SELECT FROM added LIMIT 1) AS one)
           SELECT id FROM added WHERE (SELECT count(*) FROM notified) >= 0 ORDER BY id""",
        [out.envelope.message_id for out in ordered],
        [out.exchange for out in ordered],
        [out.routing_key for out in ordered],
        [out.envelope.type for out in ordered],
        [out.envelope.correlation_id for out in ordered],
        [out.reply_to for out in ordered],
        [out.mandatory for out in ordered],
        bodies,
        CHANNEL_PREFIX,
        CLAIMED if claim else "",
        claim,
        CLAIM_SECONDS,
    )
    return [
        Row(r["id"], out.exchange, out.routing_key, body, out.envelope.message_id, out.envelope.type,
            out.envelope.correlation_id, out.reply_to, out.mandatory)
        for r, out, body in zip(ids, ordered, bodies, strict=True)
    ]  # fmt: skip


class OutboxRelay:
    """Publishes outbox rows: at once when woken (by this process or a NOTIFY); else it waits.

    ``activity()`` gives a job an event set whenever rows were written (a NOTIFY from this
    replica or another; without a listener, every wake counts): a periodic job with nothing to
    do waits on it instead of querying on a timer.
    """

    def __init__(
        self, pool: asyncpg.Pool, bus, *, batch: int = 200, poll_interval: float = 1.0, metrics: Metrics
    ):
        self.pool = pool
        self.bus = bus
        self.batch = batch
        self.poll_interval = poll_interval
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._activity: list[asyncio.Event] = []
        self._stopping = False
        self._listener: asyncpg.Connection | None = None
        self._channel: str | None = None
        self._publishing: set[asyncio.Task] = set()  # claimed rows on their way out
        self._handed_over: set[int] = set()  # claimed rows of ours that could not be published
        self._recheck: asyncio.TimerHandle | None = None
        self._claims_since_recheck = False

    def wake(self) -> None:
        """Publish now (this process has just committed rows, or may have).

        While listening, the commit's own NOTIFY wakes the relay a moment later: waking it here
        too would make a second, empty pass (a transaction) for every handler."""
        if self._listener is not None:
            return
        self._wake.set()
        self._active()  # no NOTIFY to tell whether rows were written: assume so

    def publish_claimed(self, rows: list[Row]) -> None:
        """Publish rows this process wrote claimed and has committed, now; what fails, the relay takes."""
        if not rows:
            return
        if self._listener is None:
            self._active()  # no NOTIFY to tell
        task = asyncio.get_running_loop().create_task(self._publish_claimed(rows))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    async def _publish_claimed(self, rows: list[Row]) -> None:
        confirmed, errors = await self._publish_all(rows)
        done = set(confirmed)
        left = [r.id for r in rows if r.id not in done]
        try:
            if confirmed:
                async with self.pool.acquire() as conn:
                    await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", confirmed)
        except Exception as error:  # published but still there: the relay publishes them again
            log.warning("outbox: published rows not deleted", error=repr(error))
            left = [r.id for r in rows]
        self.metrics.published.inc(len(confirmed))
        if left:
            log.warning("outbox: claimed rows left to the relay", rows=len(left), error=repr(errors[:1]))
            self._handed_over.update(left)
            self._wake.set()

    def _active(self) -> None:
        for event in self._activity:
            event.set()

    def activity(self) -> asyncio.Event:
        """An event of the caller's own, set whenever rows are written; the caller clears it."""
        event = asyncio.Event()
        self._activity.append(event)
        return event

    async def run(self) -> None:
        # rows a writer claimed just before it died (this process, before a restart, or another)
        self._look_again_later()
        try:
            await self._relay()
        finally:
            if self._recheck is not None:
                self._recheck.cancel()
            # the pool cannot close while the listening connection is out: give it back even
            # when the relay is cancelled
            await asyncio.shield(self._unlisten())

    async def _relay(self) -> None:
        failures = 0
        while not self._stopping:
            if self._listener is None:
                await self._listen()
            # Cleared before the pass, not after: a wake-up during the pass (a row committed after
            # its SELECT) keeps the event set, so that row goes out now, not a poll interval later.
            self._wake.clear()
            try:
                published = await self.publish_pending()
                failures = 0
            except Exception as error:
                failures += 1
                delay = min(0.2 * 2**failures, 10.0)
                log.warning("outbox relay pass failed", error=repr(error), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            if published < self.batch:
                # listening: wait for a NOTIFY; not listening (yet): poll
                timeout = None if self._listener is not None else self.poll_interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def _listen(self) -> None:
        """Hold one pooled connection LISTENing on this schema's channel (best effort: else poll)."""
        try:
            conn = await self.pool.acquire()
        except Exception as error:
            log.warning("outbox relay cannot listen, polling", error=repr(error))
            return
        try:
            channel = CHANNEL_PREFIX + await conn.fetchval("SELECT current_schema()")
            await conn.add_listener(channel, self._notified)
            conn.add_termination_listener(self._lost)
        except Exception as error:
            log.warning("outbox relay cannot listen, polling", error=repr(error))
            await self.pool.release(conn)
            return
        self._listener, self._channel = conn, channel

    def _notified(self, _conn, _pid, _channel, payload: str) -> None:
        self._active()
        if payload == CLAIMED:
            # Claimed rows: the writer publishes them (this process's publish_claimed, or
            # another replica's); a pass after the claim takes what a writer never got to (it
            # died, or was cancelled between its commit and publish_claimed).
            self._look_again_later()
            return
        self._wake.set()

    def _look_again_later(self) -> None:
        """A pass once the claims seen so far have run out (and again for claims seen meanwhile)."""
        if self._recheck is not None:
            self._claims_since_recheck = True
            return
        self._recheck = asyncio.get_running_loop().call_later(CLAIM_SECONDS + 0.5, self._look_again)

    def _look_again(self) -> None:
        self._recheck = None
        self._wake.set()
        if self._claims_since_recheck:
            self._claims_since_recheck = False
            self._look_again_later()

    def _lost(self, conn: asyncpg.Connection) -> None:
        if self._listener is conn:
            self._listener = None  # polls, and listens again on its next pass
            asyncio.get_running_loop().create_task(self._give_back(conn))
        self.wake()

    async def _give_back(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            await self.pool.release(conn)

    async def _unlisten(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.remove_listener(self._channel, self._notified)
                await self.pool.release(conn)

    async def publish_pending(self) -> int:
        """One batch: publish, wait for every confirm, delete what was confirmed.

        Rows another writer claimed are left alone until the claim runs out. The delete commits
        without waiting for its WAL flush: should the database lose it in a crash, those rows are
        published again, which consumers' inboxes already absorb (the case of a relay killed
        between publish and delete)."""
        async with self.pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(
                """SELECT id, exchange, routing_key, body, message_id, type, correlation_id, reply_to,
                          mandatory
                   FROM outbox
                   WHERE claimed_until IS NULL OR claimed_until <= now() OR id = ANY($2::bigint[])
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
                list(self._handed_over),
            )
            if not records:
                self.metrics.outbox_pending.set(0)
                return 0
            rows = [Row(**dict(record)) for record in records]
            confirmed, errors = await self._publish_all(rows)
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", confirmed)
        self._handed_over.difference_update(confirmed)
        self.metrics.published.inc(len(confirmed))
        self.metrics.outbox_pending.set(len(rows) - len(confirmed))
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(rows)} outbox messages not confirmed: {errors[0]!r}")
        return len(confirmed)

    async def _publish_all(self, rows: list[Row]) -> tuple[list[int], list[BaseException]]:
        """Publish the rows at once; the ids the broker confirmed, and what went wrong with the rest."""
        results = await asyncio.gather(*(self._publish(r) for r in rows), return_exceptions=True)
        confirmed = [r.id for r, result in zip(rows, results, strict=True) if result is None]
        return confirmed, [result for result in results if isinstance(result, BaseException)]

    async def _publish(self, row: Row) -> None:
        """A row as it was written: its body is the envelope's bytes, its columns the properties."""
        await self.bus.publish_raw(
            row.exchange, row.routing_key, row.body, message_id=str(row.message_id), type=row.type,
            correlation_id=str(row.correlation_id) if row.correlation_id else None,
            reply_to=row.reply_to, mandatory=row.mandatory,
        )  # fmt: skip

    async def drain(self, timeout: float) -> bool:
        """Publish everything pending (at shutdown); True when the outbox is empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._publishing:
            await asyncio.wait(self._publishing, timeout=timeout)
        while loop.time() < deadline:
            try:
                if await self.publish_pending() == 0:
                    return True
            except Exception as error:
                log.warning("outbox drain pass failed", error=repr(error))
                await asyncio.sleep(0.2)
        return False

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
