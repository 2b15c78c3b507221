"""revertToVMSnapshot and rebootVirtualMachine through the api (planner commands of INTERFACES.md)."""

from __future__ import annotations

import pytest

from contracts import planner
from tests.e2e.api_support import adopt, finished, user
from tests.support.stack import Stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (hasattr(planner, "RevertToVmSnapshot") and hasattr(planner, "RebootVirtualMachine")),
        reason="the planner does not offer revert and reboot yet",
    ),
]


async def test_revert_makes_the_snapshot_current_and_reboot_keeps_the_vm_running(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        bob, alice = await user(cloud, "bob"), await user(cloud, "alice")
        vm = await adopt(cloud, "bob")
        ids = []
        for name in ("S1", "S2"):
            taken = await bob.client.createVMSnapshot(virtualmachineid=vm["id"], name=name)
            assert (await finished(bob.client, taken["jobid"]))["jobstatus"] == 1
            ids.append(taken["id"])
        s1, s2 = ids

        status, _ = await alice.client.error("revertToVMSnapshot", vmsnapshotid=s1)
        assert status == 531 and len(cloud.commands_seen("RevertToVmSnapshot")) == 0

        reverted = await finished(bob.client, (await bob.client.revertToVMSnapshot(vmsnapshotid=s1))["jobid"])
        assert reverted["jobstatus"] == 1 and reverted["jobresult"]["virtualmachine"]["id"] == vm["id"]
        current = {s["id"]: s["current"] for s in (await bob.client.listVMSnapshot())["vmSnapshot"]}
        assert current == {s1: True, s2: False}
        taken = await bob.client.createVMSnapshot(virtualmachineid=vm["id"], name="S3")
        s3 = (await finished(bob.client, taken["jobid"]))["jobresult"]["vmsnapshot"]
        assert s3["parent"] == s1, "the next snapshot hangs from the one reverted to"

        [now] = (await bob.client.listVirtualMachines(id=vm["id"]))["virtualmachine"]
        if now["state"] != "Running":  # a disk-only snapshot reverts to a powered-off VM
            started = await finished(bob.client, (await bob.client.startVirtualMachine(id=vm["id"]))["jobid"])
            assert started["jobstatus"] == 1, started
        rebooted = await finished(bob.client, (await bob.client.rebootVirtualMachine(id=vm["id"]))["jobid"])
        assert rebooted["jobstatus"] == 1, rebooted
        assert rebooted["jobresult"]["virtualmachine"]["state"] == "Running"
