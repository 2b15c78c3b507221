"""The unchanged ``cs`` client (PyPI ``cs``), CLI and library, against the api: every service a process.

What a CloudStack user types: deploys from a VM snapshot with no zoneid and no templateid,
blocking and ``--async`` (then ``queryAsyncJobResult`` until done), over GET and POST; the
library's ``fetch_list`` walking every page; the CLI's error output on a refused request.
"""

from __future__ import annotations

import asyncio

import pytest

from contracts import vsphere
from tests.e2e.api_cloud import library, tenant
from tests.support.stack import Stack
from tests.support.vcsim import sha256

pytestmark = pytest.mark.e2e


async def test_cs_cli_deploys_from_a_vm_snapshot_blocking_and_async_over_get_and_post(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud:
        t = await tenant(cloud)
        content = b"root disk as it was at web-base\n" * 128
        cloud.sim.write(vsphere.root_disk(t.source_vm.disks).file, content)
        code, made, err = await t.cs(
            "createVMSnapshot", f"virtualmachineid={t.source['id']}", "name=web-base"
        )
        assert code == 0, err
        snapshot = made["vmsnapshot"]
        assert snapshot["state"] == "Ready" and snapshot["virtualmachineid"] == t.source["id"]

        # Blocking, GET: cs polls queryAsyncJobResult itself and prints the job's result.
        code, deployed, err = await t.cs(
            "deployVirtualMachine", f"vmsnapshotid={snapshot['id']}",
            f"serviceofferingid={t.offering['id']}", "name=web-1",
        )  # fmt: skip
        assert code == 0, err
        web_1 = deployed["virtualmachine"]
        assert web_1["name"] == "web-1" and web_1["state"] == "Running"
        assert web_1["serviceofferingid"] == t.offering["id"]
        assert web_1["zoneid"] == t.source["zoneid"]  # the zone came from the snapshot

        # --async over POST: the answer is the new VM's id and the job, at once.
        code, started, err = await t.cs(
            "--async", "--post", "deployVirtualMachine", f"vmsnapshotid={snapshot['id']}",
            f"serviceofferingid={t.offering['id']}", "name=web-2",
        )  # fmt: skip
        assert code == 0, err
        assert set(started) == {"id", "jobid"}
        job = await until_done(t, started["jobid"])
        assert job["jobstatus"] == 1 and job["jobresultcode"] == 0, job
        assert job["jobresult"]["virtualmachine"]["id"] == started["id"]
        assert job["jobinstanceid"] == started["id"]

        code, listed, err = await t.cs("--post", "listVirtualMachines")
        assert code == 0, err
        states = {vm["name"]: vm["state"] for vm in listed["virtualmachine"]}
        assert states["web-1"] == "Running" and states["web-2"] == "Running"

        vcenter = await t.vcenter()
        for name in ("web-1", "web-2"):
            assert vcenter[name].power_state == "poweredOn"
            root = vsphere.root_disk(vcenter[name].disks)
            assert sha256(cloud.sim.read(root.file)) == sha256(content), f"{name}'s root disk"


async def until_done(t, jobid: str, timeout: float = 300) -> dict:
    """``cs queryAsyncJobResult jobid=...`` until jobstatus is no longer 0, with a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        code, job, err = await t.cs("queryAsyncJobResult", f"jobid={jobid}")
        assert code == 0, err
        assert {"jobid", "jobstatus", "jobresultcode", "jobprocstatus", "created"} <= set(job)
        if job["jobstatus"] != 0:
            return job
        assert "jobresult" not in job
        assert loop.time() < deadline, f"job {jobid} still pending after {timeout}s"
        await asyncio.sleep(0.2)


async def test_cs_cli_shows_a_refused_request_and_nothing_happens(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        t = await tenant(cloud)
        code, answer, err = await t.cs("deployVirtualMachine", f"serviceofferingid={t.offering['id']}")
        assert code == 1
        assert "HTTP 431 response from CloudStack" in err
        assert answer["deployvirtualmachineresponse"]["errorcode"] == 431
        code, answer, err = await t.cs("listVirtualMachines", secret="not-the-secret")
        assert code == 1 and "HTTP 401 response from CloudStack" in err
        assert cloud.commands_seen("DeployVirtualMachine") == []
        listed = await t.call("listVirtualMachines")
        assert [vm["name"] for vm in listed["virtualmachine"]] == ["src-vm"]


async def test_cs_library_fetch_list_walks_every_page(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        t = await tenant(cloud)
        for i in range(6):
            await t.as_admin("createServiceOffering", name=f"size-{i}", displaytext=f"size {i}",
                             cpunumber=1, cpuspeed=100 + i, memory=128)  # fmt: skip
        whole = (await t.call("listServiceOfferings"))["serviceoffering"]
        assert len(whole) == 7

        seen_pages = []
        client = library(cloud.api_url, t.user.api_key, t.user.secret_key)
        send = client.session.send

        def recording_send(*args, **kwargs):  # what each page's answer was
            response = send(*args, **kwargs)
            seen_pages.append(response.json())
            return response

        client.session.send = recording_send
        paged = await asyncio.to_thread(client.listServiceOfferings, fetch_list=True, pagesize=2)
        assert sorted(o["id"] for o in paged) == sorted(o["id"] for o in whole)
        # four requests of 2, 2, 2, 1: count (the total) is the same on each, so cs stops at 7
        assert [len(p["listserviceofferingsresponse"]["serviceoffering"]) for p in seen_pages] == [2, 2, 2, 1]
        assert {p["listserviceofferingsresponse"]["count"] for p in seen_pages} == {7}

        snapshots = [(await t.snapshot(f"s{i}"))["id"] for i in range(3)]
        paged = await asyncio.to_thread(client.listVMSnapshot, fetch_list=True, pagesize=1)
        assert sorted(s["id"] for s in paged) == sorted(snapshots)
        # a list with nothing in it is {} and ends the walk at once
        nothing = await asyncio.to_thread(client.listVolumes, fetch_list=True, keyword="no-such-volume")
        assert nothing == []
