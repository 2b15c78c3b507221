"""Composition root of the storage."""

from __future__ import annotations

from pathlib import Path

from contracts.topology import commands_queue, replies_queue
from services.storage.handlers import HANDLERS
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class StorageSettings(ServiceSettings):
    http_port: int = 8082


def build() -> tuple[ServiceDefinition, StorageSettings]:
    settings = StorageSettings()
    definition = ServiceDefinition(
        name="storage",
        handlers=HANDLERS,
        consumes=[
            Consumes(commands_queue("storage"), namespace="storage"),
            Consumes(replies_queue("storage")),
        ],
        migrations=Path(__file__).with_name("migrations"),
    )
    return definition, settings
