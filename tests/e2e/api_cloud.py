"""A cloud reached through the CloudStack API: a user account with keys, an offering, src-vm adopted.

The operator's setup goes through the api with the ``cs`` library (scripts/cloudstack_setup, the
same steps `make up` runs with the CLI); only the zone sync and vCenter's own view of the VMs
come over the bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from dataclasses import dataclass
from typing import Any

from cs import CloudStack

from contracts import planner, storage
from contracts.vsphere import VmInfo
from scripts.cloudstack_setup import Call, User, adopt, create_offering, create_user_account
from tests.support.stack import ZONE, Stack


def library(endpoint: str, key: str, secret: str, **config: Any) -> CloudStack:
    return CloudStack(endpoint=endpoint, key=key, secret=secret, poll_interval=0.2, job_timeout=300, **config)


def caller(client: CloudStack) -> Call:
    """``await call(command, **params)`` through the cs library (blocking, so in a thread)."""

    async def call(command: str, **params: Any) -> dict[str, Any]:
        return await asyncio.to_thread(lambda: getattr(client, command)(fetch_result=True, **params))

    return call


@dataclass
class Tenant:
    cloud: Stack
    user: User
    admin: CloudStack
    client: CloudStack
    offering: dict[str, Any]
    source: dict[str, Any]  # src-vm as the api shows it
    source_vm: VmInfo  # and as vCenter has it

    def cli_env(self, *, secret: str | None = None) -> dict[str, str]:
        return {
            **os.environ,
            "CLOUDSTACK_ENDPOINT": self.cloud.api_url,
            "CLOUDSTACK_KEY": self.user.api_key,
            "CLOUDSTACK_SECRET": secret or self.user.secret_key,
            "CLOUDSTACK_POLL_INTERVAL": "0.2",
        }

    async def cs(self, *args: str, secret: str | None = None) -> tuple[int, Any, str]:
        """The ``cs`` CLI as the user types it: (exit code, its JSON output or None, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cs", *args, env=self.cli_env(secret=secret),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout=300)
        return proc.returncode, json.loads(out) if out.strip() else None, err.decode()

    async def call(self, command: str, **params: Any) -> dict[str, Any]:
        return await caller(self.client)(command, **params)

    async def as_admin(self, command: str, **params: Any) -> dict[str, Any]:
        return await caller(self.admin)(command, **params)

    async def snapshot(self, name: str) -> dict[str, Any]:
        return (await self.call("createVMSnapshot", virtualmachineid=self.source["id"], name=name))[
            "vmsnapshot"
        ]

    async def vcenter(self) -> dict[str, VmInfo]:
        return (await self.cloud.inventory())[0]


async def tenant(cloud: Stack, name: str = "alice") -> Tenant:
    vms, found = await cloud.inventory()
    await cloud.until(planner.ListHosts(zone_id=ZONE), lambda a: len(a.hosts) == len(found["hosts"]))
    await cloud.until(storage.ListStoragePools(zone_id=ZONE), lambda a: len(a.pools) == 2)
    admin = library(cloud.api_url, cloud.admin_key, cloud.admin_secret)
    as_admin = caller(admin)
    user = await create_user_account(as_admin, name, password=secrets.token_urlsafe(12))
    offering = await create_offering(as_admin, f"{name}.small", cpus=2, mhz=100, memory_mb=128)
    source = await adopt(as_admin, "src-vm", user, offering["id"])
    client = library(cloud.api_url, user.api_key, user.secret_key)
    return Tenant(cloud, user, admin, client, offering, source, vms["src-vm"])
