"""Bus principals: which account and role a producer's RabbitMQ user acts as (admin commands).

The planner owns the mapping; ``BusPrincipalChanged`` carries each change to the services that
keep a copy (storage, audit). snapdeploy's own service users need none: their actor is honoured.
"""

from __future__ import annotations

from contracts import planner as cmd
from contracts.errors import ErrorCode
from shared.errors import DomainError
from shared.identity import change_principal
from shared.messaging import HandlerContext


def _admin_only(ctx: HandlerContext) -> None:
    if ctx.envelope.actor.role == "user":
        raise DomainError(ErrorCode.ACCOUNT_ERROR, "only an admin may manage bus principals")


async def register_bus_principal(command: cmd.RegisterBusPrincipal, ctx: HandlerContext):
    _admin_only(ctx)
    ctx.emit(await change_principal(ctx.conn, command.broker_user, command.account_id, command.role))
    return cmd.RegisterBusPrincipalSucceeded(
        broker_user=command.broker_user, account_id=command.account_id, role=command.role
    )


async def remove_bus_principal(command: cmd.RemoveBusPrincipal, ctx: HandlerContext):
    _admin_only(ctx)
    ctx.emit(await change_principal(ctx.conn, command.broker_user, None, None))
    return cmd.RemoveBusPrincipalSucceeded(broker_user=command.broker_user)
