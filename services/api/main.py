"""Composition root of the api: settings, the bootstrap admin, /client/api, the job tracker."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from pydantic import Field, SecretStr

from contracts.topology import API_JOBS, TOPOLOGY
from services.api import accounts
from services.api.auth import RateLimiter
from services.api.commands import TABLE
from services.api.commands.results import job_result
from services.api.context import ApiContext
from services.api.http import ClientApi, CloudStackProtocol, api_app
from services.api.jobs import JobTracker
from shared.service import Runtime, ServiceDefinition
from shared.settings import ServiceSettings

log = structlog.get_logger("api")


class ApiSettings(ServiceSettings):
    http_port: int = 8080
    api_encryption_key: SecretStr = Field(
        default=SecretStr(""), description="Encrypts API secret keys at rest (a Kubernetes Secret)."
    )
    api_admin_username: str = "admin"
    api_admin_password: SecretStr | None = None
    api_admin_apikey: str | None = None
    api_admin_secretkey: SecretStr | None = None
    api_session_timeout: float = Field(default=1800.0, gt=0, description="Idle seconds before a login ends.")
    api_rate_limit: float = Field(default=0.0, ge=0, description="Requests per second per API key; 0: off.")
    api_rate_burst: float = Field(default=20.0, ge=1)
    api_cookie_secure: bool = Field(
        default=False, description="Mark session cookies Secure (set it when TLS ends in front of the api)."
    )
    api_job_retention_days: float = Field(
        default=30.0, gt=0, description="Finished async jobs (and expired sessions) are forgotten after this."
    )
    api_query_timeout: float = Field(default=10.0, gt=0, description="Seconds a bus query may take.")
    api_sync_timeout: float = Field(
        default=60.0, gt=0, description="Seconds a synchronous command waits for its reply."
    )


def keyring_of(settings: ApiSettings) -> accounts.Keyring:
    return accounts.Keyring(settings.api_encryption_key.get_secret_value())


def build() -> tuple[ServiceDefinition, ApiSettings]:
    settings = ApiSettings()
    keyring = keyring_of(settings)  # refuses to start without a key
    holder: dict[str, ApiContext] = {}

    async def bootstrap_admin(runtime: Runtime) -> None:
        password = settings.api_admin_password
        secret = settings.api_admin_secretkey
        if not (password or (settings.api_admin_apikey and secret)):
            return
        async with runtime.pool.acquire() as conn:
            await accounts.ensure_admin(
                conn,
                keyring,
                username=settings.api_admin_username,
                password=password.get_secret_value() if password else None,
                api_key=settings.api_admin_apikey,
                secret=secret.get_secret_value() if secret else None,
            )
        log.info("bootstrap admin ready", username=settings.api_admin_username)

    async def http(runtime: Runtime) -> web.Application:
        ctx = holder["ctx"] = ApiContext(
            runtime.pool,
            runtime.queries,
            runtime.relay,
            keyring,
            query_timeout=settings.api_query_timeout,
            sync_timeout=settings.api_sync_timeout,
            session_timeout=settings.api_session_timeout,
        )
        client = ClientApi(
            ctx,
            TABLE,
            session_timeout=settings.api_session_timeout,
            limiter=RateLimiter(settings.api_rate_limit, settings.api_rate_burst),
            secure_cookies=settings.api_cookie_secure,
            registry=runtime.metrics.registry,
        )
        return api_app(client)

    async def track_jobs(runtime: Runtime) -> None:
        ctx = holder["ctx"]

        async def render(job, payload):
            return await job_result(ctx, job, payload)

        consumer = await runtime.bus.consume(API_JOBS, JobTracker(runtime.pool, render))
        try:
            await asyncio.Event().wait()
        finally:
            await consumer.cancel()

    async def forget_old_jobs(runtime: Runtime) -> None:
        """CloudStack's job cleanup: finished jobs, their step records and expired sessions go."""
        while True:
            try:
                async with runtime.pool.acquire() as conn:
                    gone = await conn.fetchval(
                        """WITH gone AS (DELETE FROM async_jobs WHERE status <> 0
                               AND completed < now() - make_interval(secs => $1) RETURNING 1)
                           SELECT count(*) FROM gone""",
                        settings.api_job_retention_days * 86400,
                    )
                    await conn.execute(
                        "DELETE FROM inbox WHERE processed_at < now() - make_interval(secs => $1)",
                        settings.api_job_retention_days * 86400,
                    )
                    await conn.execute("DELETE FROM sessions WHERE expires < now()")
                if gone:
                    log.info("old jobs forgotten", jobs=gone)
            except Exception as error:
                log.warning("job cleanup failed", error=repr(error))
            await asyncio.sleep(3600)

    definition = ServiceDefinition(
        name="api",
        handlers={},
        consumes=[],
        declares=[*TOPOLOGY.queues, API_JOBS],
        migrations=accounts.MIGRATIONS,
        startup=[bootstrap_admin],
        jobs=[track_jobs, forget_old_jobs],
        http_app=http,
        http_protocol=CloudStackProtocol,
    )
    return definition, settings
