"""Driving the api with the real ``cs`` client (from PyPI), from async tests."""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass

import requests
from cs import CloudStack, CloudStackApiException

from contracts import planner, storage
from tests.support.stack import ZONE, Stack

ROOT_DOMAIN = "4c5d0a0e-0000-4000-8000-0000000000d0"


class Client:
    """A ``cs`` client whose calls run in a thread (cs is synchronous)."""

    def __init__(self, url: str, key: str, secret: str, *, method: str = "get"):
        self.cs = CloudStack(
            endpoint=url,
            key=key,
            secret=secret,
            method=method,
            poll_interval=0.2,
            job_timeout=120,
            timeout=30,
        )

    def __getattr__(self, command: str):
        async def call(**params):
            return await asyncio.to_thread(functools.partial(getattr(self.cs, command), **params))

        return call

    async def error(self, command: str, **params) -> tuple[int, dict]:
        """Call expecting an error: (HTTP status, the error body)."""
        try:
            answer = await getattr(self, command)(**params)
        except CloudStackApiException as error:
            return error.response.status_code, error.error
        raise AssertionError(f"{command} succeeded: {answer}")


def admin(cloud: Stack, url: str | None = None, **kw) -> Client:
    return Client(url or cloud.api_url, cloud.admin_key, cloud.admin_secret, **kw)


@dataclass
class User:
    client: Client
    account_id: str
    name: str
    password: str


async def user(cloud: Stack, name: str, **kw) -> User:
    """A new user account with API keys."""
    boss = admin(cloud)
    password = f"pw-{uuid.uuid4()}"
    made = await boss.createAccount(
        username=name, password=password, account=name, accounttype=0, email=f"{name}@example.org",
        firstname=name.capitalize(), lastname="User",
    )  # fmt: skip
    user_id = made["account"]["user"][0]["id"]
    keys = (await boss.registerUserKeys(id=user_id))["userkeys"]
    return User(
        Client(cloud.api_url, keys["apikey"], keys["secretkey"], **kw), made["account"]["id"], name, password
    )


async def finished(client: Client, job_id: str, timeout: float = 120) -> dict:
    """queryAsyncJobResult until the job is no longer pending (with a deadline)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await client.queryAsyncJobResult(jobid=job_id)
        if answer["jobstatus"] != 0:
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still pending after {timeout}s: {answer}")
        await asyncio.sleep(0.1)


async def adopt(cloud: Stack, owner: str, vm_name: str = "src-vm") -> dict:
    """Sync the zone and adopt a vCenter VM into an account through importUnmanagedInstance."""
    boss = admin(cloud)
    await cloud.inventory()
    await cloud.until(planner.ListHosts(zone_id=ZONE), lambda a: len(a.hosts) == 4, what="hosts known")
    await cloud.until(storage.ListStoragePools(zone_id=ZONE), lambda a: len(a.pools) == 2, what="pools known")
    [cluster, *_] = (await boss.listClusters())["cluster"]
    started = await boss.importUnmanagedInstance(
        clusterid=cluster["id"], name=vm_name, account=owner, domainid=ROOT_DOMAIN
    )
    done = await finished(boss, started["jobid"])
    assert done["jobstatus"] == 1, done
    return done["jobresult"]["virtualmachine"]


def raw(url: str, method: str = "GET", **kw) -> requests.Response:
    return requests.request(method, url, timeout=30, **kw)
