"""The CloudStack API end to end, through the unchanged ``cs`` client: every service a process."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from contracts import planner, storage
from tests.e2e.api_support import admin, raw
from tests.e2e.cloud import networks, prepare, snapshot
from tests.e2e.test_template import make_template
from tests.support.stack import ZONE, Stack

pytestmark = pytest.mark.e2e


async def test_skeleton_zones_apis_and_a_deploy_from_a_vm_snapshot_without_zone_or_template(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        boss = admin(cloud)
        source = await prepare(cloud)
        zones = await boss.listZones()
        assert await admin(cloud, method="post").listZones() == zones, "POST: every parameter in the body"
        assert [z["name"] for z in zones["zone"]] == ["zone1"]
        apis = {a["name"]: a for a in (await boss.listApis())["api"]}
        deploy = {p["name"]: p for p in apis["deployVirtualMachine"]["params"]}
        assert apis["deployVirtualMachine"]["isasync"] is True
        assert deploy["serviceofferingid"]["required"] and not deploy["zoneid"]["required"]
        assert not deploy["templateid"]["required"] and isinstance(deploy["vmsnapshotid"]["length"], int)

        s1 = await snapshot(cloud, source.vm_id, "S1")
        offering = (await boss.createServiceOffering(name="small", cpunumber=2, cpuspeed=100, memory=128))[
            "serviceoffering"
        ]
        [web] = await networks(cloud, "pg-web")
        started = await boss.deployVirtualMachine(
            vmsnapshotid=str(s1), serviceofferingid=offering["id"], networkids=str(web), name="api-1"
        )
        assert set(started) == {"id", "jobid"}
        result = await boss.queryAsyncJobResult(jobid=started["jobid"])
        assert result["jobstatus"] in (0, 1)
        done = await boss._jobresult(jobid=started["jobid"])
        vm = done["virtualmachine"]
        assert (vm["id"], vm["name"], vm["state"]) == (started["id"], "api-1", "Running")
        assert vm["nic"][0]["networkname"] == "pg-web" and vm["vmsnapshotid"] == str(s1)
        final = await boss.queryAsyncJobResult(jobid=started["jobid"])
        assert (final["jobstatus"], final["jobresultcode"], final["jobinstancetype"]) == (
            1,
            0,
            "VirtualMachine",
        )
        assert final["jobprocstatus"] > 0
        [listed] = (await boss.listVirtualMachines(id=started["id"], listall=True))["virtualmachine"]
        assert listed["state"] == "Running"
        assert (await cloud.ask(planner.ListVirtualMachines(id=uuid.UUID(vm["id"])))).vms[0].name == "api-1"
        assert vm["hypervisor"] == "VMware" and vm["zoneid"] == zones["zone"][0]["id"]

        # and from a template found in vCenter: templateid needs zoneid
        await asyncio.to_thread(make_template, cloud.sim.url, "golden")
        await cloud.inventory()
        await cloud.until(
            storage.ListTemplates(zone_id=ZONE), lambda a: any(t.name == "golden" for t in a.templates)
        )
        [golden] = [
            t
            for t in (await boss.listTemplates(templatefilter="executable"))["template"]
            if t["name"] == "golden"
        ]
        assert (golden["hypervisor"], golden["format"], golden["isready"]) == ("VMware", "OVA", True)
        status, body = await boss.error(
            "deployVirtualMachine", templateid=golden["id"], serviceofferingid=offering["id"]
        )
        assert status == 431 and "zoneid" in body["errortext"]
        started = await boss.deployVirtualMachine(
            templateid=golden["id"], zoneid=vm["zoneid"], serviceofferingid=offering["id"], name="from-golden"
        )
        done = await boss._jobresult(jobid=started["jobid"])
        assert (done["virtualmachine"]["state"], done["virtualmachine"]["templateid"]) == (
            "Running",
            golden["id"],
        )

        base = cloud.api_url.removesuffix("/client/api")
        assert raw(f"{base}/healthz").status_code == 200
        assert raw(f"{base}/readyz").json()["ready"] is True
        metrics = raw(f"{base}/metrics").text
        assert 'snapdeploy_api_requests_total{code="0",command="deployVirtualMachine"}' in metrics
