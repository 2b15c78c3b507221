"""What the planner's handlers share: settings, and how they announce what happens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from contracts.errors import ErrorCode
from contracts.events import JobStatusChanged, ResourceStateChanged
from services.planner import domain, store
from shared.errors import DomainError
from shared.messaging import HandlerContext
from shared.reconcile import Reconciliation


@dataclass(frozen=True)
class Planner:
    cpu_overcommit: float = 1.0
    memory_overcommit: float = 1.0
    step_timeout: float = 300.0  # seconds a step may wait for its reply
    copy_timeout: float = 3600.0  # seeding and cloning move disk data: longer
    reconcile: Reconciliation | None = None  # None: inventory syncs are recorded, not reconciled
    # VM snapshots this planner has seen seeded: a deployment of one clones the seed, never the
    # snapshot itself, so it takes the configuration stored with the snapshot (it never changes)
    # instead of reading it from vCenter again. In memory: a restarted planner reads once more.
    seeded: set[uuid.UUID] = field(default_factory=set)


def vm_state(
    ctx: HandlerContext, vm_id: uuid.UUID, old: str | None, new: str, reason: str | None = None
) -> None:
    ctx.emit(
        ResourceStateChanged(
            resource_type="VirtualMachine", resource_id=vm_id, old_state=old, new_state=new, reason=reason
        )
    )


def job(
    ctx: HandlerContext,
    status: str,
    command: str,
    *,
    result: dict[str, Any] | None = None,
    error_code: int | None = None,
    error_text: str | None = None,
    steps_done: int | None = None,
    step: str | None = None,
) -> None:
    if ctx.envelope.correlation_id is None:
        return
    ctx.emit(
        JobStatusChanged(
            job_id=ctx.envelope.correlation_id,
            status=status,
            command=command,
            result=result,
            error_code=error_code,
            error_text=error_text,
            steps_done=steps_done,
            step=step,
        )
    )


def check_owner(ctx: HandlerContext, instance) -> None:
    """531 unless the caller may act on this instance, whatever its state."""
    actor = ctx.envelope.actor
    if not domain.may_use(actor.role, actor.account_id, instance["account_id"]):
        raise DomainError(
            ErrorCode.ACCOUNT_ERROR, f"account {actor.account_id} may not use VM {instance['name']}"
        )


async def owned_instance(ctx: HandlerContext, vm_id: uuid.UUID):
    """The live instance, if the caller may act on it (431 unknown, 531 another account's)."""
    instance = await store.instance(ctx.conn, vm_id)
    if instance is None or instance["state"] in ("Destroyed", "Expunged", "Error"):
        raise DomainError(ErrorCode.PARAM_ERROR, f"VM {vm_id} does not exist")
    check_owner(ctx, instance)
    return instance
