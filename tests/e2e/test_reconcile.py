"""Reconciliation: what a crash left in vCenter is removed; what snapdeploy did not make is left alone."""

from __future__ import annotations

import asyncio
import signal
import uuid

import asyncpg
import pytest
from pyVmomi import vim

from contracts import planner, storage
from services.hypervisor_agent.vsphere import props
from services.hypervisor_agent.vsphere.inventory import SNAPDEPLOY_KEY
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import wait_for_task
from tests.e2e.cloud import ACCOUNT, offering, prepare, snapshot
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
AT_ONCE = {"reconcile_grace": 0, "reconcile_interval": 0}


class Leftovers:
    """vCenter objects made behind the records' back, as a crash between vCenter and them leaves them."""

    def __init__(self) -> None:
        self.vm_id, self.seed_id, self.volume_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.seed = f"snapdeploy-seed-{self.seed_id}"
        self.disk = f"[ds1] snapdeploy-volumes/{self.volume_id}.vmdk"

    def make(self, url: str) -> None:
        session = VsphereSession(url, datacenter="DC0", verify_ssl=False)
        session.connect()
        try:
            content = session.content
            [(source, _)] = [
                (vm, v)
                for vm, v in props.contents(content, content.rootFolder, {vim.VirtualMachine: ["name"]})
                if v["name"] == "src-vm"
            ]

            def run(task):
                outcome = wait_for_task(session._si, task, timeout=30, content=content)
                assert outcome.state == "success", outcome

            def clone(name: str, snapdeploy_id: uuid.UUID | None, template: bool = False) -> None:
                extra = (
                    [vim.option.OptionValue(key=SNAPDEPLOY_KEY, value=str(snapdeploy_id))]
                    if snapdeploy_id
                    else []
                )
                spec = vim.vm.CloneSpec(
                    location=vim.vm.RelocateSpec(), template=template, powerOn=False,
                    config=vim.vm.ConfigSpec(extraConfig=extra),
                )  # fmt: skip
                run(source.CloneVM_Task(folder=session.datacenter.vmFolder, name=name, spec=spec))

            clone("leftover", self.vm_id)
            clone(self.seed, self.seed_id, template=True)
            clone("foreign", None)  # an operator's VM: no snapdeploy id
            clone(f"snapdeploy-seed-{uuid.uuid4()}-copy", None, template=True)  # our prefix, not our id
            content.fileManager.MakeDirectory(
                name="[ds1] snapdeploy-volumes", datacenter=session.datacenter, createParentDirectories=True
            )
            run(
                content.virtualDiskManager.CopyVirtualDisk_Task(
                    sourceName="[ds1] src-vm/src-vm_1.vmdk", sourceDatacenter=session.datacenter,
                    destName=self.disk, destDatacenter=session.datacenter, force=False,
                )
            )  # fmt: skip
        finally:
            session.close()


def actions(cloud: Stack, resource_id: uuid.UUID) -> list[dict]:
    return [
        e.payload
        for e in cloud.events.seen
        if e.type == "ActionEvent" and e.payload["resource_id"] == str(resource_id)
    ]


async def test_a_crash_left_vm_disk_and_seed_are_removed_and_nothing_else(service_env):
    async with Stack(service_env, storage=1, planner=1, **AT_ONCE) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        kept = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=s1, service_offering_id=await offering(cloud), name="kept"
        )
        await cloud.call(kept)
        left = Leftovers()
        await asyncio.to_thread(left.make, cloud.sim.url)
        before = set((await cloud.inventory())[0])
        assert {"leftover", left.seed, "foreign"} <= before and cloud.sim.exists(left.disk)

        async def gone() -> set[str]:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while True:
                names = set((await cloud.inventory())[0])  # every sync is a reconciliation pass
                if not names & {"leftover", left.seed} and not cloud.sim.exists(left.disk):
                    return names
                assert loop.time() < deadline, f"still in vCenter: {names & {'leftover', left.seed}}"
                await asyncio.sleep(0.2)

        after = await gone()

        assert after == before - {"leftover", left.seed}, "only the leftovers went"
        assert cloud.sim.exists("[ds1] src-vm/src-vm_1.vmdk")
        [vm] = (await cloud.ask(planner.ListVirtualMachines(id=kept.vm_id))).vms
        assert vm.state == "Running"
        for resource_id, event_type in [
            (left.vm_id, "VM.EXPUNGE"),
            (left.seed_id, "TEMPLATE.DELETE"),
            (left.volume_id, "VOLUME.DELETE"),
        ]:
            found = actions(cloud, resource_id)
            assert found and found[0]["event_type"] == event_type, found
            assert "reconciliation" in found[0]["description"]
        assert not [e for e in cloud.events.seen if e.type == "ActionEvent" and "foreign" in str(e.payload)]


