"""Who may do what through the api: signatures, sessions, parameter checks, other accounts' resources.

Every refusal is checked for "nothing happened": no command reached the bus, no VM exists."""

from __future__ import annotations

import pytest
from cs import CloudStack

from contracts import audit
from tests.e2e.api_support import Client, admin, adopt, finished, raw, user
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e


def signed(cloud: Stack, key: str, secret: str, **params) -> dict:
    """Parameters signed by the real cs client."""
    client = CloudStack(endpoint=cloud.api_url, key=key, secret=secret)
    params = {"response": "json", "apiKey": key, **params}
    client._sign(params)
    return params


async def test_refusals_are_immediate_and_change_nothing(service_env):
    async with Stack(service_env, storage=1, planner=1, audit=1, api=1) as cloud:
        boss = admin(cloud)
        bob, alice = await user(cloud, "bob"), await user(cloud, "alice")
        vm = await adopt(cloud, "bob")
        taken = await bob.client.createVMSnapshot(virtualmachineid=vm["id"], name="S1")
        assert (await finished(bob.client, taken["jobid"]))["jobstatus"] == 1
        s1 = taken["id"]
        offering = (await boss.createServiceOffering(name="small", cpunumber=2, cpuspeed=100, memory=128))[
            "serviceoffering"
        ]
        deploy = {"command": "deployVirtualMachine", "vmsnapshotid": s1, "serviceofferingid": offering["id"]}
        deploys_before = len(cloud.commands_seen("DeployVirtualMachine"))

        # -- signatures: 401, CloudStack's text, nothing sent -----------------------------------
        bob_key = bob.client.cs.key
        wrong_secret = Client(cloud.api_url, bob_key, "not-the-secret")
        unknown_key = Client(cloud.api_url, "no-such-key", bob.client.cs.secret)
        past = {"signatureVersion": "3", "expires": "2020-01-01T00:00:00+0000"}
        params = {k: v for k, v in deploy.items() if k != "command"}
        for client, extra in ((wrong_secret, {}), (unknown_key, {}), (bob.client, past)):
            status, body = await client.error("deployVirtualMachine", **params, **extra)
            assert (
                status == 401
                and body["errortext"] == "unable to verify user credentials and/or request signature"
            )
        tampered = signed(cloud, bob_key, bob.client.cs.secret, **deploy)
        last = tampered["serviceofferingid"][-1]
        tampered["serviceofferingid"] = tampered["serviceofferingid"][:-1] + ("1" if last == "0" else "0")
        answer = raw(cloud.api_url, params=tampered)
        assert answer.status_code == 401 and answer.headers["Content-Type"].startswith("application/json")
        assert "deployvirtualmachineresponse" in answer.json()
        unknown = raw(
            cloud.api_url, params=signed(cloud, bob_key, bob.client.cs.secret, command="noSuchCommand")
        )
        assert (unknown.status_code, list(unknown.json())) == (401, ["errorresponse"])
        xml = raw(cloud.api_url, params={**signed(cloud, bob_key, bob.client.cs.secret, command="listZones")})
        assert xml.status_code == 200
        assert raw(cloud.api_url, params={"command": "listZones", "response": "xml"}).status_code == 432

        # -- parameter checks: 431 at once, no job, no command -----------------------------------
        for bad in (
            {"vmsnapshotid": s1},  # no serviceofferingid
            {"vmsnapshotid": s1, "templateid": s1, "serviceofferingid": offering["id"]},  # exclusive
            {"vmsnapshotid": "not-a-uuid", "serviceofferingid": offering["id"]},
            {"serviceofferingid": offering["id"]},  # neither source
            {"vmsnapshotid": s1, "serviceofferingid": offering["id"], "name": "x" * 64},
        ):
            status, body = await bob.client.error("deployVirtualMachine", **bad)
            assert status == 431 and body["errorcode"] == 431 and body["cserrorcode"] == 4350, body

        # -- another account's snapshot and VM: 531 and nothing happens --------------------------
        status, _ = await alice.client.error(
            "deployVirtualMachine", vmsnapshotid=s1, serviceofferingid=offering["id"]
        )
        assert status == 531
        for command, params in (
            ("stopVirtualMachine", {"id": vm["id"]}),
            ("destroyVirtualMachine", {"id": vm["id"], "expunge": "true"}),
            ("createVMSnapshot", {"virtualmachineid": vm["id"]}),
            ("deleteVMSnapshot", {"vmsnapshotid": s1}),
        ):
            status, body = await alice.client.error(command, **params)
            assert (status, body["errorcode"]) == (531, 531), (command, body)
        assert await alice.client.listVirtualMachines() == {}
        assert await alice.client.listVMSnapshot() == {}
        assert await alice.client.listVolumes() == {}
        await cloud.until(  # the audit has bob's snapshot event; alice sees none of bob's events
            audit.ListEvents(type="ActionEvent", event_type="VMSNAPSHOT.CREATE"), lambda a: a.total > 0
        )
        assert (await bob.client.listEvents(type="VMSNAPSHOT.CREATE"))["count"] > 0
        assert await alice.client.listEvents() == {}
        status, _ = await alice.client.error("listHosts")  # an admin command
        assert status == 401

        assert len(cloud.commands_seen("DeployVirtualMachine")) == deploys_before
        assert len(cloud.commands_seen("StopVirtualMachine")) == 0
        assert len(cloud.commands_seen("DestroyVirtualMachine")) == 0
        assert len(cloud.commands_seen("DeleteVmSnapshot")) == 0
        everything = (await boss.listVirtualMachines(listall="true"))["virtualmachine"]
        assert [(v["name"], v["state"]) for v in everything] == [("src-vm", vm["state"])]
        [snap] = (await bob.client.listVMSnapshot())["vmSnapshot"]
        assert (snap["state"], snap["current"], snap["account"]) == ("Ready", True, "bob")

        # -- pagination exactly as cs's fetch_list needs it --------------------------------------
        every = (await boss.listApis())["api"]
        first = await boss.listApis(page=1, pagesize=5)
        assert first["count"] == len(every) and len(first["api"]) == 5
        past = await boss.listApis(page=1000, pagesize=5)
        assert past == {"count": len(every)}
        fetched = await boss.listApis(fetch_list=True)
        assert sorted(a["name"] for a in fetched) == sorted(a["name"] for a in every)

        # -- sessions: cookie and sessionkey together, logout ends it ----------------------------
        bad = raw(
            cloud.api_url,
            "POST",
            data={"command": "login", "username": "bob", "password": "wrong", "response": "json"},
        )
        assert bad.status_code == 531
        form = {"command": "login", "username": "bob", "password": bob.password, "domain": "/"}
        login = raw(cloud.api_url, "POST", data={**form, "response": "json"})
        assert login.status_code == 200, login.text
        key = login.json()["loginresponse"]["sessionkey"]
        cookie = login.cookies["JSESSIONID"]
        set_cookie = login.headers["Set-Cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
        listing = {"command": "listVMSnapshot", "response": "json"}
        ok = raw(cloud.api_url, params={**listing, "sessionkey": key}, cookies={"JSESSIONID": cookie})
        assert ok.status_code == 200 and ok.json()["listvmsnapshotresponse"]["count"] == 1
        forged = raw(cloud.api_url, params=listing, cookies={"JSESSIONID": cookie})  # no sessionkey: CSRF
        assert forged.status_code == 401
        wrong_key = raw(cloud.api_url, params={**listing, "sessionkey": "x"}, cookies={"JSESSIONID": cookie})
        assert wrong_key.status_code == 401
        out = raw(
            cloud.api_url,
            params={"command": "logout", "response": "json", "sessionkey": key},
            cookies={"JSESSIONID": cookie},
        )
        assert out.status_code == 200
        after = raw(cloud.api_url, params={**listing, "sessionkey": key}, cookies={"JSESSIONID": cookie})
        assert after.status_code == 401


async def test_an_over_long_request_is_answered_in_cloudstacks_error_shape(service_env):
    async with Stack(service_env, planner=1, api=1) as cloud:
        key, secret = cloud.admin_key, cloud.admin_secret
        # Past aiohttp's default 8190 bytes and within the api's limit: served as any request.
        wide = signed(cloud, key, secret, command="listApis", name="listZones", padding="p" * 20_000)
        answer = raw(cloud.api_url, params=wide)
        assert answer.status_code == 200, answer.text
        assert [a["name"] for a in answer.json()["listapisresponse"]["api"]] == ["listZones"]

        # Past the limit: CloudStack's 431 envelope, as JSON, with X-Description; nothing done.
        long = signed(cloud, key, secret, command="listApis", padding="p" * 40_000)
        answer = raw(cloud.api_url, params=long)
        assert answer.status_code == 431
        assert answer.headers["Content-Type"] == "application/json; charset=UTF-8"
        body = answer.json()["errorresponse"]
        assert (body["errorcode"], body["cserrorcode"]) == (431, 4350)
        assert "the request is too long" in body["errortext"] and "POST" in body["errortext"]
        assert answer.headers["X-Description"] == body["errortext"]

        # The same parameters in a POST body are fine; an over-long header is the same 431.
        posted = raw(cloud.api_url, "POST", data=long)
        assert posted.status_code == 200 and "listapisresponse" in posted.json()
        header = raw(cloud.api_url, params=wide, headers={"X-Padding": "h" * 40_000})
        assert header.status_code == 431 and header.json()["errorresponse"]["errorcode"] == 431


async def test_create_account_requires_what_cloudstack_requires_and_a_refusal_creates_nothing(service_env):
    async with Stack(service_env, planner=1, api=1) as cloud:
        boss = admin(cloud)
        whole = {
            "username": "carol", "password": "pw-carol-1", "email": "carol@example.org",
            "firstname": "Carol", "lastname": "User", "accounttype": 0,
        }  # fmt: skip
        before = (await boss.listAccounts())["account"]
        for name in ("username", "password", "email", "firstname", "lastname"):
            status, body = await boss.error("createAccount", **{k: v for k, v in whole.items() if k != name})
            assert (status, body["errorcode"], body["errortext"]) == (
                431, 431, f"Unable to execute API command createaccount due to missing parameter {name}",
            ), name  # fmt: skip
        typeless = {k: v for k, v in whole.items() if k != "accounttype"}
        status, body = await boss.error("createAccount", **typeless)
        assert (status, body["errortext"]) == (431, "Neither account type and role ID are not provided")
        status, body = await boss.error("createAccount", **{**whole, "accounttype": 2})
        assert status == 431
        assert (await boss.listAccounts())["account"] == before, "no refusal made an account"

        roles = {r["name"]: r["id"] for r in (await boss.listRoles())["role"]}
        assert set(roles) == {"Root Admin", "User"}
        made = (await boss.createAccount(**typeless, roleid=roles["User"]))["account"]
        assert (made["name"], made["accounttype"], made["roletype"]) == ("carol", 0, "User")
        [carol] = made["user"]
        assert (carol["email"], carol["firstname"], carol["lastname"]) == (
            "carol@example.org", "Carol", "User",
        )  # fmt: skip


async def test_the_rate_limit_counts_a_key_across_every_replica(service_env):
    async with Stack(service_env, planner=1, api=2, api_rate_limit=0.01, api_rate_burst=5) as cloud:
        bob, alice = await user(cloud, "bob"), await user(cloud, "alice")  # four of the admin's five
        keys = bob.client.cs
        on = [Client(url, keys.key, keys.secret) for url in cloud.api_urls]  # the two replicas

        for n in range(5):  # the burst, spread over both replicas
            await on[n % 2].listZones()
        status, error = await on[1].error("listZones")
        status_again, _ = await on[0].error("listZones")

        assert (status, status_again) == (429, 429), "the sixth and seventh requests, whichever replica"
        assert "rate limit" in error["errortext"]
        assert await alice.client.listZones() is not None, "another key has a bucket of its own"
