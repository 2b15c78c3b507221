"""The web console in headless Chromium against the real stack: every service a process, the api
serving the console, the simulator. A test does what a person would do and checks what they see;
each keeps a screenshot of its final page under build/test-output/<test>/.
"""

from __future__ import annotations

import secrets

import pytest

from tests.e2e.api_support import ROOT_DOMAIN, admin, adopt, finished, user
from tests.e2e.cloud import root_disk
from tests.support.browser import Browser, output_dir, require_browser
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
ADMIN_PASSWORD = secrets.token_urlsafe(16)
# The root disk's bytes when each snapshot is taken (S2 is S1's child, S3 is S2's).
ROOT_AT = {"S1": b"A" * 8192 + b"root disk at S1", "S2": b"B" * 8192 + b"root disk at S2",
           "S3": b"C" * 8192 + b"root disk at S3"}  # fmt: skip


class Console:
    """The stack with the api, two user accounts (alice owns src-vm and its snapshots), offerings."""

    def __init__(self, cloud: Stack):
        self.cloud = cloud
        self.url = cloud.api_url.removesuffix("/client/api")
        self.admin = admin(cloud)

    async def api(self, command: str, **params) -> dict:
        """One call as the admin with its API key; an async command's job is awaited, its result returned."""
        answer = await getattr(self.admin, command)(**params)
        if "jobid" not in answer:
            return answer
        done = await finished(self.admin, answer["jobid"])
        assert done["jobstatus"] == 1, done
        return done["jobresult"]

    async def prepare(self) -> None:
        self.alice, self.bob = await user(self.cloud, "alice"), await user(self.cloud, "bob")
        self.vm_id = (await adopt(self.cloud, self.alice.name))["id"]
        self.snapshots = {}
        for name, content in ROOT_AT.items():
            source = (await self.cloud.inventory())[0]["src-vm"]
            self.cloud.sim.write(root_disk(source).file, content)
            made = await self.api("createVMSnapshot", virtualmachineid=self.vm_id, name=name)
            self.snapshots[name] = made["vmsnapshot"]["id"]
        self.offerings = {}
        for name, cpus, memory in (("small", 2, 256), ("medium", 2, 512), ("large", 4, 1024)):
            made = await self.api("createServiceOffering", name=name, displaytext=name, cpunumber=cpus,
                                  cpuspeed=100, memory=memory)  # fmt: skip
            self.offerings[name] = made["serviceoffering"]["id"]

    async def vms(self) -> dict[str, dict]:
        answer = await self.api("listVirtualMachines", listall="true")
        return {vm["name"]: vm for vm in answer.get("virtualmachine", [])}


@pytest.fixture
def browser(request):
    require_browser()
    made: list[Browser] = []

    def open_browser(console: Console) -> Browser:
        page = Browser(console.url, output_dir(request.node.name))
        made.append(page)
        return page

    yield open_browser
    for page in made:
        page.screenshot("final")  # kept whether the test passed or not: what the page showed last
        page.close()


async def deploy_form(page: Browser, console: Console, snapshot: str) -> None:
    """From the instance's page: pick the snapshot in the tree, then Deploy VM from VM snapshot."""
    page.go(f"#/instances/{console.vm_id}")
    node = await page.wait_for(f'.snap-node[data-snapshot-name="{snapshot}"]', "the snapshot tree")
    node.click()
    await page.wait_text("#snapshot-panel h3", snapshot)
    page.click("#deploy-from-snapshot")
    await page.wait_for("#deploy-form", "the deploy form")


