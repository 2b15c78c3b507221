"""Composition root of the storage service."""

from __future__ import annotations

import functools
from pathlib import Path

from pydantic import Field

from contracts.events import InventorySynced
from contracts.topology import STORAGE_REPLIES, commands_queue, queries_queue
from services.storage import scavenger
from services.storage.common import Storage
from services.storage.handlers import handlers
from shared.reconcile import ReconcileSettings, Reconciliation
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class StorageSettings(ServiceSettings, ReconcileSettings):
    http_port: int = 8082
    storage_overprovisioning: float = Field(
        default=2.0,
        gt=0,
        description="Pool allocation limit = capacity x this (CloudStack's default for VMware).",
    )
    scavenger_interval: float = Field(default=60.0, gt=0, description="Seconds between scavenger passes.")
    scavenger_delay: float = Field(
        default=300.0, ge=0, description="Seconds a volume stays in Error or Destroy before it is collected."
    )


def build() -> tuple[ServiceDefinition, StorageSettings]:
    settings = StorageSettings()
    storage = Storage(
        overprovisioning=settings.storage_overprovisioning, reconcile=Reconciliation.of(settings)
    )
    scavenge = functools.partial(
        scavenger.run, interval=settings.scavenger_interval, delay=settings.scavenger_delay
    )
    scavenge.__name__ = "scavenger"
    definition = ServiceDefinition(
        name="storage",
        handlers=handlers(storage),
        consumes=[
            Consumes(commands_queue("storage"), namespace="storage"),
            Consumes(queries_queue("storage"), namespace="storage"),
            Consumes(STORAGE_REPLIES),
        ],
        migrations=Path(__file__).with_name("migrations"),
        # an inventory sync is applied as a state: twice is once, and an unchanged one writes nothing
        replayable=[InventorySynced],
        jobs=[scavenge],
    )
    return definition, settings
