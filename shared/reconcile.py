"""Reconciliation's settings and grace-period bookkeeping, shared by the services that reconcile.

Planner (VMs, stuck instances) and storage (seeds, volume disks, stuck volumes) compare each
``InventorySynced`` with their records (DESIGN section 4). What they find is acted on only
once it has stayed so for the grace period, so that a sync racing with a deployment never
removes what is being made.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings


class ReconcileSettings(BaseSettings):
    reconcile_mode: Literal["remove", "report"] = Field(
        default="remove",
        description="What reconciliation does with a vCenter object no live record owns: remove it, "
        "or only report it (an ActionEvent and a log line).",
    )
    reconcile_grace: float = Field(
        default=600.0, ge=0, description="Seconds an orphan or a stuck record stays so before it is acted on."
    )


class Sightings:
    """When each finding was first seen; it is due once seen continuously for ``grace`` seconds.

    Kept in the service's ``reconcile_sightings`` table, by the database's clock, so a restart
    (or another replica) carries on each grace period where it was. A finding not seen in a pass
    is forgotten; one acted on waits a new grace period before it is acted on again (a removal
    still in flight is not sent twice). A pass that finds what the last one found writes nothing.
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace

    def advance(
        self, known: dict[str, float], findings: Iterable[str], now: float
    ) -> tuple[set[str], dict[str, float]]:
        """(the findings due now, when each current finding was first seen from now on)."""
        current = {key: known.get(key, now) for key in findings}
        due = {key for key, first in current.items() if now - first >= self.grace}
        for key in due:
            current[key] = now
        return due, current

    async def due(self, conn: asyncpg.Connection, scope: tuple, findings: Iterable[Hashable]) -> set:
        """The ``findings`` (ids) of ``scope`` that are due; called inside the pass's transaction."""
        scope_key = ":".join(str(part) for part in scope)
        by_key = {str(finding): finding for finding in findings}
        rows = await conn.fetch(
            "SELECT key, first_seen, extract(epoch FROM now())::float8 AS now"
            " FROM reconcile_sightings WHERE scope = $1",
            scope_key,
        )
        known = {row["key"]: row["first_seen"] for row in rows}
        if not known and not by_key:
            return set()  # the usual pass: nothing found, nothing to write
        now = rows[0]["now"] if rows else await conn.fetchval("SELECT extract(epoch FROM now())::float8")
        due, current = self.advance(known, by_key, now)
        gone = [key for key in known if key not in current]
        changed = [(key, first) for key, first in current.items() if known.get(key) != first]
        if gone:
            await conn.execute(
                "DELETE FROM reconcile_sightings WHERE scope = $1 AND key = ANY($2::text[])", scope_key, gone
            )
        if changed:
            await conn.executemany(
                """INSERT INTO reconcile_sightings (scope, key, first_seen) VALUES ($1, $2, $3)
                   ON CONFLICT (scope, key) DO UPDATE SET first_seen = EXCLUDED.first_seen""",
                [(scope_key, key, first) for key, first in changed],
            )
        return {by_key[key] for key in due}


@dataclass
class Reconciliation:
    """What a reconciling service keeps between passes."""

    mode: Literal["remove", "report"]
    sightings: Sightings = field(default_factory=lambda: Sightings(600.0))

    @classmethod
    def of(cls, settings: ReconcileSettings) -> Reconciliation:
        return cls(mode=settings.reconcile_mode, sightings=Sightings(settings.reconcile_grace))


def snapdeploy_uuid(value: str | None) -> uuid.UUID | None:
    """The snapdeploy id of a vCenter object (extraConfig ``snapdeploy.id``), when it is one of ours."""
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None
