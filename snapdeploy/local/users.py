"""The broker users of a local stack (the demo's, the benchmarks', the tests'): snapdeploy's
service users with their real permissions, the harness user that drives and observes, and
producers; their passwords are for a local broker only."""

from __future__ import annotations

import asyncio
import urllib.parse
import uuid

from contracts.audit import ListEvents
from contracts.identity import SERVICE_USERS
from contracts.planner import RegisterBusPrincipal
from contracts.storage import ListDiskOfferings
from shared.errors import DomainError
from snapdeploy import broker_users

HARNESS_USER = "snapdeploy-test"
# The tests' and the demo's services: snapdeploy's own users, and the harness that drives them.
TEST_SERVICE_USERS = ",".join((*SERVICE_USERS, HARNESS_USER))


def local_password(user: str) -> str:
    """Passwords of the users the tests and the demo create on a local broker (never a real one)."""
    return f"{user}-local-only"


def as_user(url: str, user: str, password: str | None = None) -> str:
    """The same AMQP URL (or comma-separated list of a cluster's URLs), connecting as another user."""
    if "," in url:
        return ",".join(as_user(one.strip(), user, password) for one in url.split(","))
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    credentials = (
        f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password or local_password(user), safe='')}"
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


def snapdeploy_users() -> dict[str, tuple[str, broker_users.Permissions]]:
    """Every service user with its real permissions, and the harness with all of them."""
    users = {
        broker_users.service_user(s): (
            local_password(broker_users.service_user(s)),
            broker_users.service_permissions(s),
        )
        for s in broker_users.SERVICES
    }
    users[HARNESS_USER] = (local_password(HARNESS_USER), broker_users.everything())
    return users


def producer_user(name: str) -> dict[str, tuple[str, broker_users.Permissions]]:
    return {name: (local_password(name), broker_users.producer_permissions(name))}


async def until_known(producer, timeout: float = 30) -> None:
    """Storage and audit learn a new principal from an event: ask each, as ``producer`` (anything
    with ``ask``), until it answers instead of refusing (531)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for query in (ListDiskOfferings(), ListEvents(page_size=1)):
        while True:
            try:
                await producer.ask(query)
                break
            except DomainError as refusal:
                if refusal.code != 531 or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)


async def register_principal(
    admin, broker_user: str, producer, account_id: uuid.UUID, role: str = "user"
) -> None:
    """``admin`` (anything with ``call``) maps ``broker_user`` to a principal of ``account_id``;
    then wait until every service knows it, asking as ``producer`` (that user's connection)."""
    await admin.call(RegisterBusPrincipal(broker_user=broker_user, account_id=account_id, role=role))
    await until_known(producer)
