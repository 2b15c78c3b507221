"""Where the integration tests find RabbitMQ and PostgreSQL.

``AMQP_URL`` / ``DATABASE_URL`` (or the local defaults) when they answer; else containers
through testcontainers when a Docker engine is present. With ``CI`` set, a missing service
fails the run instead of skipping it. Each test gets its own vhost and its own database.

Nobody connects as ``guest``: each vhost gets snapdeploy's service users with their real
permissions (``snapdeploy/broker_users.py``), and the harness user ``snapdeploy-test`` that
drives and observes the tests (a service user in the tests' ``BUS_SERVICE_USERS``).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from snapdeploy import broker_users
from snapdeploy.local.users import (  # noqa: F401  (re-exported for the tests)
    HARNESS_USER,
    TEST_SERVICE_USERS,
    as_user,
    local_password,
    producer_user,
    snapdeploy_users,
)

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str, default_port: int) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _missing(what: str, hint: str) -> None:
    message = f"{what} is not reachable and no Docker engine is present. {hint}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@dataclass
class Broker:
    url: str  # of the default vhost
    ctl: Callable[..., str]  # runs rabbitmqctl with these arguments
    load: Callable[[dict], None]  # imports a definitions document (vhost, users, permissions)

    def url_for(self, vhost: str, user: str = HARNESS_USER) -> str:
        parts = urllib.parse.urlsplit(self.url)
        url = urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))
        return as_user(url, user)


@dataclass
class Postgres:
    url: str  # of a maintenance database

    def url_for(self, database: str) -> str:
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + database))


def start_broker(stack) -> Broker:
    url = os.environ.get("AMQP_URL", DEFAULT_AMQP)
    if _reachable(url, 5672):
        if not shutil.which("rabbitmqctl"):
            pytest.fail(
                "the tests manage vhosts with rabbitmqctl; install rabbitmq-server's tools", pytrace=False
            )

        def ctl(*args: str) -> str:
            return subprocess.run(
                ["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True
            ).stdout

        return Broker(url.rsplit("/", 1)[0] + "/", ctl, broker_users.import_definitions)
    if not _docker_available():
        _missing(f"RabbitMQ at {url}", "Start it: rabbitmq-server -detached (or set AMQP_URL).")
    from testcontainers.rabbitmq import RabbitMqContainer

    container = stack.enter_context(RabbitMqContainer("rabbitmq:3.13-management"))
    host, port = container.get_container_host_ip(), container.get_exposed_port(5672)

    def container_ctl(*args: str) -> str:
        code, out = container.exec(["rabbitmqctl", "-q", *args])
        if code:
            raise RuntimeError(out.decode())
        return out.decode()

    def container_load(document: dict) -> None:
        container_ctl("eval", "ok.")  # the node is up
        code, out = container.exec(
            ["sh", "-c", f"echo {shlex.quote(json.dumps(document))} | rabbitmqctl -q import_definitions"]
        )
        if code:
            raise RuntimeError(out.decode())

    return Broker(f"amqp://guest:guest@{host}:{port}/", container_ctl, container_load)


def start_postgres(stack) -> Postgres:
    url = os.environ.get("DATABASE_URL", DEFAULT_DB)
    if _reachable(url, 5432):
        return Postgres(Postgres(url).url_for("postgres"))
    if not _docker_available():
        _missing(
            f"PostgreSQL at {url}",
            "Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start.",
        )
    from testcontainers.postgres import PostgresContainer

    container = stack.enter_context(PostgresContainer("postgres:16", driver=None))
    return Postgres(container.get_connection_url())
