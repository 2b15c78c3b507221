"""Blank volumes through the api with the unchanged ``cs`` CLI and Libcloud: every service a process.

``createVolume`` of a disk offering (fixed or customized) is an async job whose result is the
Ready volume; its empty disk is in vCenter with the volume's size and the pool's allocation moved
by exactly that size. A disk vCenter refuses to make leaves no volume and no capacity held.
The CloudStack events of the work carry the calling user's uuid as ``user``, as CloudStack's do.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.api_cloud import tenant
from tests.e2e.test_audit_trail import CloudStackConsumer
from tests.e2e.test_clients_cs import until_done
from tests.e2e.test_clients_libcloud import libcloud_driver
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
GIB = 2**30
VOLUME_CREATE_EVENTS = "management-server.ActionEvent.VOLUME-CREATE.#"


async def allocations(t) -> dict[str, int]:
    return {p["id"]: p["disksizeallocated"] for p in (await t.as_admin("listStoragePools"))["storagepool"]}


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {pool: after[pool] - before[pool] for pool in after if after[pool] != before[pool]}


async def test_cs_creates_blank_volumes_in_vcenter_and_a_refused_disk_leaves_nothing(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud:
        t = await tenant(cloud)
        fixed = (await t.as_admin("createDiskOffering", name="data-5g", displaytext="5 GiB", disksize=5))[
            "diskoffering"
        ]
        custom = (await t.as_admin("createDiskOffering", name="any-size", customized=True))["diskoffering"]
        assert (fixed["disksize"], custom["iscustomized"]) == (5, True)
        zone = t.source["zoneid"]

        # Blocking: cs polls the job and prints the Ready volume.
        before = await allocations(t)
        code, made, err = await t.cs(
            "createVolume", f"diskofferingid={fixed['id']}", f"zoneid={zone}", "name=data-1"
        )
        assert code == 0, err
        volume = made["volume"]
        assert (volume["name"], volume["type"], volume["state"], volume["size"]) == (
            "data-1", "DATADISK", "Ready", 5 * GIB,
        )  # fmt: skip
        assert "virtualmachineid" not in volume and volume["account"] == t.user.account
        assert volume["diskofferingid"] == fixed["id"] and volume["zoneid"] == zone
        assert volume["path"].endswith(f"snapdeploy-volumes/{volume['id']}.vmdk")
        assert cloud.sim.disk_size(volume["path"]) == 5 * GIB, "the empty disk in vCenter has the size"
        after = await allocations(t)
        assert moved(before, after) == {volume["storageid"]: 5 * GIB}

        # --async: the new volume's id and the job at once; a customized offering takes size (GiB).
        code, started, err = await t.cs(
            "--async", "createVolume", f"diskofferingid={custom['id']}", f"zoneid={zone}", "size=2",
            "name=data-2",
        )  # fmt: skip
        assert code == 0, err
        assert set(started) == {"id", "jobid"}
        job = await until_done(t, started["jobid"])
        assert (job["jobstatus"], job["jobresultcode"], job["jobinstancetype"]) == (1, 0, "Volume"), job
        second = job["jobresult"]["volume"]
        assert (second["id"], second["size"], second["state"]) == (started["id"], 2 * GIB, "Ready")
        assert cloud.sim.disk_size(second["path"]) == 2 * GIB
        before, after = after, await allocations(t)
        assert moved(before, after) == {second["storageid"]: 2 * GIB}

        # vCenter refuses the disk: the job fails, no volume is left and no capacity is held.
        cloud.sim.fail("CreateVirtualDisk_Task", "NoDiskSpace")
        code, answer, err = await t.cs(
            "createVolume", f"diskofferingid={fixed['id']}", f"zoneid={zone}", "name=doomed"
        )
        assert code == 1 and "Job failure" in err, (answer, err)
        listed = (await t.call("listVolumes", type="DATADISK")).get("volume", [])
        detached = sorted(v["name"] for v in listed if "virtualmachineid" not in v)
        assert detached == ["data-1", "data-2"]
        assert await allocations(t) == after
        assert cloud.sim.requests("CreateVirtualDisk_Task") == 3

        events = (await t.call("listEvents", type="VOLUME.CREATE")).get("event", [])
        ended = {(e["resourcename"], e["state"], e["level"]) for e in events if e["state"] != "Started"}
        assert {("data-1", "Completed", "INFO"), ("data-2", "Completed", "INFO")} <= ended
        assert any(name == "doomed" and level == "ERROR" for name, _, level in ended), events


async def test_create_volume_checks_its_parameters_at_once_and_makes_nothing(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        t = await tenant(cloud)
        fixed = (await t.as_admin("createDiskOffering", name="data-1g", disksize=1))["diskoffering"]
        custom = (await t.as_admin("createDiskOffering", name="any-size", customized=True))["diskoffering"]
        zone = t.source["zoneid"]
        before = await allocations(t)
        refused = [
            ("createVolume", f"zoneid={zone}"),  # no disk offering
            ("createVolume", f"diskofferingid={fixed['id']}"),  # no zone
            ("createVolume", f"diskofferingid={custom['id']}", f"zoneid={zone}"),  # custom needs size
            ("createVolume", f"diskofferingid={fixed['id']}", f"zoneid={zone}", "size=7"),  # fixed size
            ("createVolume", f"diskofferingid={custom['id']}", f"zoneid={zone}", "size=0"),
        ]
        for args in refused:
            code, answer, err = await t.cs(*args)
            assert code == 1 and "HTTP 431 response from CloudStack" in err, (args, err)
            assert answer["createvolumeresponse"]["errorcode"] == 431, (args, answer)
        assert cloud.commands_seen("CreateVolume") == []
        assert await allocations(t) == before


async def test_cloudstack_events_of_api_requests_name_the_calling_user(service_env):
    async with (
        Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud,
        CloudStackConsumer(cloud.env["AMQP_URL"], VOLUME_CREATE_EVENTS) as consumer,
    ):
        t = await tenant(cloud)
        alice = (await t.as_admin("getUser", userapikey=t.user.api_key))["user"]
        admin = (await t.as_admin("getUser", userapikey=cloud.admin_key))["user"]
        assert alice["id"] != admin["id"]
        fixed = (await t.as_admin("createDiskOffering", name="data-1g", disksize=1))["diskoffering"]
        zone = t.source["zoneid"]

        own = (await t.call("createVolume", diskofferingid=fixed["id"], zoneid=zone, name="own"))["volume"]
        # an admin acting for alice's account: the volume is alice's, the user who asked the admin
        for_her = (
            await t.as_admin(
                "createVolume", diskofferingid=fixed["id"], zoneid=zone, name="for-her",
                account=t.user.account, domainid=t.user.domain_id,
            )
        )["volume"]  # fmt: skip
        assert for_her["account"] == t.user.account

        def ends(volume_id: str) -> list[dict]:
            return [b for b in consumer.of(volume_id) if b["status"] == "Completed"]

        await consumer.until(lambda: ends(own["id"]) and ends(for_her["id"]))
        assert {(b["user"], b["account"]) for b in consumer.of(own["id"])} == {
            (alice["id"], t.user.account_id)
        }
        assert {(b["user"], b["account"]) for b in consumer.of(for_her["id"])} == {
            (admin["id"], t.user.account_id)
        }


async def test_libcloud_creates_a_blank_volume_attaches_detaches_and_destroys_it(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        t = await tenant(cloud)
        await t.as_admin("createDiskOffering", name="data-3g", disksize=3)
        driver = libcloud_driver(cloud.api_url, t.user.api_key, t.user.secret_key)

        def run(method, *args, **kwargs):
            return asyncio.to_thread(method, *args, **kwargs)

        volume = await run(driver.create_volume, 3, "lc-data")  # listDiskOfferings + createVolume
        assert (volume.name, volume.size) == ("lc-data", 3)
        listed = {v.id: v for v in await run(driver.list_volumes)}
        assert listed[volume.id].size == 3 * GIB
        [node] = [n for n in await run(driver.list_nodes) if n.id == t.source["id"]]

        assert await run(driver.attach_volume, node, volume)
        [attached] = (await t.call("listVolumes", id=volume.id))["volume"]
        assert attached["virtualmachineid"] == t.source["id"]
        disks = {d.file: d for d in (await t.vcenter())["src-vm"].disks}
        assert attached["path"] in disks, "vCenter has the blank disk on the VM"

        assert await run(driver.detach_volume, volume)
        assert attached["path"] not in {d.file for d in (await t.vcenter())["src-vm"].disks}
        assert await run(driver.destroy_volume, volume)
        [gone] = (await t.call("listVolumes", id=volume.id))["volume"]
        assert gone["state"] in ("Destroy", "Expunging", "Expunged") and gone["destroyed"] is True
