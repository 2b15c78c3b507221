"""Service (compute) offerings, created by an admin."""

from __future__ import annotations

from contracts import planner as cmd
from contracts.errors import ErrorCode
from shared.errors import DomainError
from shared.messaging import HandlerContext


async def create_service_offering(command: cmd.CreateServiceOffering, ctx: HandlerContext):
    if ctx.envelope.actor.role == "user":
        raise DomainError(ErrorCode.ACCOUNT_ERROR, "only an admin may create service offerings")
    await ctx.conn.execute(
        """INSERT INTO service_offerings (uuid, name, cpu_number, cpu_speed_mhz, memory_mb)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uuid) DO NOTHING""",
        command.offering_id,
        command.name,
        command.cpu_number,
        command.cpu_speed_mhz,
        command.memory_mb,
    )
    return cmd.CreateServiceOfferingSucceeded(offering_id=command.offering_id)
