"""Deploying VMs from VM snapshots, end to end: every service a process, the simulator over HTTPS.

Each test is one of the spec's test guidelines or one of DESIGN section 5's rules.
"""

from __future__ import annotations

import asyncio
import signal
import uuid

import pytest

from contracts import planner, storage
from contracts.envelope import Actor, Envelope
from contracts.vsphere import VmInfo
from shared.messaging import command_out
from tests.e2e.cloud import ACCOUNT, networks, offering, prepare, root_disk, snapshot, source_vm
from tests.support.stack import ZONE, Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.e2e
A = b"A" * 8192 + b"root disk at S1"
B = b"B" * 8192 + b"root disk at S2"
C = b"C" * 8192 + b"root disk at S3"
FAST_SCAVENGER = {"scavenger_interval": 0.5, "scavenger_delay": 0}


def deploy(
    snapshot_id: uuid.UUID, offering_id: uuid.UUID, network_ids=(), **kw
) -> planner.DeployVirtualMachine:
    return planner.DeployVirtualMachine(
        vm_id=uuid.uuid4(), vm_snapshot_id=snapshot_id, service_offering_id=offering_id,
        network_ids=list(network_ids), **kw,
    )  # fmt: skip


async def vcenter_vms(cloud: Stack) -> dict[str, VmInfo]:
    return (await cloud.inventory())[0]


async def snapshot_with(cloud: Stack, vm_id: uuid.UUID, name: str, content: bytes) -> uuid.UUID:
    cloud.sim.write(root_disk(await source_vm(cloud)).file, content)
    return await snapshot(cloud, vm_id, name)


async def figures(cloud: Stack) -> tuple[int, int, int]:
    """Pool ds1's allocation, and CPU and memory reserved across hosts."""
    pool = {p.name: p for p in (await cloud.ask(storage.ListStoragePools(zone_id=ZONE))).pools}["ds1"]
    hosts = (await cloud.ask(planner.ListHosts(zone_id=ZONE))).hosts
    return pool.allocated_bytes, sum(h.cpu_mhz_used for h in hosts), sum(h.memory_used_bytes for h in hosts)


async def test_the_deployed_vm_has_the_snapshots_root_disk_the_chosen_networks_and_offering(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud, cpus=2, mhz=200, memory_mb=256)
        web, db = await networks(cloud, "pg-web", "pg-db")
        request = deploy(s1, small, [web, db], name="web-1")
        deployed = await cloud.call(request)

        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert (vm.state, vm.name, deployed["name"]) == ("Running", "web-1", "web-1")
        assert [n.network for n in vm.nics] == ["pg-web", "pg-db"]
        [root] = (await cloud.ask(storage.ListVolumes(vm_id=request.vm_id))).volumes
        assert (root.state, root.type, root.pool_id) == ("Ready", "ROOT", storage.pool_id(ZONE, "ds1"))
        assert sha256(cloud.sim.read(root.disk_path)) == sha256(A), "root disk identical to the snapshot's"

        in_vcenter = (await vcenter_vms(cloud))["web-1"]
        assert (in_vcenter.num_cpus, in_vcenter.memory_mb, in_vcenter.power_state) == (2, 256, "poweredOn")
        assert [n.network for n in in_vcenter.nics] == ["pg-web", "pg-db"], "NICs in the requested order"
        assert root_disk(in_vcenter).parent_file is not None, "a linked clone of the seed"
        [seed] = (await cloud.ask(storage.ListSeeds())).seeds
        assert root_disk(in_vcenter).parent_file == seed.install_path
        assert vm.host_id in {h.id for h in (await cloud.ask(planner.ListHosts())).hosts if "ds1" in h.pools}