async def test_in_report_mode_an_orphan_is_reported_and_left_in_place(service_env):
    async with Stack(service_env, storage=1, planner=1, reconcile_mode="report", **AT_ONCE) as cloud:
        await prepare(cloud)
        left = Leftovers()
        await asyncio.to_thread(left.make, cloud.sim.url)
        await cloud.inventory()
        reported = await cloud.events.wait_for(
            lambda e: e.type == "ActionEvent" and e.payload["resource_id"] == str(left.vm_id)
        )
        assert "reported only" in reported[0].payload["description"]
        await cloud.events.wait_for(
            lambda e: e.type == "ActionEvent" and e.payload["resource_id"] == str(left.volume_id)
        )
        names = set((await cloud.inventory())[0])
        assert {"leftover", left.seed, "foreign"} <= names and cloud.sim.exists(left.disk)
        assert not cloud.commands_seen("DestroyVm") and not cloud.commands_seen("DeleteDisk")


async def test_records_a_crash_left_in_a_transitional_state_go_to_error_with_a_reason(service_env):
    async with Stack(service_env, storage=1, planner=1, **AT_ONCE) as cloud:
        await prepare(cloud)
        vm_id, volume_id = uuid.uuid4(), uuid.uuid4()
        db = await asyncpg.connect(service_env["DATABASE_URL"])
        try:  # what a crash between two writes of an older release could leave: nothing drives them
            await db.execute(
                """INSERT INTO planner.instances (uuid, name, account_id, zone_id, state)
                   VALUES ($1, 'half-made', $2, 'zone1', 'Starting')""",
                vm_id,
                ACCOUNT,
            )
            await db.execute(
                """INSERT INTO storage.volumes (uuid, name, type, state, size_bytes, pool_id)
                   SELECT $1, 'half-copied', 'DATADISK', 'Creating', 1024, id FROM storage.pools LIMIT 1""",
                volume_id,
            )
        finally:
            await db.close()

        await cloud.inventory()

        [vm] = (
            await cloud.until(
                planner.ListVirtualMachines(id=vm_id), lambda a: a.vms[0].state == "Error", what="VM in Error"
            )
        ).vms
        assert "stuck in Starting" in vm.reason
        [volume] = (
            await cloud.until(
                storage.ListVolumes(id=volume_id),
                lambda a: a.volumes[0].state != "Creating",
                what="volume moved",
            )
        ).volumes
        assert volume.state in ("Error", "Expunging", "Expunged")
        for resource_id in (vm_id, volume_id):
            [action] = await cloud.events.wait_for(
                lambda e, r=resource_id: e.type == "ActionEvent" and e.payload["resource_id"] == str(r)
            )
            assert (
                action.payload["state"] == "Failed"
                and "found by reconciliation" in action.payload["description"]
            )


async def test_a_grace_period_carries_on_across_a_planner_restart(service_env):
    grace = 5.0
    async with Stack(service_env, storage=1, planner=1, reconcile_grace=grace, reconcile_interval=0) as cloud:
        await prepare(cloud)
        left = Leftovers()
        await asyncio.to_thread(left.make, cloud.sim.url)
        vms, _ = await cloud.inventory()  # the leftover VM is first seen now
        conn = await asyncpg.connect(service_env["DATABASE_URL"])
        try:
            for _ in range(100):  # until the planner has recorded the sighting
                age = await conn.fetchval(
                    "SELECT extract(epoch FROM now()) - first_seen FROM planner.reconcile_sightings"
                    " WHERE scope = 'vm:zone1' AND key = $1",
                    str(left.vm_id),
                )
                if age is not None:
                    break
                await asyncio.sleep(0.1)
        finally:
            await conn.close()
        assert age is not None and not cloud.commands_seen("DestroyVm"), "seen, not acted on before its grace"

        [process] = [p for p in cloud.processes if p.name.startswith("planner")]
        process.signal(signal.SIGKILL)
        await asyncio.to_thread(process.wait, 10)
        cloud.processes.remove(process)
        await asyncio.to_thread(cloud.start("planner", "services.planner").wait_started)
        # The grace period itself is what this test is about: let it pass, counted from the sighting.
        await asyncio.sleep(max(0.0, grace - age) + 0.5)
        await cloud.inventory()
        [synced] = cloud.events.matching(lambda e: e.type == "InventorySynced")[-1:]

        # A planner that had forgotten the first sighting would start the grace period over here.
        [destroy] = await cloud.events.wait_for(
            lambda e: e.type == "DestroyVm" and e.causation_id == synced.message_id, timeout=20
        )
        assert destroy.payload["vm_ref"] == vms["leftover"].ref
        for _ in range(100):  # the destroy runs: the leftover goes, the operator's VM stays
            names = set((await cloud.inventory())[0])
            if "leftover" not in names:
                break
            await asyncio.sleep(0.2)
        assert "leftover" not in names and "foreign" in names
