"""Fixtures of the integration tests: the real broker and database, one vhost and one database per test."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field

import aio_pika
import asyncpg
import pytest

from snapdeploy import broker_users
from tests.support.infra import (
    TEST_SERVICE_USERS,
    Broker,
    Postgres,
    producer_user,
    snapdeploy_users,
    start_broker,
    start_postgres,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def infra():
    with contextlib.ExitStack() as stack:
        yield start_broker(stack), start_postgres(stack)


@pytest.fixture(scope="session")
def broker(infra) -> Broker:
    return infra[0]


@pytest.fixture(scope="session")
def postgres(infra) -> Postgres:
    return infra[1]


async def until_usable(url: str, timeout: float = 10.0) -> None:
    """Definitions are imported asynchronously: wait until the user can open the vhost."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            connection = await aio_pika.connect(url)
            await connection.close()
            return
        except (aio_pika.exceptions.AMQPError, ConnectionError, OSError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


@dataclass
class VHost:
    """A vhost of the test's own, with snapdeploy's users; ``url`` connects as the harness user."""

    name: str
    url: str
    broker: Broker
    producers: list[str] = field(default_factory=list)

    def url_for(self, user: str) -> str:
        return self.broker.url_for(self.name, user)

    async def producer(self, name: str | None = None) -> str:
        """A producer user of this vhost with the permissions the script gives one; its AMQP URL."""
        name = name or f"producer-{uuid.uuid4().hex[:8]}"
        await asyncio.to_thread(self.broker.load, broker_users.definitions(self.name, producer_user(name)))
        self.producers.append(name)
        url = self.url_for(name)
        await until_usable(url)
        return url


@pytest.fixture
async def vhost(broker: Broker):
    name = f"snapdeploy-test-{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(broker.load, broker_users.definitions(name, snapdeploy_users()))
    created = VHost(name, broker.url_for(name), broker)
    await until_usable(created.url)
    yield created
    broker.ctl("delete_vhost", name)
    for user in created.producers:
        broker.ctl("delete_user", user)


@pytest.fixture
async def database_url(postgres: Postgres):
    name = f"snapdeploy_test_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres.url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres.url_for(name)
    admin = await asyncpg.connect(postgres.url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def service_env(vhost: VHost, database_url: str) -> dict[str, str]:
    """Environment of a service process under test: this test's vhost and database, any free port."""
    return {
        "AMQP_URL": vhost.url,  # a service process connects as its own user (ServiceProcess)
        "BUS_SERVICE_USERS": TEST_SERVICE_USERS,
        "DATABASE_URL": database_url,
        "HTTP_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
