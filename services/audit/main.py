"""Composition root of the audit service."""

from __future__ import annotations

from pathlib import Path

from contracts.topology import AUDIT_INGEST
from services.audit.handlers import HANDLERS
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    http_port: int = 8084


def build() -> tuple[ServiceDefinition, AuditSettings]:
    settings = AuditSettings()
    definition = ServiceDefinition(
        name="audit",
        handlers=HANDLERS,
        consumes=[Consumes(AUDIT_INGEST)],
        migrations=Path(__file__).with_name("migrations"),
    )
    return definition, settings
