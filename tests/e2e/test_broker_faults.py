"""The broker drops every connection: services and clients reconnect, and the next query is answered."""

from __future__ import annotations

import pytest

from contracts import planner
from tests.e2e.cloud import prepare
from tests.support.stack import ZONE, Stack

pytestmark = pytest.mark.e2e


async def test_a_query_after_the_broker_closed_every_connection_is_answered(service_env, broker, vhost):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        await prepare(cloud)
        broker.ctl("close_all_connections", "-p", vhost.name, "connections dropped by a test")

        answer = await cloud.ask(planner.ListHosts(zone_id=ZONE), timeout=30)

        assert len(answer.hosts) == 4
