"""Deploying from a template goes through the same pipeline as from a VM snapshot, minus the seed."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pyVmomi import vim

from contracts import planner, storage
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import wait_for_task
from tests.e2e.cloud import networks, offering, prepare, root_disk, source_vm
from tests.support.stack import ZONE, Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.e2e
GOLDEN = b"G" * 8192 + b"the golden image"


def make_template(url: str, name: str) -> None:
    """What an operator does in vCenter: clone a VM, give it a base snapshot, mark it a template."""
    session = VsphereSession(url, datacenter="DC0", verify_ssl=False)
    session.connect()
    try:

        def build(si):
            view = si.content.viewManager.CreateContainerView(
                si.content.rootFolder, [vim.VirtualMachine], True
            )
            source = next(vm for vm in view.view if vm.name == "src-vm")
            spec = vim.vm.CloneSpec(location=vim.vm.RelocateSpec(pool=source.resourcePool), powerOn=False)
            wait_for_task(si, source.CloneVM_Task(folder=source.parent, name=name, spec=spec), timeout=30)
            golden = si.content.searchIndex.FindChild(source.parent, name)
            wait_for_task(
                si, golden.CreateSnapshot_Task(name="base", memory=False, quiesce=False), timeout=30
            )
            golden.MarkAsTemplate()

        session.call(build)
    finally:
        session.close()


async def test_a_template_deploys_through_the_same_pipeline_without_a_disk_copy(service_env):
    async with Stack(service_env, storage=1, planner=1) as cloud:
        await prepare(cloud)
        src = await source_vm(cloud)
        cloud.sim.write(root_disk(src).file, GOLDEN)
        ds1 = storage.pool_id(ZONE, "ds1")
        before = {p.id: p.allocated_bytes for p in (await cloud.ask(storage.ListStoragePools())).pools}[ds1]
        await asyncio.to_thread(make_template, cloud.sim.url, "golden")
        await cloud.inventory()
        found = await cloud.until(
            storage.ListTemplates(zone_id=ZONE),
            lambda a: any(t.name == "golden" for t in a.templates),
            what="template",
        )
        [golden] = [t for t in found.templates if t.name == "golden"]
        assert golden.deployable and golden.pool_id == ds1
        after = {p.id: p.allocated_bytes for p in (await cloud.ask(storage.ListStoragePools())).pools}[ds1]
        assert after == before + golden.size_bytes == before + sum(d.size_bytes for d in src.disks), (
            "it occupies ds1"
        )
        assert not any(t.name.startswith("snapdeploy-seed-") for t in found.templates), (
            "seeds are not templates"
        )
        small = await offering(cloud)
        [web] = await networks(cloud, "pg-web")
        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), template_id=golden.id, zone_id=ZONE, service_offering_id=small,
            network_ids=[web], name="from-golden",
        )  # fmt: skip
        await cloud.call(request)

        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms
        assert (vm.state, vm.vm_template_id, [n.network for n in vm.nics]) == (
            "Running",
            golden.id,
            ["pg-web"],
        )
        [root] = (await cloud.ask(storage.ListVolumes(vm_id=request.vm_id))).volumes
        assert root.template_id == golden.id, "the root volume's restore point is the template"
        assert sha256(cloud.sim.read(root.disk_path)) == sha256(GOLDEN)
        assert not [e for e in cloud.events.seen if e.type == "SeedTemplate"], "a template needs no seed"
        in_vcenter = (await cloud.inventory())[0]["from-golden"]
        assert root_disk(in_vcenter).parent_file is not None and in_vcenter.power_state == "poweredOn"

        refused = await cloud.refused(
            planner.DeployVirtualMachine(
                vm_id=uuid.uuid4(), template_id=golden.id, zone_id="zone9", service_offering_id=small
            )
        )
        assert refused["error_code"] == 431 and "is in zone zone1, not zone9" in refused["error_text"]
