"""Transactional outbox: messages are rows written in the handler's transaction; a relay
publishes them with confirms and deletes what the broker confirmed.

The transaction that adds rows also NOTIFYs ``snapdeploy_outbox_<schema>`` (delivered at
commit): every replica's relay LISTENs on it, so a relay wakes for rows any replica wrote and
an idle relay makes no query at all (it polls only while it cannot listen).

A crash after commit and before publish loses nothing: the rows are there at restart. A
crash after publish and before the delete publishes a row twice; its ``message_id`` is the
same, and consumers' inboxes drop the second copy. Several replicas relay at once without
publishing a row twice at the same time (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import asyncpg
import structlog

from shared.messaging import Outgoing, awaited_first
from shared.metrics import Metrics

log = structlog.get_logger(__name__)


async def add(conn: asyncpg.Connection, messages: Iterable[Outgoing]) -> int:
    """Write the messages as outbox rows, the awaited first, and NOTIFY the relays: one statement."""
    rows = [
        (
            out.envelope.message_id,
            out.exchange,
            out.routing_key,
            out.envelope.type,
            out.envelope.correlation_id,
            out.reply_to,
            out.mandatory,
            out.envelope.to_bytes(),
        )
        for out in awaited_first(list(messages))
    ]
    if rows:
        await conn.execute(
            """WITH added AS (
                   INSERT INTO outbox
                       (message_id, exchange, routing_key, type, correlation_id, reply_to, mandatory, body)
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[],
                                        $6::text[], $7::boolean[], $8::bytea[])
                   RETURNING 1
               )
               SELECT pg_notify($9 || current_schema(), '') FROM (SELECT FROM added LIMIT 1) AS one""",
            *(list(column) for column in zip(*rows, strict=True)),
            CHANNEL_PREFIX,
        )
    return len(rows)


CHANNEL_PREFIX = "snapdeploy_outbox_"


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

    def wake(self) -> None:
        """Publish now (this process has just committed rows, or may have).

        While listening, the commit's own NOTIFY wakes the relay a moment later: waking it here
        too would make a second, empty pass (a transaction) for every handler."""
        if self._listener is not None:
            return
        self._wake.set()
        self._active()  # no NOTIFY to tell whether rows were written: assume so

    def _active(self) -> None:
        for event in self._activity:
            event.set()

    def activity(self) -> asyncio.Event:
        """An event of the caller's own, set whenever rows are written; the caller clears it."""
        event = asyncio.Event()
        self._activity.append(event)
        return event

    async def run(self) -> None:
        try:
            await self._relay()
        finally:
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

    def _notified(self, *_args) -> None:
        self._wake.set()
        self._active()

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

        The delete commits without waiting for its WAL flush: should the database lose it in a
        crash, those rows are published again, which consumers' inboxes already absorb (the
        case of a relay killed between publish and delete)."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, message_id, exchange, routing_key, type, correlation_id, reply_to, mandatory,
                          body
                   FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
            )
            if not rows:
                self.metrics.outbox_pending.set(0)
                return 0
            results = await asyncio.gather(*(self._publish(r) for r in rows), return_exceptions=True)
            confirmed = [r["id"] for r, result in zip(rows, results, strict=True) if result is None]
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", confirmed)
        self.metrics.published.inc(len(confirmed))
        errors = [r for r in results if isinstance(r, BaseException)]
        self.metrics.outbox_pending.set(len(rows) - len(confirmed))
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(rows)} outbox messages not confirmed: {errors[0]!r}")
        return len(confirmed)

    async def _publish(self, row: asyncpg.Record) -> None:
        """A row as it was written: its body is the envelope's bytes, its columns the properties."""
        correlation_id = row["correlation_id"]
        await self.bus.publish_raw(
            row["exchange"], row["routing_key"], row["body"], message_id=str(row["message_id"]),
            type=row["type"], correlation_id=str(correlation_id) if correlation_id else None,
            reply_to=row["reply_to"], mandatory=row["mandatory"],
        )  # fmt: skip

    async def drain(self, timeout: float) -> bool:
        """Publish everything pending (at shutdown); True when the outbox is empty."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
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
