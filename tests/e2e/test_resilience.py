"""What must hold when things go wrong: crashes, silence, and garbage collection racing with clones."""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from contracts import planner, storage
from services.hypervisor_agent.vsphere.session import VsphereSession
from tests.e2e.cloud import offering, prepare, root_disk, snapshot
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
FAST_SCAVENGER = {"scavenger_interval": 0.5, "scavenger_delay": 0}


def deploy(snapshot_id: uuid.UUID, offering_id: uuid.UUID, name: str) -> planner.DeployVirtualMachine:
    return planner.DeployVirtualMachine(
        vm_id=uuid.uuid4(), vm_snapshot_id=snapshot_id, service_offering_id=offering_id, name=name
    )


def only(cloud: Stack, service: str):
    [process] = [p for p in cloud.processes if p.name.startswith(service)]
    return process


async def test_a_seed_is_kept_while_linked_clones_hang_from_it_and_collected_after(service_env):
    async with Stack(service_env, storage=1, planner=1, **FAST_SCAVENGER) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        clone = await cloud.call(deploy(s1, small, "dependent"))
        [seed] = (await cloud.ask(storage.ListSeeds())).seeds
        [data] = [
            v
            for v in (await cloud.ask(storage.ListVolumes(vm_id=source.vm_id))).volumes
            if v.type == "DATADISK"
        ]
        extra = storage.CreateVolumeFromVmSnapshot(
            new_volume_id=uuid.uuid4(), vm_snapshot_id=s1, volume_id=data.id, name="witness"
        )
        await cloud.call(extra)

        await cloud.call(planner.DeleteVmSnapshot(vm_snapshot_id=s1))
        assert (await cloud.ask(storage.ListSeeds())).seeds[0].marked_for_gc
        # A scavenger pass after the mark: it expunges the deleted witness volume, and in the same
        # pass it looks at the seed, which a linked clone still hangs from.
        await cloud.call(storage.DeleteVolume(volume_id=extra.new_volume_id))
        await cloud.until(
            storage.ListVolumes(id=extra.new_volume_id),
            lambda a: a.volumes[0].state == "Expunged",
            what="pass",
        )
        assert [s.id for s in (await cloud.ask(storage.ListSeeds())).seeds] == [seed.id]
        assert cloud.sim.exists(seed.install_path) and not cloud.commands_seen("DeleteTemplate")

        await cloud.call(planner.DestroyVirtualMachine(vm_id=uuid.UUID(clone["vm_id"]), expunge=True))
        await cloud.until(storage.ListSeeds(), lambda a: a.seeds == [], what="the seed collected once unused")
        assert not cloud.sim.exists(seed.install_path)


def wait_for_running_task(url: str, method: str, timeout: float = 30) -> None:
    """Until vCenter itself reports a ``method`` task running (polled with a deadline)."""
    import time

    session = VsphereSession(url, datacenter="DC0", verify_ssl=False)
    session.connect()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tasks = session.call(lambda si: [t.info for t in si.content.taskManager.recentTask])
            if any(method in (info.descriptionId or "") and info.state == "running" for info in tasks):
                return
            time.sleep(0.05)
        raise AssertionError(f"vCenter never reported a running {method} task")
    finally:
        session.close()


async def test_an_agent_killed_mid_clone_does_not_make_a_second_vm(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        await cloud.call(deploy(s1, small, "warm-up"))  # the seed exists: the next deployment only clones
        cloud.sim.slow("CloneVM_Task", 3000)
        sent = await cloud.send(deploy(s1, small, "once"))
        await cloud.events.wait_for(
            lambda e: e.type == "CloneFromSnapshot" and e.payload["vm_name"] == "once"
        )
        await asyncio.to_thread(wait_for_running_task, cloud.sim.url, "Clone")
        agent = only(cloud, "agent")
        agent.signal(signal.SIGKILL)  # mid-clone: vCenter goes on with the task
        assert await asyncio.to_thread(agent.wait, 10) == -signal.SIGKILL
        cloud.processes.remove(agent)
        cloud.start("agent", "services.hypervisor_agent").wait_started()

        reply = await cloud.reply(sent, timeout=120)
        assert reply.type == "DeployVirtualMachineSucceeded", reply.payload
        names = [name for name in (await cloud.inventory())[0] if name == "once"]
        assert names == ["once"], "exactly one VM"


async def test_a_step_past_its_deadline_fails_the_deployment_with_a_reason(service_env):
    quick = {"step_timeout": 1, "max_resends": 1, "watchdog_interval": 0.3}
    async with Stack(service_env, storage=1, planner=1, **quick) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        agent = only(cloud, "agent")
        assert agent.stop() == 0  # vCenter's agent is gone: nothing will answer
        cloud.processes.remove(agent)
        request = deploy(s1, small, "silent")
        cloud.job = uuid.uuid4()
        failed = await cloud.refused(request)
        assert (
            "deployment of silent failed while reading the VM snapshot's configuration"
            in failed["error_text"]
        )
        assert "no reply within the step's deadline" in failed["error_text"]
        sent = [
            e for e in cloud.events.seen if e.type == "GetVmSnapshotConfigs" and e.correlation_id == cloud.job
        ]
        assert len(sent) == 2, "the step was sent once more (MAX_RESENDS=1) before it failed"
        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert vm.state == "Error"
        assert {h.cpu_mhz_used for h in (await cloud.ask(planner.ListHosts())).hosts} == {0}


async def test_an_agent_killed_mid_seed_copy_leaves_every_waiting_deployment_running_from_one_seed(
    service_env,
):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        fresh = await snapshot(cloud, source.vm_id, "fresh")
        small = await offering(cloud)
        cloud.sim.slow("CopyVirtualDisk_Task", 3000)
        requests = [deploy(fresh, small, f"waiting-{n}") for n in range(3)]
        sent = [await cloud.send(request) for request in requests]
        await cloud.events.wait_for(lambda e: e.type == "SeedTemplate")
        await asyncio.to_thread(wait_for_running_task, cloud.sim.url, "CopyVirtualDisk")
        agent = only(cloud, "agent")
        agent.signal(signal.SIGKILL)  # mid-copy: vCenter goes on copying the seed's disk
        assert await asyncio.to_thread(agent.wait, 10) == -signal.SIGKILL
        cloud.processes.remove(agent)
        cloud.start("agent", "services.hypervisor_agent").wait_started()

        replies = [await cloud.reply(envelope, timeout=120) for envelope in sent]
        assert [r.type for r in replies] == ["DeployVirtualMachineSucceeded"] * 3, [
            r.payload for r in replies
        ]
        [seed] = (await cloud.ask(storage.ListSeeds(vm_snapshot_id=fresh))).seeds
        assert seed.state == "Ready"
        vms, _ = await cloud.inventory()
        for request in requests:
            [record] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
            assert record.state == "Running"
            assert root_disk(vms[request.name]).parent_file == seed.install_path
        assert [name for name in vms if name.startswith("snapdeploy-seed-")] == [f"snapdeploy-seed-{seed.id}"]
        copies = {
            e.payload["task_key"]
            for e in cloud.events.seen
            if e.type == "VcenterTask" and e.payload["name"] == "CopyVirtualDisk_Task"
        }
        assert len(copies) == 1, "one copy of the seed's disk, waited for by the restarted agent"
