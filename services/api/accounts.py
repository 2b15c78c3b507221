"""Accounts, users and API keys in the api's own schema; passwords hashed, secret keys encrypted.

Passwords: scrypt (n=2^14, r=8, p=1) with a per-user salt; only the hash is stored. API secret
keys must be readable to check signatures, so they are encrypted at rest with Fernet
(``cryptography``: AES-CBC + HMAC-SHA256) under ``API_ENCRYPTION_KEY``. Neither ever reaches a log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from cryptography.fernet import Fernet, InvalidToken

from contracts.envelope import Actor

MIGRATIONS = Path(__file__).with_name("migrations")
ROOT_DOMAIN = uuid.UUID("4c5d0a0e-0000-4000-8000-0000000000d0")
ROOT_DOMAIN_NAME = "ROOT"
# CloudStack's two default roles that snapdeploy has (createAccount roleid, listRoles): fixed ids.
ROLES = {
    uuid.UUID("4c5d0a0e-0000-4000-8000-0000000000a1"): ("Root Admin", "admin"),
    uuid.UUID("4c5d0a0e-0000-4000-8000-0000000000a4"): ("User", "user"),
}
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


class Keyring:
    """Encrypts and decrypts API secret keys. Any non-empty ``API_ENCRYPTION_KEY`` works: a Fernet
    key is used as it is; anything else is stretched with SHA-256 into one."""

    # Secrets opened are kept, by their sealed form (new keys are sealed anew), so a signed
    # request does not decrypt its key again; bounded.
    OPENED_LIMIT = 4096

    def __init__(self, key: str):
        if not key:
            raise ValueError("API_ENCRYPTION_KEY is required (it encrypts API secret keys at rest)")
        self._opened: dict[bytes, str] = {}
        try:
            self._fernet = Fernet(key.encode())
        except ValueError:
            self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))

    def seal(self, secret: str) -> bytes:
        return self._fernet.encrypt(secret.encode())

    def open(self, sealed: bytes) -> str | None:
        sealed = bytes(sealed)
        if (opened := self._opened.get(sealed)) is not None:
            return opened
        try:
            opened = self._fernet.decrypt(sealed).decode()
        except InvalidToken:
            return None
        if len(self._opened) >= self.OPENED_LIMIT:
            self._opened.clear()
        self._opened[sealed] = opened
        return opened


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def password_matches(password: str, stored: str | None) -> bool:
    if not stored:
        hashlib.scrypt(b"", salt=b"0" * 16, **_SCRYPT)  # as slow as a real check: no user oracle
        return False
    _, n, r, p, salt, digest = stored.split("$")
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p))
    return hmac.compare_digest(actual, base64.b64decode(digest))


async def check_password(password: str, stored: str | None) -> bool:
    """scrypt is slow on purpose: off the event loop."""
    return await asyncio.to_thread(password_matches, password, stored)


def new_keys() -> tuple[str, str]:
    return secrets.token_urlsafe(43), secrets.token_urlsafe(64)


@dataclass(frozen=True)
class Caller:
    """The authenticated user of a request and the account it belongs to."""

    user_id: uuid.UUID
    username: str
    account_id: uuid.UUID
    account: str
    role: str  # admin | user
    api_key: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def actor(self) -> Actor:
        """The caller as the bus knows it: its account and role, and the user who asked (the
        audit's CloudStack events carry it as ``user``)."""
        return Actor(account_id=self.account_id, role=self.role, user_id=self.user_id)


_CALLER = """SELECT u.uuid AS user_id, u.username, u.api_key, u.secret_enc, a.uuid AS account_id,
                    a.name AS account, a.role
             FROM users u JOIN accounts a ON a.uuid = u.account_uuid
             WHERE u.state = 'enabled' AND a.state = 'enabled' AND """


def caller_of(row: asyncpg.Record) -> Caller:
    return Caller(
        row["user_id"], row["username"], row["account_id"], row["account"], row["role"], row["api_key"]
    )


async def by_api_key(conn, api_key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(_CALLER + "u.api_key = $1", api_key)


async def by_username(conn, username: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        _CALLER.replace("SELECT ", "SELECT u.password_hash, ", 1) + "u.username = $1", username
    )


async def by_user_id(conn, user_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(_CALLER + "u.uuid = $1", user_id)


async def create_account(
    conn,
    *,
    name: str,
    role: str,
    username: str,
    password: str | None,
    account_id: uuid.UUID | None = None,
    email: str | None = None,
    firstname: str | None = None,
    lastname: str | None = None,
) -> tuple[uuid.UUID, uuid.UUID]:
    """An account with its first user; returns (account id, user id)."""
    account_id = account_id or uuid.uuid4()
    user_id = uuid.uuid4()
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO accounts (uuid, name, role, domain_id) VALUES ($1, $2, $3, $4)",
            account_id,
            name,
            role,
            ROOT_DOMAIN,
        )
        await conn.execute(
            """INSERT INTO users (uuid, account_uuid, username, password_hash, email, firstname, lastname)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            user_id,
            account_id,
            username,
            hash_password(password) if password else None,
            email,
            firstname,
            lastname,
        )
    return account_id, user_id


async def set_keys(conn, keyring: Keyring, user_id: uuid.UUID, api_key: str, secret: str) -> None:
    await conn.execute(
        "UPDATE users SET api_key = $2, secret_enc = $3 WHERE uuid = $1",
        user_id,
        api_key,
        keyring.seal(secret),
    )


async def ensure_admin(
    conn,
    keyring: Keyring,
    *,
    username: str,
    password: str | None,
    api_key: str | None,
    secret: str | None,
) -> uuid.UUID:
    """The root admin ``username`` in account ``admin`` (domain ROOT), created or updated; idempotent.
    Returns the user id."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('snapdeploy.api.admin'))")
        row = await conn.fetchrow("SELECT uuid, account_uuid FROM users WHERE username = $1", username)
        if row is None:
            account = await conn.fetchval("SELECT uuid FROM accounts WHERE name = 'admin'")
            if account is None:
                _, user_id = await create_account(
                    conn, name="admin", role="admin", username=username, password=password
                )
            else:
                user_id = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO users (uuid, account_uuid, username) VALUES ($1, $2, $3)",
                    user_id,
                    account,
                    username,
                )
        else:
            user_id = row["uuid"]
            await conn.execute("UPDATE accounts SET role = 'admin' WHERE uuid = $1", row["account_uuid"])
        if password:
            current = await conn.fetchval("SELECT password_hash FROM users WHERE uuid = $1", user_id)
            if not (current and password_matches(password, current)):
                await conn.execute(
                    "UPDATE users SET password_hash = $2 WHERE uuid = $1", user_id, hash_password(password)
                )
        if api_key and secret:
            await set_keys(conn, keyring, user_id, api_key, secret)
    return user_id


async def account_names(conn) -> dict[uuid.UUID, str]:
    return {r["uuid"]: r["name"] for r in await conn.fetch("SELECT uuid, name FROM accounts")}