async def test_a_user_deploys_from_a_snapshot_in_the_middle_of_the_tree_and_sees_where_the_time_went(
    service_env, browser
):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud:
        console = Console(cloud)
        await console.prepare()
        page = browser(console)
        await page.login("alice", console.alice.password)

        await page.wait_for('#instances tr[data-vm="src-vm"]', "src-vm in the instances list")
        page.click('#instances tr[data-vm="src-vm"] a')
        await page.wait_for(".snapshot-tree", "the snapshot tree")
        names = page.driver.execute_script(
            "return [...document.querySelectorAll('.snap-node')].map(n => n.dataset.snapshotName)"
        )
        assert sorted(names) == ["S1", "S2", "S3"]
        assert [n.get_attribute("data-snapshot-name") for n in page.find_all(".snap-node.current")] == ["S3"]
        assert page.find_all(".tree-here"), "'You are here' hangs from the current snapshot"

        await deploy_form(page, console, "S2")
        offered = {c.get_attribute("data-offering"): c for c in page.find_all("#offerings .choice")}
        assert set(offered) == {"small", "medium", "large"}
        assert not offered["large"].find_element("css selector", "input").is_enabled()
        assert "Has 4 vCPUs; the VM had 2 at S2, and they must match" in offered["large"].text
        assert offered["medium"].find_element("css selector", "input").is_enabled()
        assert not page.find_all("#deploy-form [name=zoneid], #deploy-form [name=templateid]")

        page.fill("#vm-name", "web-1")
        offered["medium"].click()
        page.click('#networks-available [data-network="pg-db"] button')
        page.click('#networks-available [data-network="pg-web"] button')
        assert page.texts("#nic-order .net-name") == ["pg-db", "pg-web"]
        page.screenshot("deploy-form")

        cloud.sim.slow("CloneVM_Task", 1500)  # long enough to watch the step run
        page.click("#deploy")
        await page.wait_text("#current-step", "cloning", timeout=60)
        await page.wait_for("#deployed", "the new VM's page", timeout=120)
        assert page.text(".page-header .badge") == "Running"
        assert page.text("#vm-offering") == "medium"
        assert page.texts("#nics .nic-network") == ["pg-db", "pg-web"]
        page.screenshot("deployed")
        web1 = (await console.vms())["web-1"]
        assert web1["account"] == console.alice.name and web1["serviceofferingname"] == "medium"
        assert [n["networkname"] for n in sorted(web1["nic"], key=lambda n: n.get("deviceid", 0))] == [
            "pg-db",
            "pg-web",
        ]

        page.click("#open-trail")
        await page.wait_for("#timeline", "the deployment's timeline")
        bars = {row.get_attribute("data-name") for row in page.find_all("#timeline .tl-row")}
        assert "CloneVM_Task" in bars and "PowerOnVM_Task" not in bars, "powered on by its clone"
        assert "cloning" in page.texts("#where-the-time-went .glance-phase")
        page.driver.execute_script("document.querySelector('#timeline').scrollIntoView()")
        page.screenshot("timeline")
        assert page.errors() == []


async def test_an_invalid_offering_and_another_accounts_snapshot_are_refused_and_nothing_is_made(
    service_env, browser
):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        console = Console(cloud)
        await console.prepare()
        page = browser(console)
        await page.login("alice", console.alice.password)
        await deploy_form(page, console, "S2")
        page.fill("#vm-name", "too-big")
        # The form will not choose it; a crafted request would: the api must refuse it anyway.
        page.driver.execute_script(
            "const large = document.querySelector('[data-offering=\"large\"] input');"
            "large.disabled = false; large.click();"
        )
        page.click("#deploy")
        # Refused by the api at once (the form says so) or by the planner (the job's page does).
        refusal = await page.wait_text("main", "Nothing was deployed", timeout=60)
        assert "4 vCPUs" in refusal and "must match" in refusal, refusal
        assert "too-big" not in await console.vms()

        page.click(".who .link-button")  # log out; bob tries alice's snapshot by its URL
        await page.login("bob", console.bob.password)
        page.go(f"#/snapshots/{console.snapshots['S2']}/deploy")
        refusal = await page.wait_text("main", "You cannot deploy from this VM snapshot")
        assert "Nothing was deployed" in refusal and not page.find_all("#deploy-form")
        page.go(f"#/instances/{console.vm_id}")
        await page.wait_text("main", "This instance is not visible to you")
        # Straight through bob's own session, as a script on the page could: 531, no VM.
        status, body = page.api(
            "deployVirtualMachine",
            vmsnapshotid=console.snapshots["S2"],
            serviceofferingid=console.offerings["small"],
            name="stolen",
        )
        assert status == 531, body
        assert set(await console.vms()) == {"src-vm"}, "nothing was created"
        assert page.find_all(".who-name")[0].text == "bob"


