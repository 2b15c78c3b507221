"""vCenter faults during a deployment: a passing one is retried within a bound, a final one fails at once."""

from __future__ import annotations

import uuid

import pytest

from contracts import planner
from tests.e2e.cloud import offering, prepare, snapshot
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
QUICK_RETRIES = {"retry_backoff_base": 0.05, "retry_backoff_max": 0.1}


def deploy(snapshot_id: uuid.UUID, offering_id: uuid.UUID, name: str) -> planner.DeployVirtualMachine:
    return planner.DeployVirtualMachine(
        vm_id=uuid.uuid4(), vm_snapshot_id=snapshot_id, service_offering_id=offering_id, name=name
    )


def clone_tasks(cloud: Stack) -> list[dict]:
    return [
        e.payload
        for e in cloud.events.seen
        if e.type == "VcenterTask" and e.payload["name"] == "CloneVM_Task"
    ]


async def seeded(cloud: Stack) -> tuple[uuid.UUID, uuid.UUID]:
    """A snapshot with its seed made and an offering: the next deployment only clones."""
    source = await prepare(cloud)
    s1 = await snapshot(cloud, source.vm_id, "S1")
    small = await offering(cloud)
    await cloud.call(deploy(s1, small, "warm-up"))
    return s1, small


@pytest.mark.parametrize("fault", ["SystemError", "ConcurrentAccess", "Timedout"])
async def test_a_passing_vcenter_fault_during_a_clone_is_retried_and_the_vm_runs(service_env, fault):
    async with Stack(service_env, storage=1, planner=1, **QUICK_RETRIES) as cloud:
        s1, small = await seeded(cloud)
        before = len(clone_tasks(cloud))
        cloud.sim.fail("CloneVM_Task", fault, count=2)
        request = deploy(s1, small, "persistent")

        await cloud.call(request)

        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert vm.state == "Running"
        tries = clone_tasks(cloud)[before:]
        assert [(t["state"], t["fault"]) for t in tries] == [("error", fault)] * 2 + [("success", None)]
        assert [name for name in (await cloud.inventory())[0] if name == "persistent"] == ["persistent"]


async def test_a_passing_fault_that_does_not_pass_fails_the_deployment_after_the_bound(service_env):
    async with Stack(service_env, storage=1, planner=1, **QUICK_RETRIES) as cloud:
        s1, small = await seeded(cloud)
        before = len(clone_tasks(cloud))
        cloud.sim.fail("CloneVM_Task", "SystemError", count=-1)
        request = deploy(s1, small, "unlucky")

        failed = await cloud.refused(request)

        assert "deployment of unlucky failed while cloning" in failed["error_text"]
        assert "gave up after 10 attempts" in failed["error_text"] and "SystemError" in failed["error_text"]
        assert len(clone_tasks(cloud)[before:]) == 10, "one clone per delivery, up to the delivery limit"
        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert vm.state == "Error"
        assert "unlucky" not in (await cloud.inventory())[0]


@pytest.mark.parametrize(
    ("fault", "code"), [("NotSupported", 432), ("NoPermission", 530), ("FileNotFound", 431)]
)
async def test_a_final_vcenter_fault_fails_the_deployment_at_once_with_its_reason(service_env, fault, code):
    async with Stack(service_env, storage=1, planner=1, **QUICK_RETRIES) as cloud:
        s1, small = await seeded(cloud)
        before = len(clone_tasks(cloud))
        cloud.sim.fail("CloneVM_Task", fault, count=-1)
        request = deploy(s1, small, "refused")

        failed = await cloud.refused(request)

        assert failed["fault"] == fault and failed["error_code"] == code
        assert "deployment of refused failed while cloning" in failed["error_text"]
        assert len(clone_tasks(cloud)[before:]) == 1, "a final fault is not retried"
        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert vm.state == "Error" and fault in vm.reason
