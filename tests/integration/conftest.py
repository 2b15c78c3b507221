"""Fixtures of the integration tests: the real broker and database, one vhost and one database per test."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass

import asyncpg
import pytest

from tests.support.infra import Broker, Postgres, start_broker, start_postgres

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


@dataclass
class VHost:
    name: str
    url: str


@pytest.fixture
def vhost(broker: Broker):
    name = f"snapdeploy-test-{uuid.uuid4().hex[:10]}"
    broker.ctl("add_vhost", name)
    broker.ctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    yield VHost(name, broker.url_for(name))
    broker.ctl("delete_vhost", name)


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
    return {"AMQP_URL": vhost.url, "DATABASE_URL": database_url, "HTTP_PORT": "0", "LOG_LEVEL": "INFO"}
