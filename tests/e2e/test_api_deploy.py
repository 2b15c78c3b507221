"""Deploying from VM snapshots through the api, with the real cs client; jobs that outlive a replica."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.api_support import Client, admin, adopt, finished, user
from tests.e2e.cloud import root_disk, source_vm
from tests.support.stack import Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.e2e


async def progress(client: Client, job_id: str, seen, timeout: float = 60) -> dict:
    """queryAsyncJobResult until ``seen(answer)`` (with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not seen(answer := await client.queryAsyncJobResult(jobid=job_id)):
        assert answer["jobstatus"] == 0 and loop.time() < deadline, answer
        await asyncio.sleep(0.05)
    return answer


A = b"A" * 8192 + b"root disk at S1"


async def test_seed_then_deploys_copy_no_disk_and_jobs_answer_on_every_replica_across_restarts(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=2) as cloud:
        boss = admin(cloud)
        bob = await user(cloud, "bob")
        vm = await adopt(cloud, "bob")
        cloud.sim.write(root_disk(await source_vm(cloud)).file, A)
        taken = await bob.client.createVMSnapshot(virtualmachineid=vm["id"], name="S1")
        assert (await finished(bob.client, taken["jobid"]))["jobresult"]["vmsnapshot"]["state"] == "Ready"
        [snap] = (await bob.client.listVMSnapshot(vmsnapshotid=taken["id"]))["vmSnapshot"]
        [root] = [d for d in snap["disks"] if d["type"] == "ROOT"]
        assert snap["cpunumber"] == 2 and snap["storageid"] and snap["current"] is True
        offering = (await boss.createServiceOffering(name="small", cpunumber=2, cpuspeed=100, memory=128))[
            "serviceoffering"
        ]
        assert (await boss.listServiceOfferings())["serviceoffering"][0]["cpunumber"] == 2

        # seedTemplateFromVmSnapshot (admin), then a deployment that copies no disk
        seeding = await boss.seedTemplateFromVmSnapshot(
            zoneid=snap["zoneid"], vmsnapshotid=snap["id"], storageid=snap["storageid"]
        )
        seeded = (await finished(boss, seeding["jobid"]))["jobresult"]["seededtemplate"]
        assert (seeded["state"], seeded["storageid"]) == ("Ready", snap["storageid"])
        copies = len(cloud.commands_seen("SeedTemplate"))

        # deployed through replica 0 with neither zoneid nor templateid; replica 0 stops at once
        cloud.sim.slow("CloneVM_Task", 2000)
        started = await bob.client.deployVirtualMachine(
            vmsnapshotid=snap["id"], serviceofferingid=offering["id"], name="web-1"
        )
        cloud.api_processes[0].stop()
        second = Client(cloud.api_urls[1], bob.client.cs.key, bob.client.cs.secret)
        cloning = await progress(second, started["jobid"], lambda j: j.get("jobprocstep") == "cloning")
        assert cloning["jobstatus"] == 0 and cloning["jobprocstatus"] > 0
        cloud.sim.slow("CloneVM_Task", 0)
        done = await finished(second, started["jobid"])
        assert (done["jobstatus"], done["jobresultcode"]) == (1, 0), done
        web = done["jobresult"]["virtualmachine"]
        assert (web["id"], web["state"], web["vmsnapshotid"]) == (started["id"], "Running", snap["id"])
        # the configuration read, the seed, the clone (powered on with it) and the record
        assert done["jobprocstatus"] >= 4, "the saga's steps were counted"
        assert len(cloud.commands_seen("SeedTemplate")) == copies, "no disk was copied"
        in_vcenter = (await cloud.inventory())[0]["web-1"]
        assert root_disk(in_vcenter).parent_file == seeded["installpath"], "a linked clone of the seed"

        # a replica started afterwards answers the same job; the seed lists its clone
        third = Client(cloud.start_api(), bob.client.cs.key, bob.client.cs.secret)
        again = await third.queryAsyncJobResult(jobid=started["jobid"])
        assert (again["jobstatus"], again["jobresult"]["virtualmachine"]["id"]) == (1, started["id"])
        jobs = (await third.listAsyncJobs())["asyncjobs"]
        assert started["jobid"] in {j["jobid"] for j in jobs}
        boss3 = Client(cloud.api_urls[-1], cloud.admin_key, cloud.admin_secret)
        [listed] = (await boss3.listSeededTemplates(storageid=snap["storageid"]))["seededtemplate"]
        assert started["id"] in listed["virtualmachineids"]

        # a volume from the snapshot's root disk holds the bytes of the disk at the snapshot
        making = await third.createVolumeFromVmSnapshot(
            vmsnapshotid=snap["id"], volumeid=root["id"], name="from-s1"
        )
        volume = (await finished(third, making["jobid"]))["jobresult"]["volume"]
        assert (volume["id"], volume["state"], volume["size"]) == (making["id"], "Ready", root["size"])
        assert sha256(cloud.sim.read(volume["path"])) == sha256(A)

        # attach and resize are refused while the VM has VM snapshots, and change nothing
        attach = await third.attachVolume(id=volume["id"], virtualmachineid=vm["id"])
        refused = await finished(third, attach["jobid"])
        assert (
            refused["jobstatus"] == 2 and refused["jobresult"]["errorcode"] == refused["jobresultcode"] != 0
        )
        resize = await third.resizeVolume(id=root["id"], size=100)
        refused = await finished(third, resize["jobid"])
        assert refused["jobstatus"] == 2 and "snapshot" in refused["jobresult"]["errortext"].lower()
        [unchanged] = (await third.listVolumes(id=root["id"]))["volume"]
        assert unchanged["size"] == root["size"]
        [detached] = (await third.listVolumes(id=volume["id"]))["volume"]
        assert "virtualmachineid" not in detached

        # the deployment's trail and events, from the audit
        trail = (await third.getDeploymentTrail(virtualmachineid=started["id"]))["trail"]
        assert trail["jobid"] == started["jobid"] and any(
            e["name"] == "CloneVM_Task" for e in trail["entries"]
        )
        events = (await third.listEvents(type="VM.CREATE"))["event"]
        assert {e["resourceid"] for e in events} >= {started["id"]}


async def test_a_deployment_out_of_pool_capacity_fails_533_and_gives_the_allocation_back(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1, storage_overprovisioning=0.000001) as cloud:
        boss = admin(cloud)
        bob = await user(cloud, "bob")
        vm = await adopt(cloud, "bob")
        taken = await bob.client.createVMSnapshot(virtualmachineid=vm["id"], name="S1")
        await finished(bob.client, taken["jobid"])
        offering = (await boss.createServiceOffering(name="small", cpunumber=2, cpuspeed=100, memory=128))[
            "serviceoffering"
        ]
        before = {p["id"]: p["disksizeallocated"] for p in (await boss.listStoragePools())["storagepool"]}
        started = await bob.client.deployVirtualMachine(
            vmsnapshotid=taken["id"], serviceofferingid=offering["id"]
        )
        failed = await finished(bob.client, started["jobid"])
        assert (failed["jobstatus"], failed["jobresultcode"]) == (2, 533), failed
        assert failed["jobresult"]["errorcode"] == 533 and "capacity" in failed["jobresult"]["errortext"]
        after = {p["id"]: p["disksizeallocated"] for p in (await boss.listStoragePools())["storagepool"]}
        assert after == before
        [gone] = (await bob.client.listVirtualMachines(id=started["id"]))["virtualmachine"]
        assert gone["state"] == "Error"
