"""Accounts, users, API keys, domains (one ROOT), login and logout."""

from __future__ import annotations

import asyncpg

from services.api import accounts, auth
from services.api.accounts import ROOT_DOMAIN, ROOT_DOMAIN_NAME
from services.api.errors import ApiError, denied, param_error
from services.api.params import Param
from services.api.render import date
from services.api.table import Api, Call, page

ACCOUNT_TYPE = {"admin": 1, "user": 0}


def account_object(row: asyncpg.Record) -> dict:
    return {
        "id": str(row["uuid"]),
        "name": row["name"],
        "accounttype": ACCOUNT_TYPE[row["role"]],
        "roletype": "Admin" if row["role"] == "admin" else "User",
        "state": row["state"],
        "domainid": str(ROOT_DOMAIN),
        "domain": ROOT_DOMAIN_NAME,
        "created": date(row["created"]),
    }


async def create_account(call: Call) -> dict:
    """CloudStack's createAccount: username, password, email, firstname and lastname are required
    (the dispatcher's 431 names a missing one), and an account type or a role."""
    args = call.args
    role = _role(args)
    if args.get("domainid", ROOT_DOMAIN) != ROOT_DOMAIN:
        raise param_error(f"domain {args['domainid']} does not exist")
    name = args.get("account") or args["username"]
    async with call.ctx.pool.acquire() as conn:
        try:
            account_id, user_id = await accounts.create_account(
                conn, name=name, role=role, username=args["username"], password=args["password"],
                email=args["email"], firstname=args["firstname"], lastname=args["lastname"],
            )  # fmt: skip
        except asyncpg.UniqueViolationError:
            raise param_error(f"an account {name} or user {args['username']} already exists") from None
        row = await conn.fetchrow("SELECT * FROM accounts WHERE uuid = $1", account_id)
    obj = account_object(row)
    obj["user"] = [
        {
            "id": str(user_id), "username": args["username"], "account": name, "email": args["email"],
            "firstname": args["firstname"], "lastname": args["lastname"],
        }
    ]  # fmt: skip
    return {"account": obj}


def _role(args: dict) -> str:
    """The account's role from ``accounttype`` and/or ``roleid`` (the role wins in CloudStack; here
    the two must agree)."""
    by_type = None
    if "accounttype" in args:
        by_type = {0: "user", 1: "admin"}.get(args["accounttype"])
        if by_type is None:
            raise param_error("accounttype must be 0 (user) or 1 (root admin)")
    by_role = None
    if "roleid" in args:
        if args["roleid"] not in accounts.ROLES:
            raise param_error(
                f"Unable to execute API command createaccount: no role {args['roleid']} (roleid)"
            )
        by_role = accounts.ROLES[args["roleid"]][1]
    if by_type is None and by_role is None:
        raise param_error("Neither account type and role ID are not provided")
    if by_type and by_role and by_type != by_role:
        raise param_error(f"accounttype {args['accounttype']} is not the type of role {args['roleid']}")
    return by_role or by_type


async def list_roles(call: Call) -> dict:
    roles = [
        {"id": str(role_id), "name": name, "type": "Admin" if role == "admin" else "User",
         "description": f"Default {name.lower()} role", "isdefault": True}
        for role_id, (name, role) in accounts.ROLES.items()
    ]  # fmt: skip
    if "id" in call.args:
        roles = [r for r in roles if r["id"] == str(call.args["id"])]
    if "name" in call.args:
        roles = [r for r in roles if r["name"] == call.args["name"]]
    return page(call, "role", roles)


async def list_accounts(call: Call) -> dict:
    async with call.ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT * FROM accounts ORDER BY created, name")
    if not call.caller.is_admin:
        rows = [r for r in rows if r["uuid"] == call.caller.account_id]
    if "id" in call.args:
        rows = [r for r in rows if r["uuid"] == call.args["id"]]
    if "name" in call.args:
        rows = [r for r in rows if r["name"] == call.args["name"]]
    return page(call, "account", [account_object(r) for r in rows])


async def register_user_keys(call: Call) -> dict:
    user_id = call.args["id"]
    if not call.caller.is_admin and user_id != call.caller.user_id:
        raise denied("a user may register keys for itself only")
    api_key, secret = accounts.new_keys()
    async with call.ctx.pool.acquire() as conn:
        if not await conn.fetchval("SELECT 1 FROM users WHERE uuid = $1", user_id):
            raise param_error(f"user {user_id} does not exist")
        await accounts.set_keys(conn, call.ctx.keyring, user_id, api_key, secret)
    return {"userkeys": {"apikey": api_key, "secretkey": secret}}


