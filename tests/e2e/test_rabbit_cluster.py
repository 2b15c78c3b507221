"""Services on a real three-node RabbitMQ cluster (scripts/rabbit-cluster): a node dies, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from contracts import planner
from snapdeploy import broker_users
from snapdeploy.local.users import HARNESS_USER, as_user, snapdeploy_users
from tests.e2e.cloud import offering, prepare, snapshot
from tests.support.processes import ROOT
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
SCRIPT = ROOT / "scripts" / "rabbit-cluster"
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class Cluster:
    def run(self, *args: str, timeout: float = 300) -> str:
        return subprocess.run(
            [str(SCRIPT), *args], check=True, capture_output=True, text=True, timeout=timeout
        ).stdout

    def ctl(self, node: int, *args: str) -> str:
        return self.run("ctl", str(node), "-q", *args, timeout=60)

    def urls(self, vhost: str) -> str:
        return self.run("urls", vhost).strip()

    def quorum_members(self, node: int, vhost: str) -> dict[str, int]:
        rows = json.loads(
            self.ctl(node, "list_queues", "-p", vhost, "name", "type", "members", "--formatter", "json")
        )
        return {row["name"]: len(row["members"]) for row in rows if row["type"] == "quorum"}


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
    was_running = subprocess.run([str(SCRIPT), "status"], capture_output=True).returncode == 0
    cluster.run("start")
    yield cluster
    if not was_running:
        cluster.run("stop")


@pytest.fixture
def cluster_env(cluster: Cluster, database_url: str):
    vhost = f"snapdeploy-test-{uuid.uuid4().hex[:10]}"
    # Users are cluster-wide: the service users and the harness, as on the single broker (infra.py).
    document = broker_users.definitions(vhost, snapdeploy_users())
    broker_users.import_definitions(document, rabbitmqctl=f"{SCRIPT} ctl 1")
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
        await asyncio.to_thread(cluster.run, "kill", "1")  # mid-run: clones in flight, replies on their way
        replies = [await cloud.reply(envelope, timeout=180) for envelope in sent[:4]]
        await asyncio.to_thread(cluster.run, "start-node", "1")
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
