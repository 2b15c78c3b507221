"""The one runner every service uses: settings, logging, database, bus, consumers, HTTP, shutdown.

A service is a ``ServiceDefinition``: its name (also its schema), its handlers, the queues it
consumes, its migrations and its periodic jobs. ``run`` wires them; ``main`` is what
``python -m services.<name>`` calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web

from contracts.catalogue import CATALOGUE, Catalogue
from contracts.topology import TOPOLOGY, QueueSpec
from shared import logging as snap_logging
from shared.bus import Bus, Dispatcher
from shared.bus.dispatcher import RetryPolicy
from shared.bus.queries import QueryClient
from shared.db import create_pool
from shared.db.migrations import migrate
from shared.db.outbox import OutboxRelay
from shared.effects import DirectEffects, TransactionalEffects
from shared.http import health_app, serve
from shared.identity import Identity
from shared.messaging import Handlers
from shared.metrics import Metrics
from shared.settings import ServiceSettings

log = structlog.get_logger("service")


@dataclass(frozen=True)
class Consumes:
    """A queue the service consumes; ``namespace`` set for command queues (the service's own)."""

    queue: QueueSpec
    namespace: str | None = None
    prefetch: int | None = None  # else the PREFETCH setting


@dataclass
class Runtime:
    """What a running service has; periodic jobs receive it."""

    settings: ServiceSettings
    bus: Bus
    metrics: Metrics
    pool: asyncpg.Pool | None = None
    relay: OutboxRelay | None = None
    http_port: int | None = None
    queries: QueryClient | None = None


Job = Callable[[Runtime], Awaitable[None]]
Hook = Callable[[Runtime], Awaitable[None]]


@dataclass
class ServiceDefinition:
    name: str
    handlers: Handlers
    consumes: Sequence[Consumes]
    migrations: Path | None = None
    uses_database: bool = True
    catalogue: Catalogue = CATALOGUE
    declares: Sequence[QueueSpec] = field(default_factory=lambda: TOPOLOGY.queues)
    jobs: Sequence[Job] = ()
    # Messages handled without an inbox row (see ``TransactionalEffects``): state syncs.
    replayable: Sequence[type] = ()
    # Run after the database and bus are up and before consuming starts (e.g. log in to vCenter),
    # and after consuming has stopped (log out).
    startup: Sequence[Hook] = ()
    cleanup: Sequence[Hook] = ()
    # The service's own HTTP routes, served on the port of /healthz, /readyz and /metrics (the api).
    http_app: Callable[[Runtime], Awaitable[web.Application]] | None = None


class Service:
    def __init__(self, definition: ServiceDefinition, settings: ServiceSettings):
        self.definition = definition
        self.settings = settings
        self.metrics = Metrics()
        self.stopping = asyncio.Event()
        self.runtime: Runtime | None = None
        self.ready = asyncio.Event()

    async def run(self) -> None:
        d, s = self.definition, self.settings
        bus = Bus(s.amqp_url, name=d.name, publish_timeout=s.publish_timeout, ca_file=s.amqp_ca_file)
        runtime = self.runtime = Runtime(s, bus, self.metrics)
        tasks: list[asyncio.Task] = []
        jobs: list[asyncio.Task] = []
        http_runner = None
        try:
            if d.uses_database:
                runtime.pool = await create_pool(
                    s.database_url, d.name, min_size=s.db_pool_min, max_size=s.db_pool_max
                )
                async with runtime.pool.acquire() as conn:
                    await migrate(conn, d.name, d.migrations)
            await bus.connect()
            await bus.declare([*d.declares, *(c.queue for c in d.consumes)])
            runtime.queries = QueryClient(bus, source=d.name, catalogue=d.catalogue)

            if d.uses_database:
                runtime.relay = OutboxRelay(
                    runtime.pool,
                    bus,
                    batch=s.outbox_batch,
                    poll_interval=s.outbox_poll_interval,
                    metrics=self.metrics,
                )
                effects = TransactionalEffects(
                    runtime.pool, runtime.relay, consumer=d.name, source=d.name, replayable=d.replayable
                )
                tasks.append(asyncio.create_task(runtime.relay.run(), name="outbox-relay"))
            else:
                effects = DirectEffects(bus, source=d.name)

            for hook in d.startup:
                await hook(runtime)
            app = await d.http_app(runtime) if d.http_app else None
            http_runner, runtime.http_port = await serve(
                health_app(self._checks(runtime), self.metrics, app), s.http_host, s.http_port
            )
            identity = Identity(s.service_users(), runtime.pool)
            dispatchers, consumers = [], []
            for consumes in d.consumes:
                dispatcher = Dispatcher(
                    consumer=d.name,
                    source=d.name,
                    queue=consumes.queue,
                    catalogue=d.catalogue,
                    handlers=d.handlers,
                    effects=effects,
                    metrics=self.metrics,
                    identity=identity,
                    namespace=consumes.namespace,
                    retry=RetryPolicy(s.retry_backoff_base, s.retry_backoff_max),
                    bus=bus,
                )
                dispatchers.append(dispatcher)
                consumers.append(
                    await bus.consume(consumes.queue, dispatcher, prefetch=consumes.prefetch or s.prefetch)
                )
            jobs = [asyncio.create_task(job(runtime), name=job.__name__) for job in d.jobs]
            for job in jobs:
                job.add_done_callback(_report_crash)
            tasks.extend(jobs)
            log.info(
                "service started", http_port=runtime.http_port, queues=[c.queue.name for c in d.consumes]
            )
            self.ready.set()

            await self.stopping.wait()
            log.info("stopping: no new deliveries, finishing in-flight work")
            for consumer in consumers:
                with contextlib.suppress(Exception):
                    await consumer.cancel()
            try:
                await asyncio.wait_for(
                    asyncio.gather(*(dispatcher.wait_idle() for dispatcher in dispatchers)), s.shutdown_grace
                )
            except TimeoutError:
                log.warning(
                    "in-flight handlers did not finish within the grace period", grace_s=s.shutdown_grace
                )
            # Jobs are cancelled once and given the grace period to clean up (e.g. store what they hold).
            for job in jobs:
                job.cancel()
            if jobs:
                await asyncio.wait(jobs, timeout=s.shutdown_grace)
            if runtime.relay:
                runtime.relay.stop()
                flushed = await runtime.relay.drain(timeout=min(10.0, s.shutdown_grace))
                log.info(
                    "outbox flushed"
                    if flushed
                    else "outbox not empty at exit; a replica or restart publishes it"
                )
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for hook in d.cleanup:
                with contextlib.suppress(Exception):
                    await hook(runtime)
            if http_runner:
                await http_runner.cleanup()
            with contextlib.suppress(Exception):
                await bus.close()
            if runtime.pool:
                await runtime.pool.close()
            log.info("service stopped")

    @staticmethod
    def _checks(runtime: Runtime):
        async def broker() -> bool:
            return runtime.bus.is_connected

        async def database() -> bool:
            async with runtime.pool.acquire() as conn:
                return await conn.fetchval("SELECT 1") == 1

        return {"broker": broker, "database": database} if runtime.pool else {"broker": broker}

    def stop(self) -> None:
        self.stopping.set()


def _report_crash(task: asyncio.Task) -> None:
    """A periodic job that dies says so (the service goes on; its readiness does not depend on it)."""
    if not task.cancelled() and task.exception() is not None:
        error = task.exception()
        log.error("job crashed", job=task.get_name(), error=repr(error), exc_info=error)


def main(build: Callable[[], tuple[ServiceDefinition, ServiceSettings]]) -> None:
    """Entry point of ``python -m services.<name>``: run until SIGTERM or SIGINT."""
    definition, settings = build()
    snap_logging.configure(definition.name, settings.log_level)

    async def _run() -> None:
        service = Service(definition, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.run()

    asyncio.run(_run())
