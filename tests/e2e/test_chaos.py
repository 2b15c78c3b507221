"""The chaos run (tests/support/chaos.py): short in every test run; `make chaos ROUNDS=N SEED=S` for more.

It runs on a RabbitMQ and a PostgreSQL of its own (scripts/rabbit-cluster, tests/support/private_pg),
because it crashes and restarts them: one node by default, three with CHAOS_RABBIT_NODES=3 (then a
round may kill one node). CHAOS_KINDS=a,b limits the fault kinds, e.g. to kill-rabbit-node.
"""

from __future__ import annotations

import logging
import os
import random
import tempfile
from pathlib import Path

import asyncpg
import pytest

from snapdeploy.local.users import HARNESS_USER, TEST_SERVICE_USERS, as_user
from tests.support.chaos import Chaos, Infra, bad_figures, render
from tests.support.private_pg import PrivatePostgres
from tests.support.rabbit_cluster import SERVER, Cluster
from tests.support.stack import Stack

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "2"))
# A round takes 10-25 s (one that kills a RabbitMQ node waits for it to rejoin): room for each.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300 + 40 * ROUNDS)]
QUICK = {
    "step_timeout": 30,
    "copy_timeout": 120,
    "watchdog_interval": 1,
    "retry_backoff_base": 0.2,
    "retry_backoff_max": 2,
    "reconcile_interval": 0,  # reconciliation runs at the end, after quiescence (every sync is a pass)
    "reconcile_grace": 2,
    "scavenger_interval": 1,  # destroyed volumes collected before the pools are counted
    "scavenger_delay": 0,
}
VHOST = "chaos"
RABBIT_PORT = int(os.environ.get("CHAOS_RABBIT_PORT", "5782"))  # nodes from here on: not 5672, not 5772


@pytest.fixture
def rabbit():
    if not SERVER.exists():
        message = f"{SERVER} is missing: the chaos run starts RabbitMQ nodes of its own (apt install rabbitmq-server)"  # noqa: E501
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    nodes = int(os.environ.get("CHAOS_RABBIT_NODES", "1"))
    with tempfile.TemporaryDirectory(prefix="snapdeploy-chaos-rabbit-") as directory:
        cluster = Cluster(nodes=nodes, directory=Path(directory), port=RABBIT_PORT)
        cluster.run("start")
        try:
            cluster.add_vhost(VHOST)
            yield cluster
        finally:
            cluster.run("clean")


@pytest.fixture
async def postgres():
    with PrivatePostgres() as server:
        admin = await asyncpg.connect(server.url)
        try:
            await admin.execute("CREATE DATABASE snapdeploy")
        finally:
            await admin.close()
        yield server


async def test_chaos_loses_nothing_doubles_nothing_and_leaves_nothing_behind(rabbit: Cluster, postgres):
    rounds = ROUNDS
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(2**32))
    kinds = [k for k in os.environ.get("CHAOS_KINDS", "").split(",") if k]
    for noisy in ("aio_pika", "aiormq"):  # every reconnect attempt while the broker is down
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    print(f"\nchaos seed {seed} (replay: make chaos ROUNDS={rounds} SEED={seed})")
    env = {
        "AMQP_URL": as_user(rabbit.urls(VHOST), HARNESS_USER),
        "BUS_SERVICE_USERS": TEST_SERVICE_USERS,
        "DATABASE_URL": postgres.url_for("snapdeploy"),
        "HTTP_PORT": "0",
        "LOG_LEVEL": "INFO",
    }
    infra = Infra(
        drop_connections=lambda: rabbit.ctl(1, "close_all_connections", "-p", VHOST, "chaos"),
        restart_broker=rabbit.restart,
        restart_database=postgres.restart,
        kill_node=rabbit.kill,
        start_node=rabbit.start_node,
        nodes=rabbit.nodes,
    )
    async with Stack(env, storage=1, planner=1, audit=1, api=1, **QUICK) as cloud:
        chaos = Chaos(cloud, seed=seed, infra=infra, kinds=kinds, grace=QUICK["reconcile_grace"])
        await chaos.setup()
        for number in range(rounds):
            await chaos.round(number)
        table = await chaos.figures()
        print(render(table, seed=seed, rounds=rounds))

        assert bad_figures(table) == {}, render(table, seed=seed, rounds=rounds)
