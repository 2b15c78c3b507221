"""End-to-end tests reuse the integration fixtures: one vhost and one database per test."""

from tests.integration.conftest import (  # noqa: F401
    broker,
    database_url,
    infra,
    postgres,
    service_env,
    vhost,
)
