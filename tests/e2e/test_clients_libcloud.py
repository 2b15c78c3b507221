"""Apache Libcloud's CloudStack driver, unchanged, against the api: every service a process.

The calls a Libcloud user makes: list_locations, list_sizes, list_nodes (which also lists public
IPs and forwarding rules), a deploy from a VM snapshot through the driver's own async request
(create_node has no vmsnapshotid), ex_stop / ex_start, destroy_node. Libcloud signs without
signatureVersion and lowercases parameter names first; vCenter shows what each call did.
"""

from __future__ import annotations

import asyncio
import urllib.parse

import pytest
from libcloud.compute.providers import Provider, get_driver
from libcloud.compute.types import NodeState

from tests.e2e.api_cloud import tenant
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def libcloud_driver(api_url: str, key: str, secret: str):
    url = urllib.parse.urlsplit(api_url)
    driver = get_driver(Provider.CLOUDSTACK)(
        key=key, secret=secret, host=url.hostname, port=url.port, path=url.path, secure=False
    )
    driver.connection.poll_interval = 0.2
    return driver


async def test_libcloud_lists_deploys_from_a_vm_snapshot_stops_starts_and_destroys(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud:
        t = await tenant(cloud)
        snapshot = await t.snapshot("base")
        driver = libcloud_driver(cloud.api_url, t.user.api_key, t.user.secret_key)

        def run(method, *args, **kwargs):
            return asyncio.to_thread(method, *args, **kwargs)

        [zone] = await run(driver.list_locations)
        assert zone.id == t.source["zoneid"] and zone.name == t.source["zonename"]
        sizes = {s.id: s for s in await run(driver.list_sizes)}
        assert sizes[t.offering["id"]].ram == 128 and sizes[t.offering["id"]].extra["cpu"] == 2

        nodes = {n.name: n for n in await run(driver.list_nodes)}
        assert set(nodes) == {"src-vm"} and nodes["src-vm"].id == t.source["id"]

        deployed = await run(
            driver._async_request, "deployVirtualMachine",
            params={"vmsnapshotid": snapshot["id"], "serviceofferingid": t.offering["id"], "name": "lc-1"},
        )  # fmt: skip
        vm = deployed["virtualmachine"]
        assert vm["state"] == "Running" and vm["name"] == "lc-1"

        nodes = {n.name: n for n in await run(driver.list_nodes)}
        node = nodes["lc-1"]
        assert node.id == vm["id"] and node.state == NodeState.RUNNING
        assert (await t.vcenter())["lc-1"].power_state == "poweredOn"

        assert await run(driver.ex_stop, node) == "Stopped"
        assert (await t.vcenter())["lc-1"].power_state == "poweredOff"
        assert {n.name: n.state for n in await run(driver.list_nodes)}["lc-1"] == NodeState.STOPPED

        assert await run(driver.ex_start, node) == "Running"
        assert (await t.vcenter())["lc-1"].power_state == "poweredOn"

        assert await run(driver.destroy_node, node) is True
        after = {n.name: n.state for n in await run(driver.list_nodes)}
        assert after.get("lc-1", NodeState.TERMINATED) == NodeState.TERMINATED
        remaining = await t.vcenter()
        assert "lc-1" not in remaining or remaining["lc-1"].power_state == "poweredOff"
        assert after["src-vm"] == NodeState.STOPPED  # the source is untouched
