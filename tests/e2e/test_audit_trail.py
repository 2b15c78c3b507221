"""The audit trail of real deployments: planner, storage, agent and audit as processes, the simulator."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import pytest

from contracts import audit, planner
from tests.e2e.cloud import networks, offering, prepare, root_disk, snapshot, source_vm
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
A = b"A" * 8192 + b"root disk at S1"


async def deployed_trail(
    cloud: Stack, snapshot_id, offering_id, network_ids, name: str
) -> audit.DeploymentTrail:
    cloud.job = uuid.uuid4()
    request = planner.DeployVirtualMachine(
        vm_id=uuid.uuid4(), vm_snapshot_id=snapshot_id, service_offering_id=offering_id,
        network_ids=network_ids, name=name,
    )  # fmt: skip
    await cloud.reply(await cloud.send(request), timeout=120)
    return await cloud.until(
        audit.GetDeploymentTrail(correlation_id=cloud.job),
        lambda t: (
            t.status in ("succeeded", "failed") and t.entries[-1].type.startswith("DeployVirtualMachine")
        ),
        what=f"{name}'s trail complete",
    )


def actions(trail: audit.DeploymentTrail) -> list[tuple[str, str]]:
    return [(e.event_type, e.state) for e in trail.entries if e.type == "ActionEvent"]


async def test_a_deployment_leaves_its_resources_and_vcenter_tasks_in_order_with_durations(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1) as cloud:
        source = await prepare(cloud)
        cloud.sim.write(root_disk(await source_vm(cloud)).file, A)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        nets = await networks(cloud, "pg-web", "pg-db")

        first = await deployed_trail(cloud, s1, small, nets, "first")
        assert first.status == "succeeded" and first.duration_ms is not None
        done = actions(first)
        assert [s for t, s in done if t == "VM.CREATE"] == ["Scheduled", "Started", "Completed"]
        assert ("TEMPLATE.CREATE", "Completed") in done
        assert done.count(("NIC.CREATE", "Completed")) == 2, "one NIC.CREATE per network"
        order = ["VM.CREATE", "TEMPLATE.CREATE", "VOLUME.CREATE", "NIC.CREATE", "VM.START"]
        first_seen = [next(i for i, (t, _) in enumerate(done) if t == kind) for kind in order]
        assert first_seen == sorted(first_seen), done
        assert done[-1] == ("VM.START", "Completed")

        tasks = [e for e in first.entries if e.type == "VcenterTask"]
        names = [t.task_name for t in tasks]
        for expected in (
            "CopyVirtualDisk_Task",
            "CreateVM_Task",
            "CreateSnapshot_Task",
            "CloneVM_Task",
        ):
            assert expected in names, names
        # the clone is made in the offering's shape, with its NICs and powered on: nothing after it
        assert "ReconfigVM_Task" not in names and "PowerOnVM_Task" not in names, names
        assert all(t.duration_ms is not None for t in tasks)
        assert first.entries[0].type == "DeployVirtualMachine"

        second = await deployed_trail(cloud, s1, small, nets[:1], "second")
        assert second.status == "succeeded"
        assert not any(t == "TEMPLATE.CREATE" for t, _ in actions(second)), (
            "the seed exists: no TEMPLATE.CREATE"
        )
        assert "CopyVirtualDisk_Task" not in [e.task_name for e in second.entries if e.type == "VcenterTask"]


async def test_a_failed_deployments_trail_ends_with_the_failure_and_its_reason(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        cloud.sim.fail("CloneVM_Task", "InsufficientDiskSpace")
        trail = await deployed_trail(cloud, s1, small, [], "unlucky")
        assert trail.status == "failed"
        last = trail.entries[-1]
        assert last.type == "DeployVirtualMachineFailed"
        assert (
            "deployment of unlucky failed while cloning" in last.error_text
            and "NoDiskSpace" in last.error_text
        )
        assert trail.error_text == last.error_text
        assert ("VM.CREATE", "Failed") in actions(trail)
        failed_task = next(
            e for e in trail.entries if e.type == "VcenterTask" and e.task_name == "CloneVM_Task"
        )
        assert failed_task.fault == "NoDiskSpace" and failed_task.duration_ms is not None


class CloudStackConsumer:
    """What an unchanged CloudStack event consumer does: a queue of its own bound to cloudstack-events."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.received: list[aio_pika.abc.AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> CloudStackConsumer:
        self.connection = await aio_pika.connect(self.url)
        channel = await self.connection.channel()
        exchange = await channel.declare_exchange("cloudstack-events", "topic", durable=True)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, self.key)
        await queue.consume(self._on_message)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.connection.close()

    async def _on_message(self, message) -> None:
        async with message.process():
            self.received.append(message)
            self._arrived.set()

    def of(self, entityuuid: str) -> list[dict]:
        bodies = [json.loads(m.body) for m in self.received]
        return [b for b in bodies if b.get("entityuuid") == entityuuid]

    async def until(self, check, *, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not check():
                self._arrived.clear()
                await self._arrived.wait()


async def test_cloudstack_event_consumers_receive_deployments_as_cloudstack_sends_them(service_env):
    async with (
        Stack(service_env, storage=1, planner=1, audit=1) as cloud,
        CloudStackConsumer(cloud.env["AMQP_URL"], "management-server.ActionEvent.#") as consumer,
    ):
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=s1, service_offering_id=small, name="cs"
        )
        await cloud.call(request)
        vm = str(request.vm_id)

        def vm_created():
            return [b for b in consumer.of(vm) if b["event"] == "VM.CREATE"]

        await consumer.until(lambda: [b["status"] for b in vm_created()][-1:] == ["Completed"])
        keys = {m.routing_key for m in consumer.received if json.loads(m.body)["event"] == "VM.CREATE"}
        assert keys == {f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{vm}"}
        assert [b["status"] for b in vm_created()] == ["Created", "Scheduled", "Started", "Completed"]
        created, *_, completed = vm_created()
        assert {"user", "account", "event", "status", "entity", "entityuuid", "description",
                "eventDateTime"} <= set(completed)  # fmt: skip
        assert (completed["entity"], completed["entityuuid"], completed["VirtualMachine"]) == (
            "VirtualMachine", vm, vm,
        )  # fmt: skip
        assert created["description"] == "Successfully created entity for deploying cs from VM snapshot S1"
        assert completed["description"].startswith("Successfully completed deploying cs from VM snapshot S1")
        assert {(m.content_type, m.delivery_mode) for m in consumer.received} == {("text/plain", 2)}

        # a deployment that fails closes its root volume's VOLUME.CREATE with "Error while ..."
        cloud.sim.fail("CloneVM_Task", "InsufficientDiskSpace")
        trail = await deployed_trail(cloud, s1, small, [], "unlucky")
        assert trail.status == "failed"
        [root] = {e.resource_id for e in trail.entries if e.event_type == "VOLUME.CREATE"}

        def root_created():
            return [b for b in consumer.of(str(root)) if b["event"] == "VOLUME.CREATE"]

        await consumer.until(lambda: [b["status"] for b in root_created()][-1:] == ["Completed"])
        assert [b["status"] for b in root_created()] == ["Created", "Started", "Completed"]
        assert root_created()[-1]["description"].startswith("Error while root volume on ")