async def test_later_deployments_copy_no_disk_and_a_snapshot_in_the_middle_of_the_tree_deploys(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        s2 = await snapshot_with(cloud, source.vm_id, "S2", B)
        s3 = await snapshot_with(cloud, source.vm_id, "S3", C)
        tree = {
            s.id: s.parent_id
            for s in (await cloud.ask(planner.ListVmSnapshots(vm_id=source.vm_id))).snapshots
        }
        assert (tree[s2], tree[s3]) == (s1, s2)
        small = await offering(cloud)

        def copies() -> int:
            return len(
                [
                    e
                    for e in cloud.events.seen
                    if e.type == "VcenterTask" and e.payload["name"] == "CopyVirtualDisk_Task"
                ]
            )

        first = await cloud.call(deploy(s2, small))
        after_first = copies()
        assert after_first == 1, "the first deployment seeds once"
        later = [await cloud.call(deploy(s2, small)) for _ in range(2)]
        assert copies() == after_first, "the second and later deployments copy no disk"
        for deployed in [first, *later]:
            [root] = (await cloud.ask(storage.ListVolumes(vm_id=uuid.UUID(deployed["vm_id"])))).volumes
            assert sha256(cloud.sim.read(root.disk_path)) == sha256(B), "the middle snapshot's bytes"


async def test_storage_and_host_capacity_are_exact_after_deploys_and_destroys(service_env):
    async with Stack(service_env, storage=1, planner=1, **FAST_SCAVENGER) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud, cpus=2, mhz=150, memory_mb=200)
        before = await figures(cloud)
        root_size = root_disk(source.vm).size_bytes

        deployed = [await cloud.call(deploy(s1, small)) for _ in range(3)]
        pool, cpu, memory = await figures(cloud)
        assert pool == before[0] + root_size + 3 * root_size, (
            "seed (full size) + 3 linked clones (virtual size)"
        )
        assert (cpu, memory) == (before[1] + 3 * 300, before[2] + 3 * 200 * 2**20)

        for vm in deployed:
            await cloud.call(planner.DestroyVirtualMachine(vm_id=uuid.UUID(vm["vm_id"]), expunge=True))
        await cloud.until(
            storage.ListVolumes(state="Expunged"), lambda a: len(a.volumes) == 3, what="root volumes expunged"
        )
        assert await figures(cloud) == (before[0] + root_size, before[1], before[2]), "only the seed stays"
        left = await vcenter_vms(cloud)
        assert not any(vm["name"] in left for vm in deployed)


async def test_refused_requests_answer_with_their_error_and_create_nothing(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud)
        one_cpu = await offering(cloud, cpus=1, name="one-cpu")
        far_host = next(h for h in (await cloud.ask(planner.ListHosts())).hosts if "ds1" not in h.pools)
        before = (await cloud.ask(planner.ListVirtualMachines())).vms

        async def refused(command, code: int, text: str, actor: Actor | None = None) -> None:
            envelope = Envelope.wrap(
                command, source="test", correlation_id=uuid.uuid4(), actor=actor or Actor(role="admin")
            )
            await cloud.bus.publish_until_confirmed(command_out(envelope, command))
            reply = await cloud.reply(envelope)
            assert reply.type == "DeployVirtualMachineFailed", reply.payload
            assert reply.payload["error_code"] == code, reply.payload
            assert text in reply.payload["error_text"], reply.payload

        await refused(deploy(s1, small, zone_id=ZONE), 431, "zone_id cannot be given with vm_snapshot_id")
        await refused(deploy(s1, None), 431, "service_offering_id is required")
        await refused(deploy(uuid.uuid4(), small), 431, "does not exist")
        await refused(deploy(s1, one_cpu), 431, "has 1 vCPUs; the VM had 2")
        await refused(
            deploy(s1, small, host_id=far_host.id), 431, f"host {far_host.name} cannot reach storage pool ds1"
        )
        stranger = Actor(account_id=uuid.uuid4(), role="user")
        await refused(deploy(s1, small), 531, "may not use VM snapshot S1", actor=stranger)
        both = Envelope.wrap(deploy(s1, small), source="test", correlation_id=uuid.uuid4())
        both = both.model_copy(update={"payload": {**both.payload, "template_id": str(uuid.uuid4())}})
        await cloud.bus.publish_raw(
            "snapdeploy.commands", "planner.deploy_virtual_machine", both.to_bytes(),
            message_id=str(both.message_id), type=both.type,
        )  # fmt: skip
        reply = await cloud.reply(both)
        assert reply.payload["error_code"] == 431
        assert "exactly one of vm_snapshot_id and template_id" in reply.payload["error_text"]

        after = (await cloud.ask(planner.ListVirtualMachines())).vms
        assert [vm.id for vm in after] == [vm.id for vm in before], "no instance was created"
        assert (await cloud.ask(storage.ListSeeds())).seeds == []
        assert {h.cpu_mhz_used for h in (await cloud.ask(planner.ListHosts())).hosts} == {0}


