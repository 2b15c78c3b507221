"""What every storage handler shares: its settings and the way it talks to the agent."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contracts.agent import AgentCommand
from contracts.errors import ErrorCode
from contracts.events import ResourceStateChanged
from contracts.topology import STORAGE_REPLIES
from shared.db import awaited
from shared.errors import DomainError
from shared.identity import account_scope
from shared.messaging import HandlerContext
from shared.reconcile import Reconciliation


@dataclass(frozen=True)
class Storage:
    overprovisioning: float = 2.0
    reconcile: Reconciliation | None = None  # None: inventory syncs are recorded, not reconciled


async def call_agent(
    ctx: HandlerContext, command: AgentCommand, operation: str, resource_id: uuid.UUID, **detail
):
    """Send an agent command whose reply comes back to this service, and remember what it was for."""
    await awaited.send(
        ctx, command, reply_to=STORAGE_REPLIES.name, operation=operation, resource_id=resource_id, **detail
    )


def require_owner(ctx: HandlerContext, owner: uuid.UUID | None, what: str) -> None:
    """A user acts only on its own account's resources (admins and services on any)."""
    scope = account_scope(ctx.envelope.actor)
    if scope is not None and owner != scope:
        raise DomainError(
            ErrorCode.ACCOUNT_ERROR, f"account {ctx.envelope.actor.account_id} may not use {what}"
        )


def state_changed(
    ctx: HandlerContext,
    resource_type: str,
    resource_id: uuid.UUID,
    old: str | None,
    new: str,
    reason: str | None = None,
) -> None:
    ctx.emit(
        ResourceStateChanged(
            resource_type=resource_type, resource_id=resource_id, old_state=old, new_state=new, reason=reason
        )
    )
