"""Set up a zone through the CloudStack API, as an operator would with an unchanged CloudStack client.

``make up`` and ``make demo`` use these with the ``cs`` CLI (:class:`CsCli`, which shows each
command line and its answer); the end-to-end tests with the ``cs`` library. Either way a call is
``await call(command, **params)`` answering the unwrapped response (an async command's job
result once the job is done).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import shlex
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Call = Callable[..., Awaitable[dict[str, Any]]]
ANSWER_LINES = 10  # how much of each answer the demo prints
SECRETS = re.compile(r'((?:password|secretkey)"?\s*[=:]\s*"?)([^"\s,&]+)', re.IGNORECASE)


class CsError(RuntimeError):
    """The cs CLI exited non-zero: CloudStack's error answer (or cs's own message)."""

    def __init__(self, line: str, answer: dict[str, Any] | None, stderr: str):
        super().__init__(f"{line}: {stderr.strip()} {json.dumps(answer) if answer else ''}")
        self.answer = answer or {}


class CsCli:
    """The ``cs`` command line (PyPI ``cs``) with CLOUDSTACK_ENDPOINT/KEY/SECRET set, as a user runs it."""

    def __init__(self, endpoint: str, key: str, secret: str, *, who: str, show: bool = True):
        self.env = {
            **os.environ,
            "CLOUDSTACK_ENDPOINT": endpoint,
            "CLOUDSTACK_KEY": key,
            "CLOUDSTACK_SECRET": secret,
            "CLOUDSTACK_POLL_INTERVAL": "0.5",
        }
        self.who, self.show = who, show

    async def run(self, command: str, *options: str, **params: Any) -> dict[str, Any]:
        """``cs [options] command k=v ...``: its JSON answer; ``CsError`` when it exits non-zero."""
        args = [*options, command, *(f"{k}={_value(v)}" for k, v in params.items())]
        line = "cs " + shlex.join(args)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cs", *args, env=self.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        text = out.decode()
        answer = json.loads(text) if text.strip() else {}
        if self.show:
            print(f"  {self.who}$ {hidden(line)}")
            shown = hidden(text).rstrip().splitlines() or ["(no output)"]
            if len(shown) > ANSWER_LINES:
                shown = [*shown[: ANSWER_LINES - 1], f"  ... ({len(shown) - ANSWER_LINES + 1} more lines)"]
            print("\n".join("    " + s for s in shown))
        if proc.returncode:
            raise CsError(line, answer, err.decode())
        return answer

    async def __call__(self, command: str, **params: Any) -> dict[str, Any]:
        return await self.run(command, **params)

    def quiet(self) -> CsCli:
        """The same user, printing nothing (for polling)."""
        twin = copy.copy(self)
        twin.show = False
        return twin


def hidden(text: str) -> str:
    """Passwords and secret keys masked: the demo's output is a log too."""
    return SECRETS.sub(lambda m: m.group(1) + "********", text)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list | tuple):
        return ",".join(map(str, v))
    return str(v)


@dataclass(frozen=True)
class User:
    """A user account with its first user's API keys."""

    account: str
    account_id: str
    domain_id: str
    username: str
    password: str
    api_key: str
    secret_key: str


async def root_domain(admin: Call) -> str:
    [domain] = [d for d in (await admin("listDomains"))["domain"] if d["name"] == "ROOT"]
    return domain["id"]


async def create_user_account(admin: Call, name: str, *, password: str) -> User:
    """createAccount (a user account, domain ROOT) and registerUserKeys for its first user."""
    domain_id = await root_domain(admin)
    account = (
        await admin(
            "createAccount",
            accounttype=0,
            account=name,
            username=name,
            password=password,
            email=f"{name}@example.org",
            firstname=name.capitalize(),
            lastname="User",
            domainid=domain_id,
        )
    )["account"]
    [user] = account["user"]
    keys = (await admin("registerUserKeys", id=user["id"]))["userkeys"]
    return User(
        account=name, account_id=account["id"], domain_id=domain_id, username=name, password=password,
        api_key=keys["apikey"], secret_key=keys["secretkey"],
    )  # fmt: skip


async def create_offering(admin: Call, name: str, *, cpus: int, mhz: int, memory_mb: int) -> dict[str, Any]:
    answer = await admin(
        "createServiceOffering", name=name, displaytext=f"{cpus} vCPUs x {mhz} MHz, {memory_mb} MB",
        cpunumber=cpus, cpuspeed=mhz, memory=memory_mb,
    )  # fmt: skip
    return answer["serviceoffering"]


async def adopt(admin: Call, vm_name: str, user: User, offering_id: str) -> dict[str, Any]:
    """importUnmanagedInstance of a vCenter VM (found by listUnmanagedInstances) into the user's account."""
    [cluster] = (await admin("listClusters"))["cluster"][:1]
    found = (await admin("listUnmanagedInstances", clusterid=cluster["id"], name=vm_name)).get(
        "unmanagedinstance", []
    )
    if not [vm for vm in found if vm["name"] == vm_name]:
        raise RuntimeError(f"{vm_name} is not among the cluster's unmanaged instances: {found}")
    answer = await admin(
        "importUnmanagedInstance", clusterid=cluster["id"], name=vm_name, serviceofferingid=offering_id,
        account=user.account, domainid=user.domain_id,
    )  # fmt: skip
    return answer["virtualmachine"]


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """KEY=value lines (shell- and docker-compose-readable), readable by the owner only: it holds secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
