"""Composition root of the audit service.

Two consumers: ``audit.ingest`` (every command and event, through the batching ``Ingestor``,
run as a job of the service) and ``audit.queries`` (through the shared dispatcher). The
CloudStack relay and the retention pass are jobs too.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from contracts.topology import AUDIT_REPLIES, queries_queue
from services.audit import retention
from services.audit.cloudstack import CloudStackRelay
from services.audit.handlers import HANDLERS
from services.audit.ingest import Ingestor, finish
from shared.service import Consumes, Runtime, ServiceDefinition
from shared.settings import ServiceSettings


class AuditSettings(ServiceSettings):
    http_port: int = 8084
    audit_batch_size: int = Field(default=500, ge=1, description="Most deliveries stored per transaction.")
    audit_batch_linger_ms: float = Field(
        default=50.0, ge=0, description="How long a batch waits to fill before it is stored anyway."
    )
    audit_prefetch: int = Field(
        default=1000, ge=1, description="Unacked ingest deliveries (at least the batch size)."
    )
    cloudstack_republish: bool = Field(
        default=True, description="Republish every ActionEvent to cloudstack-events in CloudStack's format."
    )
    audit_retention_days: float | None = Field(
        default=None, gt=0, description="Archive or purge events older than this; unset: keep forever."
    )
    audit_retention_mode: Literal["archive", "purge"] = "archive"
    audit_retention_interval: float = Field(default=3600.0, gt=0, description="Seconds between passes.")
    audit_retention_batch: int = Field(default=5000, ge=1, description="Rows per retention transaction.")

    @model_validator(mode="after")
    def _prefetch_holds_a_batch(self) -> AuditSettings:
        if self.audit_prefetch < self.audit_batch_size:
            raise ValueError("AUDIT_PREFETCH must be at least AUDIT_BATCH_SIZE")
        return self


def build() -> tuple[ServiceDefinition, AuditSettings]:
    settings = AuditSettings()

    async def ingest(runtime: Runtime) -> None:
        relay = CloudStackRelay(
            runtime.pool,
            runtime.bus,
            batch=settings.outbox_batch,
            poll_interval=settings.outbox_poll_interval,
            metrics=runtime.metrics,
        )
        ingestor = Ingestor(
            runtime.pool,
            runtime.bus,
            runtime.metrics,
            batch_size=settings.audit_batch_size,
            linger=settings.audit_batch_linger_ms / 1000,
            prefetch=settings.audit_prefetch,
            republish=settings.cloudstack_republish,
            relay=relay,
            backoff_base=settings.retry_backoff_base,
            backoff_max=settings.retry_backoff_max,
            service_users=settings.service_users(),
        )
        relaying = asyncio.create_task(relay.run(), name="cloudstack-relay")
        try:
            await ingestor.run()
        finally:  # shutdown: the ingestor has stored what it received; publish what that left
            relay.stop()
            await finish(relaying, timeout=5.0)
            await finish(relay.drain(timeout=min(5.0, settings.shutdown_grace)), timeout=10.0)

    async def retain(runtime: Runtime) -> None:
        if settings.audit_retention_days is None:
            return  # keep forever
        await retention.run_periodically(
            runtime.pool,
            days=settings.audit_retention_days,
            mode=settings.audit_retention_mode,
            interval=settings.audit_retention_interval,
            batch=settings.audit_retention_batch,
        )

    definition = ServiceDefinition(
        name="audit",
        handlers=HANDLERS,
        consumes=[Consumes(queries_queue("audit"), namespace="audit"), Consumes(AUDIT_REPLIES)],
        migrations=Path(__file__).with_name("migrations"),
        jobs=[ingest, retain],
    )
    return definition, settings
