"""Deploying VMs from VM snapshots, end to end: every service a process, the simulator over HTTPS."""

from __future__ import annotations

import uuid

import pytest

from contracts import planner, storage
from tests.e2e.cloud import networks, offering, prepare, root_disk, snapshot, source_vm
from tests.support.stack import Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.e2e
A = b"A" * 8192 + b"root disk at S1"


async def test_a_vm_deployed_from_a_snapshot_has_its_root_disk_networks_and_offering(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        source = await prepare(cloud)
        cloud.sim.write(root_disk(await source_vm(cloud)).file, A)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud, cpus=2, mhz=200, memory_mb=256)
        web, db = await networks(cloud, "pg-web", "pg-db")
        vm_id = uuid.uuid4()
        deployed = await cloud.call(
            planner.DeployVirtualMachine(
                vm_id=vm_id, vm_snapshot_id=s1, service_offering_id=small, network_ids=[web, db], name="web-1"
            )
        )
        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=vm_id))).vms
        assert vm.state == "Running" and deployed["name"] == "web-1"
        assert [n.network for n in vm.nics] == ["pg-web", "pg-db"]
        assert (vm.cpu_number, vm.memory_mb) == (2, 256)
        [root] = (await cloud.ask(storage.ListVolumes(vm_id=vm_id))).volumes
        assert root.state == "Ready" and root.type == "ROOT"
        assert sha256(cloud.sim.read(root.disk_path)) == sha256(A)
