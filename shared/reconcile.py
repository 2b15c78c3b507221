"""Reconciliation's settings and grace-period bookkeeping, shared by the services that reconcile.

Planner (VMs, stuck instances) and storage (seeds, volume disks, stuck volumes) compare each
``InventorySynced`` with their records (DESIGN section 4). What they find is acted on only
once it has stayed so for the grace period, so that a sync racing with a deployment never
removes what is being made.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Literal

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

    Kept in memory: a restart starts every grace period over (a late action, never an early
    one). A finding not seen in a pass is forgotten; one acted on waits a new grace period
    before it is acted on again (a removal still in flight is not sent twice).
    """

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._first: dict[Hashable, dict[Hashable, float]] = {}

    def due(self, scope: Hashable, findings: Iterable[Hashable], *, now: float | None = None) -> set:
        now = time.monotonic() if now is None else now
        known = self._first.get(scope, {})
        current = {key: known.get(key, now) for key in findings}
        self._first[scope] = current
        due = {key for key, first in current.items() if now - first >= self.grace}
        for key in due:
            current[key] = now
        return due


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
