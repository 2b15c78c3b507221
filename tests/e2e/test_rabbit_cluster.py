"""Services on a real three-node RabbitMQ cluster (scripts/rabbit-cluster): a node dies, nothing is lost."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections import Counter

import pytest

from contracts import planner
from snapdeploy.local.users import HARNESS_USER, as_user
from tests.e2e.cloud import offering, prepare, snapshot
from tests.support.rabbit_cluster import SERVER, Cluster
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster():
    if not os.environ.get("SNAPDEPLOY_CLUSTER"):
        # Three more RabbitMQ nodes on a shared two-core machine: run on demand (make cluster-test).
        pytest.skip("the three-node cluster test runs with `make cluster-test` (SNAPDEPLOY_CLUSTER=1)")
    if not SERVER.exists():
        message = (
            f"{SERVER} is missing: the cluster test runs RabbitMQ's own scripts (apt install rabbitmq-server)"
        )
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    cluster = Cluster()
    was_running = cluster.running()
    cluster.run("start")
    yield cluster
    if not was_running:
        cluster.run("stop")


@pytest.fixture
def cluster_env(cluster: Cluster, database_url: str):
    vhost = f"snapdeploy-test-{uuid.uuid4().hex[:10]}"
    cluster.add_vhost(vhost)  # users are cluster-wide
    yield (
        vhost,
        {
            "AMQP_URL": as_user(cluster.urls(vhost), HARNESS_USER),
            "DATABASE_URL": database_url,
            "HTTP_PORT": "0",
            "LOG_LEVEL": "INFO",
        },
    )
    cluster.ctl(2, "delete_vhost", vhost)


def deploy(snapshot_id: uuid.UUID, offering_id: uuid.UUID, name: str) -> planner.DeployVirtualMachine:
    return planner.DeployVirtualMachine(
        vm_id=uuid.uuid4(), vm_snapshot_id=snapshot_id, service_offering_id=offering_id, name=name
    )


async def test_a_node_killed_mid_run_loses_no_deployment_and_doubles_none(cluster, cluster_env):
    vhost, env = cluster_env
    # Every process lists node 1 first: all of them are connected to the node that dies.
    async with Stack(env, storage=1, planner=1, audit=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        await cloud.call(deploy(s1, small, "warm-up"))
        members = cluster.quorum_members(2, vhost)
        assert members and set(members.values()) == {3}, f"every quorum queue on the three nodes: {members}"

        cloud.sim.slow("CloneVM_Task", 1000)
        requests = [deploy(s1, small, f"wave-{n}") for n in range(8)]
        sent = [await cloud.send(request) for request in requests]
        await cloud.events.wait_for(
            lambda e: e.type == "CloneFromSnapshot" and e.payload["vm_name"] == "wave-0"
        )
        await asyncio.to_thread(cluster.kill, 1)  # mid-run: clones in flight, replies on their way
        replies = [await cloud.reply(envelope, timeout=180) for envelope in sent[:4]]
        await asyncio.to_thread(cluster.start_node, 1)
        replies += [await cloud.reply(envelope, timeout=180) for envelope in sent[4:]]

        assert [r.type for r in replies] == ["DeployVirtualMachineSucceeded"] * len(requests)
        terminal = Counter(
            e.causation_id
            for e in {e.message_id: e for e in cloud.events.seen}.values()
            if e.type.startswith("DeployVirtualMachine") and e.type != "DeployVirtualMachine"
        )
        assert all(terminal[s.message_id] == 1 for s in sent), "one terminal reply per deployment"
        vms, _ = await cloud.inventory()
        names = Counter(name for name in vms if name.startswith("wave-"))
        assert names == Counter({r.name: 1 for r in requests}), "each VM exactly once in vCenter"
        for request in requests:
            [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
            assert vm.state == "Running"