async def get_user(call: Call) -> dict:
    async with call.ctx.pool.acquire() as conn:
        row = await accounts.by_api_key(conn, call.args["userapikey"])
    if row is None or not call.may_use(row["account_id"]):
        raise param_error("no user has this API key")
    return {"user": _user(accounts.caller_of(row))}


def _user(c: accounts.Caller) -> dict:
    return {
        "id": str(c.user_id),
        "username": c.username,
        "account": c.account,
        "accountid": str(c.account_id),
        "accounttype": ACCOUNT_TYPE[c.role],
        "domainid": str(ROOT_DOMAIN),
        "domain": ROOT_DOMAIN_NAME,
        "apikey": c.api_key,
    }


async def list_domains(call: Call) -> dict:
    root = {
        "id": str(ROOT_DOMAIN),
        "name": ROOT_DOMAIN_NAME,
        "level": 0,
        "path": ROOT_DOMAIN_NAME,
        "haschild": False,
    }
    if "id" in call.args and call.args["id"] != ROOT_DOMAIN:
        return {}
    return page(call, "domain", [root])


async def login(call: Call) -> dict:
    if call.request is None or call.request.method != "POST":
        raise ApiError(405, "login takes POST only (a password never travels in a URL)")
    domain = call.args.get("domain", "/").strip("/") or ROOT_DOMAIN_NAME
    if domain.upper() != ROOT_DOMAIN_NAME or call.args.get("domainid", ROOT_DOMAIN) != ROOT_DOMAIN:
        raise denied("Failed to authenticate user; please provide valid credentials")
    async with call.ctx.pool.acquire() as conn:
        row = await accounts.by_username(conn, call.args["username"])
        if (
            not await accounts.check_password(call.args["password"], row["password_hash"] if row else None)
            or row is None
        ):
            raise denied("Failed to authenticate user; please provide valid credentials")
        session_id, session_key = await auth.open_session(
            conn, row["user_id"], timeout=call.ctx.session_timeout
        )
    call.cookies = {auth.SESSION_COOKIE: session_id, auth.KEY_COOKIE: session_key}
    return {
        "sessionkey": session_key,
        "userid": str(row["user_id"]),
        "username": row["username"],
        "account": row["account"],
        "domainid": str(ROOT_DOMAIN),
        "type": str(ACCOUNT_TYPE[row["role"]]),
        "timeout": int(call.ctx.session_timeout),
        "registered": "false",
    }


async def logout(call: Call) -> dict:
    async with call.ctx.pool.acquire() as conn:
        await auth.close_session(conn, call.request.cookies.get(auth.SESSION_COOKIE))
    call.cookies = {auth.SESSION_COOKIE: None, auth.KEY_COOKIE: None}
    return {"description": "success"}


APIS = [
    Api(
        "login",
        login,
        "Logs a user in with username and password (POST); answers a session key, sets the session cookie.",
        (
            Param("username", "string", "User name.", required=True),
            Param("password", "string", "Password.", required=True),
            Param("domain", "string", "Domain path (/ or ROOT)."),
            Param("domainid", "uuid", "Domain id."),
        ),
        public=True,
    ),
    Api("logout", logout, "Ends the login session.", ()),
    Api(
        "createAccount",
        create_account,
        "Creates an account with its first user.",
        (
            Param("username", "string", "User name.", required=True),
            Param("password", "string", "Password.", required=True),
            Param("email", "string", "The user's email.", required=True),
            Param("firstname", "string", "The user's first name.", required=True),
            Param("lastname", "string", "The user's last name.", required=True),
            Param("account", "string", "Account name (default: the user name)."),
            Param("accounttype", "short", "0 user, 1 root admin (this or roleid)."),
            Param("roleid", "uuid", "The account's role (see listRoles; this or accounttype)."),
            Param("domainid", "uuid", "ROOT."),
        ),
        admin=True,
        response="account",
    ),
    Api(
        "listRoles",
        list_roles,
        "Lists the roles an account may have (Root Admin, User).",
        (Param("id", "uuid", "One role."), Param("name", "string", "Exact name.")),
        listing=True,
        admin=True,
        response="role",
    ),
    Api(
        "listAccounts",
        list_accounts,
        "Lists accounts.",
        (Param("id", "uuid", "One account."), Param("name", "string", "Exact name.")),
        listing=True,
        response="account",
    ),
    Api(
        "registerUserKeys",
        register_user_keys,
        "Makes a new API key and secret key for a user (the old ones stop working).",
        (Param("id", "uuid", "The user.", required=True),),
        response="userkeys",
    ),
    Api(
        "getUser",
        get_user,
        "A user by its API key.",
        (Param("userapikey", "string", "API key.", required=True),),
        response="user",
    ),
    Api(
        "listDomains",
        list_domains,
        "Lists domains (ROOT).",
        (Param("id", "uuid", "One domain."),),
        listing=True,
        response="domain",
    ),
]
