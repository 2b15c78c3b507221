"""Driving the api with the real ``cs`` client (from PyPI), from async tests."""

from __future__ import annotations

import asyncio
import functools
import uuid

import requests
from cs import CloudStack, CloudStackApiException

from tests.support.stack import Stack


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


async def user(cloud: Stack, name: str, **kw) -> tuple[Client, str]:
    """A new user account with keys: its client and account id."""
    boss = admin(cloud)
    made = await boss.createAccount(username=name, password=f"pw-{uuid.uuid4()}", account=name)
    user_id = made["account"]["user"][0]["id"]
    keys = (await boss.registerUserKeys(id=user_id))["userkeys"]
    return Client(cloud.api_url, keys["apikey"], keys["secretkey"], **kw), made["account"]["id"]


def raw(url: str, method: str = "GET", **kw) -> requests.Response:
    return requests.request(method, url, timeout=30, **kw)
