"""Settings common to every service, read once from the environment at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Environment variables shared by all services (a service subclasses it for its own)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    amqp_url: str = Field(default="amqp://guest:guest@127.0.0.1:5672/", description="RabbitMQ URL.")
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/snapdeploy", description="PostgreSQL DSN."
    )
    db_pool_min: int = 1
    db_pool_max: int = 10

    http_host: str = "127.0.0.1"
    http_port: int = Field(
        default=8080, description="Port of /healthz, /readyz and /metrics (0: any free port)."
    )
    log_level: str = "INFO"

    prefetch: int = Field(
        default=16, ge=1, description="Unacked deliveries per consumer = concurrent handlers."
    )
    retry_backoff_base: float = Field(default=0.5, gt=0, description="First transient-retry delay, seconds.")
    retry_backoff_max: float = Field(default=30.0, gt=0)
    shutdown_grace: float = Field(
        default=30.0, gt=0, description="Seconds in-flight handlers get after SIGTERM."
    )

    publish_timeout: float = Field(default=30.0, gt=0, description="Seconds a publish waits for its confirm.")
    outbox_batch: int = Field(default=200, ge=1)
    outbox_poll_interval: float = Field(default=1.0, gt=0, description="Relay poll when no NOTIFY arrives.")
