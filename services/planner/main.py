"""Composition root of the planner."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field

from contracts.events import InventorySynced
from contracts.topology import PLANNER_REPLIES, commands_queue, queries_queue
from services.planner import reconcile, watchdog
from services.planner.common import Planner
from services.planner.handlers import handlers
from shared.reconcile import ReconcileSettings, Reconciliation
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class PlannerSettings(ServiceSettings, ReconcileSettings):
    http_port: int = 8081
    cpu_overcommit: float = Field(default=1.0, gt=0, description="Host CPU allocation limit = MHz x this.")
    memory_overcommit: float = Field(
        default=1.0, gt=0, description="Host memory allocation limit = bytes x this."
    )
    step_timeout: float = Field(default=300.0, gt=0, description="Seconds a saga step waits for its reply.")
    copy_timeout: float = Field(default=3600.0, gt=0, description="The same for seeding and cloning.")
    watchdog_interval: float = Field(
        default=5.0, gt=0, description="Seconds between checks for late replies."
    )
    max_resends: int = Field(default=3, ge=0, description="Times a late step is sent again before it fails.")
    reconcile_interval: float = Field(
        default=300.0, ge=0, description="Seconds between reconciliation passes (inventory syncs); 0: none."
    )


def build() -> tuple[ServiceDefinition, PlannerSettings]:
    settings = PlannerSettings()
    planner = Planner(
        cpu_overcommit=settings.cpu_overcommit,
        memory_overcommit=settings.memory_overcommit,
        step_timeout=settings.step_timeout,
        copy_timeout=settings.copy_timeout,
        reconcile=Reconciliation.of(settings),
    )
    check = functools.partial(
        watchdog.run, planner=planner, interval=settings.watchdog_interval, max_resends=settings.max_resends
    )
    check.__name__ = "saga-watchdog"
    jobs = [check]
    if settings.reconcile_interval > 0:
        sync = functools.partial(reconcile.periodic, interval=settings.reconcile_interval)
        sync.__name__ = "reconciliation"
        jobs.append(sync)
    definition = ServiceDefinition(
        name="planner",
        handlers=handlers(planner),
        consumes=[
            Consumes(commands_queue("planner"), namespace="planner"),
            Consumes(queries_queue("planner"), namespace="planner"),
            Consumes(PLANNER_REPLIES),
        ],
        migrations=Path(__file__).with_name("migrations"),
        # an inventory sync is applied as a state: twice is once, and an unchanged one writes nothing
        replayable=[InventorySynced],
        jobs=jobs,
    )
    return definition, settings
