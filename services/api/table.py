"""The command table's shape: one ``Api`` per command drives both the dispatcher and listApis.

Each command module ends with its list of ``Api`` rows; ``services.api.commands.TABLE`` joins
them. A row names the command, whether it is async, who may call it, its parameters (with
type, length, required) and the handler that turns it into bus queries and commands.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from contracts.base import Command
from contracts.envelope import Actor
from services.api.accounts import ROOT_DOMAIN, Caller
from services.api.errors import denied, param_error
from services.api.params import Param

if TYPE_CHECKING:
    from services.api.context import ApiContext

Handler = Callable[["Call"], Awaitable[dict[str, Any]]]

# Accepted by every list command (CLOUDSTACK_API.md section 3).
LIST_PARAMS = (
    Param("page", "integer", "Page number, from 1."),
    Param("pagesize", "integer", "Items per page."),
    Param("keyword", "string", "Only items whose name contains this."),
    Param("listall", "boolean", "Admins: every account's items, not only their own."),
)
# An admin acts for (or lists) another account with these.
ACCOUNT_PARAMS = (
    Param("account", "string", "Admins: the account to act for (with domainid)."),
    Param("domainid", "uuid", "The account's domain (ROOT)."),
)
MAX_PAGE_SIZE = 5000


@dataclass(frozen=True)
class Api:
    name: str
    handler: Handler
    description: str
    params: tuple[Param, ...] = ()
    isasync: bool = False
    admin: bool = False  # root admins only
    listing: bool = False  # a list command: paging, keyword, listall, account
    acts_for: bool = False  # takes account + domainid
    public: bool = False  # no credentials needed (login)
    response: str = ""  # object name of the result, for listApis
    all_params: tuple[Param, ...] = field(init=False, default=())

    def __post_init__(self):
        extra = (LIST_PARAMS if self.listing else ()) + (
            ACCOUNT_PARAMS if (self.listing or self.acts_for) else ()
        )
        object.__setattr__(self, "all_params", self.params + extra)

    def describe(self) -> dict[str, Any]:
        """This command as listApis shows it (ApiDiscoveryResponse)."""
        return {
            "name": self.name,
            "description": self.description,
            "isasync": self.isasync,
            "related": "",
            "type": "admin" if self.admin else "user",
            "params": [
                {
                    "name": p.name,
                    "description": p.description,
                    "type": p.type,
                    "length": p.length,
                    "required": p.required,
                    "related": "",
                }
                for p in self.all_params
            ],
            "response": [{"name": self.response, "description": "", "type": "object"}]
            if self.response
            else [],
        }


@dataclass
class Call:
    """One authenticated request to one command."""

    api: Api
    caller: Caller
    args: dict[str, Any]
    ctx: ApiContext
    request: Any = None  # the aiohttp request (login and logout read and set cookies)
    cookies: dict[str, str | None] = field(default_factory=dict)  # set (str) or cleared (None)

    @property
    def command(self) -> str:
        return self.api.name

    async def target_account(self) -> tuple[uuid.UUID, str] | None:
        """The account named by ``account`` (+ ``domainid``), when one is named."""
        name = self.args.get("account")
        if name is None:
            if "domainid" in self.args and self.args["domainid"] != ROOT_DOMAIN:
                raise param_error(f"domain {self.args['domainid']} does not exist")
            return None
        domain = self.args.get("domainid", ROOT_DOMAIN)
        if domain != ROOT_DOMAIN:
            raise param_error(f"domain {domain} does not exist")
        if not self.caller.is_admin and name != self.caller.account:
            raise denied(f"account {self.caller.account} may not act for account {name}")
        account = await self.ctx.account_by_name(name)
        if account is None:
            raise param_error(f"account {name} does not exist in domain ROOT")
        return account

    async def actor(self) -> Actor:
        """On whose behalf the work runs: the caller, or for an admin the account it names."""
        target = await self.target_account()
        if target is None:
            return self.caller.actor
        return Actor(account_id=target[0], role=self.caller.role, user_id=self.caller.user_id)

    async def owner_filter(self) -> uuid.UUID | None:
        """Which account's items a list shows: the named account, else the caller's; admins with
        ``listall=true`` see every account's (None)."""
        target = await self.target_account()
        if target is not None:
            return target[0]
        if self.caller.is_admin and self.args.get("listall"):
            return None
        return self.caller.account_id

    async def submit(
        self, command: Command, instance_type: str | None, instance_id: uuid.UUID | None, *, actor=None
    ) -> uuid.UUID:
        """Start the command as this caller's async job (or as ``actor``, an account an admin names)."""
        return await self.ctx.submit(
            command,
            cmd=self.command,
            actor=actor or self.caller.actor,
            user_id=self.caller.user_id,
            instance_type=instance_type,
            instance_id=instance_id,
        )

    async def run(self, command: Command, instance_type: str | None, instance_id: uuid.UUID | None) -> dict:
        """The same, waiting for the end (commands CloudStack answers synchronously)."""
        return await self.ctx.run(
            command,
            cmd=self.command,
            actor=self.caller.actor,
            user_id=self.caller.user_id,
            instance_type=instance_type,
            instance_id=instance_id,
        )

    def may_use(self, owner: uuid.UUID | None) -> bool:
        return self.caller.is_admin or owner == self.caller.account_id


def page(call: Call, objectname: str, items: list[dict[str, Any]], *, name_of: str = "name") -> dict:
    """CloudStack's list answer: ``count`` is the total before paging; empty is ``{}``; past the
    end only ``count`` (so cs's fetch_list stops)."""
    keyword = call.args.get("keyword")
    if keyword:
        items = [i for i in items if keyword.lower() in str(i.get(name_of, "")).lower()]
    if not items:
        return {}
    total = len(items)
    if "page" in call.args or "pagesize" in call.args:
        size = call.args.get("pagesize", 500)
        number = call.args.get("page", 1)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise param_error(f"pagesize must be between 1 and {MAX_PAGE_SIZE}")
        if number < 1:
            raise param_error("page must be 1 or more")
        items = items[(number - 1) * size : number * size]
    return {"count": total, objectname: items} if items else {"count": total}
