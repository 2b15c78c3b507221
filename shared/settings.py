"""Settings common to every service, read once from the environment at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.identity import SERVICE_USERS


class ServiceSettings(BaseSettings):
    """Environment variables shared by all services (a service subclasses it for its own)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    amqp_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="RabbitMQ URL with this service's own user; amqps:// for TLS.",
    )
    amqp_ca_file: str | None = Field(
        default=None, description="CA certificates (PEM) that verify the broker's TLS certificate."
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/snapdeploy",
        description="PostgreSQL DSN; ?sslmode=verify-full&sslrootcert=<CA file> for verified TLS.",
    )
    bus_service_users: str = Field(
        default=",".join(SERVICE_USERS),
        description="RabbitMQ users of snapdeploy's own services (comma-separated): their actor is honoured.",
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

    def service_users(self) -> frozenset[str]:
        return frozenset(u.strip() for u in self.bus_service_users.split(",") if u.strip())
