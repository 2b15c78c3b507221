"""What command handlers use: bus queries (with the caller as actor), job submission, accounts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

from contracts import planner
from contracts.base import Command, Query
from contracts.envelope import Actor, Envelope
from contracts.errors import ErrorCode
from services.api import accounts
from services.api.errors import ApiError
from shared.bus.queries import QueryClient
from shared.db import outbox
from shared.db.outbox import OutboxRelay
from shared.errors import DomainError
from shared.messaging import command_out

SOURCE = "api"
AUTHORITY = Actor(role="service")  # the api's own look-ups (names of what objects refer to)


class ApiContext:
    def __init__(
        self,
        pool: asyncpg.Pool,
        queries: QueryClient,
        relay: OutboxRelay,
        keyring: accounts.Keyring,
        *,
        query_timeout: float = 10.0,
        sync_timeout: float = 60.0,
        session_timeout: float = 1800.0,
    ):
        self.session_timeout = session_timeout
        self.pool = pool
        self.queries = queries
        self.relay = relay
        self.keyring = keyring
        self.query_timeout = query_timeout
        self.sync_timeout = sync_timeout
        self._account_names: dict[uuid.UUID, str] = {}
        self._offerings: dict[uuid.UUID, Any] = {}

    async def ask(self, query: Query, actor: Actor) -> Any:
        """A query on the caller's behalf; the answering service's refusal keeps its code."""
        try:
            return await self.queries.ask(query, timeout=self.query_timeout, actor=actor)
        except DomainError as error:
            raise ApiError(error.code, error.text) from None
        except TimeoutError:
            raise ApiError(
                ErrorCode.INTERNAL_ERROR, f"{query.service} did not answer {query.type_name()} in time"
            ) from None

    async def submit(
        self,
        command: Command,
        *,
        cmd: str,
        actor: Actor,
        user_id: uuid.UUID,
        instance_type: str | None = None,
        instance_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Record the job and its command in one transaction (the relay publishes it); the job id.

        The command's actor always names the user who asked (``user_id``), whoever it acts for."""
        job_id = uuid.uuid4()
        if actor.user_id != user_id:
            actor = actor.model_copy(update={"user_id": user_id})
        envelope = Envelope.wrap(command, source=SOURCE, correlation_id=job_id, actor=actor)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """INSERT INTO async_jobs (uuid, command_id, account_uuid, user_uuid, cmd, instance_type,
                       instance_id) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                job_id,
                envelope.message_id,
                actor.account_id,
                user_id,
                cmd,
                instance_type,
                instance_id,
            )
            await outbox.add(conn, [command_out(envelope, command)])
        self.relay.wake()
        return job_id

    async def finished(self, job_id: uuid.UUID) -> asyncpg.Record:
        """Wait for a job's end (for commands CloudStack answers synchronously); 530 after the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.sync_timeout
        delay = 0.02
        while True:
            row = await self.pool.fetchrow("SELECT * FROM async_jobs WHERE uuid = $1", job_id)
            if row["status"] != 0:
                return row
            if loop.time() > deadline:
                raise ApiError(ErrorCode.INTERNAL_ERROR, f"job {job_id} did not finish in time; it goes on")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.25)

    async def run(self, command: Command, **kw) -> dict[str, Any]:
        """Submit and wait: the job's result object, or its error raised as ApiError."""
        row = await self.finished(await self.submit(command, **kw))
        if row["status"] == 2:
            raise ApiError(row["result_code"], (row["result"] or {}).get("errortext", "failed"))
        return row["result"] or {}

    async def account_by_name(self, name: str) -> tuple[uuid.UUID, str] | None:
        row = await self.pool.fetchrow(
            "SELECT uuid, name FROM accounts WHERE name = $1 AND state = 'enabled'", name
        )
        return (row["uuid"], row["name"]) if row else None

    async def account_names(self, wanted: Iterable[uuid.UUID | None] | None = None) -> dict[uuid.UUID, str]:
        """Account names by id. An account's name never changes, so they are kept: read again
        only when one ``wanted`` is not known yet (``None``: always read them)."""
        known = self._account_names
        wanted = None if wanted is None else {a for a in wanted if a is not None}
        if wanted is None or not wanted <= known.keys():
            async with self.pool.acquire() as conn:
                known = self._account_names = await accounts.account_names(conn)
        return known

    async def offerings(self, wanted: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Any]:
        """Service offerings by id. An offering never changes once made, so they are kept: asked
        for again only when one ``wanted`` is not known yet."""
        wanted = {o for o in wanted if o is not None}
        if not wanted <= self._offerings.keys():
            found = (await self.ask(planner.ListServiceOfferings(), AUTHORITY)).offerings
            self._offerings = {o.id: o for o in found}
        return self._offerings
