"""Audit query handlers, one per query type; the registry is at the end.

Ingest is not a handler: it is the batching consumer in ``ingest.py``. Queries arrive through
the shared dispatcher and get a read-only connection as ``ctx.conn``.
"""

from __future__ import annotations

from contracts.audit import DeploymentTrail, GetDeploymentTrail, ListEvents, ListEventsResult
from contracts.events import BusPrincipalChanged
from services.audit import queries
from shared.identity import account_scope, bus_principal_changed
from shared.messaging import HandlerContext, Handlers


async def list_events(query: ListEvents, ctx: HandlerContext) -> ListEventsResult:
    total, records = await queries.list_events(ctx.conn, query, account_scope(ctx.envelope.actor))
    return ListEventsResult(total=total, items=[r.model_dump(mode="json") for r in records])


async def get_deployment_trail(query: GetDeploymentTrail, ctx: HandlerContext) -> DeploymentTrail:
    return await queries.deployment_trail(ctx.conn, query, account_scope(ctx.envelope.actor))


HANDLERS: Handlers = {
    ListEvents: list_events,
    GetDeploymentTrail: get_deployment_trail,
    BusPrincipalChanged: bus_principal_changed,
}