@pytest.mark.parametrize("method", ["CloneVM_Task", "PowerOnVM_Task"])
async def test_a_vcenter_fault_ends_in_error_with_a_reason_and_a_clean_inventory(service_env, method):
    async with Stack(service_env, storage=1, planner=1, **FAST_SCAVENGER) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud)
        await cloud.call(deploy(s1, small))  # the seed exists; the fault hits a linked clone's deployment
        before = await figures(cloud)
        names_before = set(await vcenter_vms(cloud))

        cloud.sim.fail(method, "InsufficientDiskSpace" if method == "CloneVM_Task" else "InvalidPowerState")
        request = deploy(s1, small, name="doomed")
        failed = await cloud.refused(request)
        # the clone powers its VM on: a failed power-on fails the clone, which says so
        assert "deployment of doomed failed while cloning" in failed["error_text"]
        if method == "PowerOnVM_Task":
            assert "was cloned but did not power on" in failed["error_text"]
        assert failed["fault"] == ("NoDiskSpace" if method == "CloneVM_Task" else "InvalidPowerState")

        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert vm.state == "Error" and vm.reason == failed["error_text"]
        assert set(await vcenter_vms(cloud)) == names_before, "no partial VM left in vCenter"
        await cloud.until(
            storage.ListVolumes(vm_id=request.vm_id),
            lambda a: all(v.state == "Expunged" for v in a.volumes), what="root volume collected",
        )  # fmt: skip
        assert await figures(cloud) == before, "host and pool capacity released"


async def test_a_planner_killed_during_a_deployment_completes_it_after_restart(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud)
        cloud.sim.slow("CloneVM_Task", 3000)
        request = deploy(s1, small, name="survivor")
        sent = await cloud.send(request)
        await cloud.events.wait_for(
            lambda e: e.type == "CloneFromSnapshot" and e.payload["vm_name"] == "survivor"
        )
        [old_planner] = [p for p in cloud.processes if p.name.startswith("planner")]
        old_planner.signal(signal.SIGKILL)
        assert await asyncio.to_thread(old_planner.wait, 10) == -signal.SIGKILL
        cloud.processes.remove(old_planner)
        cloud.start("planner", "services.planner").wait_started()

        reply = await cloud.reply(sent, timeout=90)
        assert reply.type == "DeployVirtualMachineSucceeded", reply.payload
        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert vm.state == "Running"
        assert [n for n in await vcenter_vms(cloud) if n == "survivor"] == ["survivor"], "exactly one VM"


async def test_twenty_concurrent_deployments_from_one_snapshot_make_one_seed_and_twenty_running_vms(
    service_env,
):
    async with Stack(service_env, storage=2, planner=2) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud, cpus=2, mhz=100, memory_mb=128)
        before = await figures(cloud)
        requests = [deploy(s1, small, name=f"burst-{i:02d}") for i in range(20)]
        sent = await asyncio.gather(*(cloud.send(r) for r in requests))
        replies = await asyncio.gather(*(cloud.reply(s, timeout=180) for s in sent))
        assert [r.type for r in replies] == ["DeployVirtualMachineSucceeded"] * 20, [
            r.payload for r in replies if r.type.endswith("Failed")
        ]
        assert len((await cloud.ask(storage.ListSeeds())).seeds) == 1
        assert len(cloud.commands_seen("SeedTemplate")) == 1, "one copy for all twenty"
        running = (await cloud.ask(planner.ListVirtualMachines(state="Running"))).vms
        assert {vm.name for vm in running} >= {f"burst-{i:02d}" for i in range(20)}
        root_size = root_disk(source.vm).size_bytes
        assert await figures(cloud) == (
            before[0] + 21 * root_size,
            before[1] + 20 * 200,
            before[2] + 20 * 128 * 2**20,
        )
        in_vcenter = await vcenter_vms(cloud)
        assert all(in_vcenter[f"burst-{i:02d}"].power_state == "poweredOn" for i in range(20))


async def test_lifecycle_of_a_vm_deployed_from_a_snapshot_is_like_any_other(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot_with(cloud, source.vm_id, "S1", A)
        small = await offering(cloud)
        vm_id = uuid.UUID((await cloud.call(deploy(s1, small, name="cycle")))["vm_id"])
        await cloud.call(planner.StopVirtualMachine(vm_id=vm_id))
        assert (await vcenter_vms(cloud))["cycle"].power_state == "poweredOff"
        await cloud.call(planner.StartVirtualMachine(vm_id=vm_id))
        assert (await vcenter_vms(cloud))["cycle"].power_state == "poweredOn"
        child = await snapshot(cloud, vm_id, "of-the-clone")
        grandchild = await cloud.call(deploy(child, small, name="grandchild"))
        assert grandchild["name"] == "grandchild"
        destroyed = await cloud.call(planner.DestroyVirtualMachine(vm_id=vm_id, expunge=True))
        assert destroyed["state"] == "Expunged"
        assert "cycle" not in await vcenter_vms(cloud)
        assert source.vm_id != vm_id and ACCOUNT
