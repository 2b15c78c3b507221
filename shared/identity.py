"""The actor of a received message, decided from the broker's ``user_id`` (one place: the dispatcher).

- ``user_id`` is a snapdeploy service user: the envelope's ``actor`` is honoured (the api acting
  for an authenticated caller, a service acting for the job it runs).
- any other broker user: the actor is that user's principal, from the ``bus_principals`` table
  of this service's own schema; a message stating another actor is refused (531), and so is a
  message a producer may not send (events, replies, agent and between-services commands).

An envelope that states no actor (or the default, ``SYSTEM``) from a producer runs as its
principal. Queries are answered within the actor's account (``account_scope``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from contracts.catalogue import MessageSpec
from contracts.envelope import SYSTEM, Actor, Envelope
from contracts.errors import ErrorCode
from contracts.events import BusPrincipalChanged
from contracts.identity import producers_may_send
from contracts.topology import DIRECT_REPLY_TO, producer_queue_prefix
from shared.errors import DomainError
from shared.messaging import HandlerContext


def refused(text: str) -> DomainError:
    return DomainError(ErrorCode.ACCOUNT_ERROR, text)


@dataclass(frozen=True)
class Identity:
    service_users: frozenset[str]
    pool: asyncpg.Pool | None = None  # where principals are; None: only service users are heard

    async def resolve(
        self, user_id: str | None, envelope: Envelope, spec: MessageSpec, reply_to: str | None = None
    ) -> Envelope:
        """The envelope as it will be handled: its actor is the one the broker user may act as."""
        if user_id is not None and user_id in self.service_users:
            return envelope
        if user_id is None:
            raise refused("the message has no user_id: publish it with the user_id of your connection")
        if not producers_may_send(spec.model):
            raise refused(f"{envelope.type} is sent only by snapdeploy's services, not by {user_id}")
        if not self.may_reply_to(user_id, reply_to):
            raise refused(f"reply_to must be a queue of {user_id}'s own ({producer_queue_prefix(user_id)}*)")
        principal = await self.principal(user_id)
        if principal is None:
            raise refused(f"broker user {user_id} acts for no account (an admin registers it)")
        claimed = envelope.actor
        if claimed != SYSTEM and claimed != principal:
            raise refused(
                f"broker user {user_id} acts for account {principal.account_id} as {principal.role}; "
                f"the message claims account {claimed.account_id} as {claimed.role}"
            )
        return envelope.model_copy(update={"actor": principal})

    def may_reply_to(self, user_id: str | None, reply_to: str | None) -> bool:
        """A producer's answers go only to its own queues (else it could post into a service's)."""
        if reply_to is None or user_id in self.service_users:
            return True
        return user_id is not None and reply_to.startswith((producer_queue_prefix(user_id), DIRECT_REPLY_TO))

    async def principal(self, broker_user: str) -> Actor | None:
        if self.pool is None:
            return None
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT account_id, role FROM bus_principals WHERE broker_user = $1 AND NOT removed",
                broker_user,
            )
        return Actor(account_id=row["account_id"], role=row["role"]) if row else None


def account_scope(actor: Actor) -> uuid.UUID | None:
    """The only account a query may show; None: every account (admins, and services for their jobs)."""
    if actor.role in ("admin", "service"):
        return None
    return actor.account_id or uuid.UUID(int=0)  # a user of no account sees nothing


# -- the principals table, in every service's schema ------------------------------------------------


async def change_principal(
    conn: asyncpg.Connection, broker_user: str, account_id: uuid.UUID | None, role: str | None
) -> BusPrincipalChanged:
    """The owner's write (``account_id`` None: removed); the event that tells every other service."""
    version = await conn.fetchval(
        """INSERT INTO bus_principals (broker_user, account_id, role, removed, version)
           VALUES ($1, $2, $3, $2::uuid IS NULL, 1)
           ON CONFLICT (broker_user) DO UPDATE SET account_id = excluded.account_id, role = excluded.role,
               removed = excluded.removed, version = bus_principals.version + 1, changed_at = now()
           RETURNING version""",
        broker_user,
        account_id,
        role,
    )
    return BusPrincipalChanged(
        broker_user=broker_user, account_id=account_id, role=role, removed=account_id is None, version=version
    )


async def bus_principal_changed(event: BusPrincipalChanged, ctx: HandlerContext) -> None:
    """A copy of the owner's row; an older version arriving late changes nothing."""
    await ctx.conn.execute(
        """INSERT INTO bus_principals (broker_user, account_id, role, removed, version)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (broker_user) DO UPDATE SET account_id = excluded.account_id, role = excluded.role,
               removed = excluded.removed, version = excluded.version, changed_at = now()
           WHERE bus_principals.version < excluded.version""",
        event.broker_user,
        event.account_id,
        event.role,
        event.removed,
        event.version,
    )