async def test_a_failing_deployment_shows_the_step_and_the_vcenter_fault(service_env, browser):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud:
        console = Console(cloud)
        await console.prepare()
        page = browser(console)
        await page.login("alice", console.alice.password)
        await deploy_form(page, console, "S1")
        page.fill("#vm-name", "doomed")
        page.click('#networks-available [data-network="pg-web"] button')
        cloud.sim.fail("PowerOnVM_Task", "InvalidPowerState")
        page.click("#deploy")
        failure = await page.wait_text("#failure", "failed while cloning", timeout=120)
        assert "The deployment of doomed failed while cloning." in failure
        assert "InvalidPowerState" in failure and "did not power on" in failure, failure
        assert "Error" in page.text("#failure .badge"), "the VM is shown in Error"
        assert page.find_all(".step-failed"), "the failed step is marked"
        assert (await console.vms())["doomed"]["state"] == "Error"
        assert page.errors() == []


async def test_an_admin_seeds_a_pool_and_sees_its_capacity_and_the_vms_hanging_from_each_seed(
    service_env, browser
):
    async with Stack(service_env, storage=1, planner=1, api=1, api_admin_password=ADMIN_PASSWORD) as cloud:
        console = Console(cloud)
        await console.prepare()
        await console.api(
            "deployVirtualMachine", vmsnapshotid=console.snapshots["S2"], name="web-1",
            serviceofferingid=console.offerings["small"], account=console.alice.name, domainid=ROOT_DOMAIN,
        )  # fmt: skip
        page = browser(console)
        await page.login("admin", ADMIN_PASSWORD)
        rows = await page.wait(
            lambda: len(page.find_all("#instances tbody tr")) == 2 and page.texts("#instances tbody tr"),
            "both VMs",
        )
        assert all("alice" in row for row in rows), "an admin sees every account's VMs, with the account"

        hostile = '<img src=x onerror="document.title=1">&amp;'
        await console.api("createVMSnapshot", virtualmachineid=console.vm_id, name=hostile)
        page.go(f"#/instances/{console.vm_id}/snapshots/{console.snapshots['S1']}")
        await page.wait_text("#snapshot-panel h3", "S1")
        [node] = [n for n in page.find_all(".snap-node") if n.get_attribute("data-snapshot-name") == hostile]
        assert node.find_element("css selector", "title").get_attribute("textContent") == hostile
        assert page.find_all("main img") == [] and page.driver.title != "1", "a name is text, never markup"
        page.click("#seed-template")
        seeded = await page.wait_text("#success", "The template is seeded", timeout=60)
        assert "ds1" in seeded

        page.go(f"#/snapshots/{console.snapshots['S1']}/deploy")
        await page.wait_for("#host", "the host choice")
        [s1] = (await console.api("listVMSnapshot", vmsnapshotid=console.snapshots["S1"], listall="true"))[
            "vmSnapshot"
        ]
        reaching = (await console.api("listHosts", storageid=s1["storageid"]))["host"]
        offered = [o.text for o in page.find_all("#host option")][1:]
        assert sorted(name.split(" · ")[0] for name in offered) == sorted(h["name"] for h in reaching)

        page.go("#/pools")
        ds1 = await page.wait_for('.pool[data-pool="ds1"] .seeds', "ds1's seeds")
        seeds = {s.get_attribute("data-seed"): s.text for s in ds1.find_elements("css selector", ".seed")}
        assert set(seeds) == {"S1", "S2"}, seeds
        assert "web-1" in seeds["S2"] and "No VM hangs from it" in seeds["S1"]
        [pool] = [p for p in (await console.api("listStoragePools"))["storagepool"] if p["name"] == "ds1"]
        legend = page.text('.pool[data-pool="ds1"] .legend')
        assert f"\N{MULTIPLICATION SIGN}{pool['overprovisionfactor']:g})" in legend, legend
        assert page.find_all('.pool[data-pool="ds1"] svg.capacity .cap-used')
        assert page.errors() == []
