"""Who is calling: an API key and its signature, or a login session (cookie + sessionkey parameter).

A session is two random tokens: the ``JSESSIONID`` cookie finds it, and the ``sessionkey``
parameter must match it too. A page on another site can make the browser send the cookie but
cannot know the key, so the key is CloudStack's protection against cross-site requests. Only
SHA-256 digests of both tokens are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import asyncpg

from services.api import accounts, signing
from services.api.accounts import Caller, Keyring
from services.api.errors import ApiError, unauthorized

SESSION_COOKIE = "JSESSIONID"
KEY_COOKIE = "sessionkey"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def by_signature(conn: asyncpg.Connection, keyring: Keyring, params: Mapping[str, str]) -> Caller:
    """The user whose key signed these parameters; 401 for anything short of a valid, live signature."""
    lowered = {k.lower(): v for k, v in params.items()}
    api_key, signature = lowered.get("apikey"), lowered.get("signature")
    if not api_key or not signature:
        raise unauthorized()
    row = await accounts.by_api_key(conn, api_key)
    secret = keyring.open(row["secret_enc"]) if row is not None and row["secret_enc"] else None
    # The same work whether or not the key exists: no timing oracle for valid keys.
    if not signing.signature_matches(params, secret or "x" * 64, signature) or secret is None:
        raise unauthorized()
    if signing.expired(params):
        raise unauthorized()
    return accounts.caller_of(row)


async def by_session(
    conn: asyncpg.Connection, session_id: str | None, session_key: str | None, *, timeout: float
) -> Caller:
    if not session_id or not session_key:
        raise unauthorized()
    row = await conn.fetchrow(
        """UPDATE sessions SET expires = now() + make_interval(secs => $2)
           WHERE id_digest = $1 AND expires > now() RETURNING key_digest, user_uuid""",
        digest(session_id),
        timeout,
    )
    if row is None or not hmac.compare_digest(bytes(row["key_digest"]), digest(session_key)):
        raise unauthorized()
    user = await accounts.by_user_id(conn, row["user_uuid"])
    if user is None:
        raise unauthorized()
    return accounts.caller_of(user)


async def open_session(conn: asyncpg.Connection, user_id: uuid.UUID, *, timeout: float) -> tuple[str, str]:
    """A new session: (session id for the cookie, session key for the parameter)."""
    session_id, session_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await conn.execute("DELETE FROM sessions WHERE expires < now()")
    await conn.execute(
        """INSERT INTO sessions (id_digest, key_digest, user_uuid, expires)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4))""",
        digest(session_id),
        digest(session_key),
        user_id,
        timeout,
    )
    return session_id, session_key


async def close_session(conn: asyncpg.Connection, session_id: str | None) -> None:
    if session_id:
        await conn.execute("DELETE FROM sessions WHERE id_digest = $1", digest(session_id))


@dataclass
class RateLimiter:
    """Token bucket per API key, shared by every api replica (one row per key in ``rate_buckets``,
    refilled by the database's clock); ``rate`` requests per second, at most ``burst`` at once,
    0 = off (no query at all)."""

    rate: float
    burst: float

    async def allow(self, conn: asyncpg.Connection, key: str) -> bool:
        if self.rate <= 0:
            return True
        # One statement: refill by the time since the last request, take a token if there is one.
        # A refused request changes nothing, so its bucket keeps refilling from the last taken token.
        taken = await conn.fetchval(
            """INSERT INTO rate_buckets AS b (key_digest, tokens, at)
                   VALUES ($1, $3::float8 - 1, extract(epoch FROM clock_timestamp()))
               ON CONFLICT (key_digest) DO UPDATE
                   SET tokens = LEAST($3::float8, b.tokens + (EXCLUDED.at - b.at) * $2::float8) - 1,
                       at = EXCLUDED.at
                   WHERE LEAST($3::float8, b.tokens + (EXCLUDED.at - b.at) * $2::float8) >= 1
               RETURNING tokens""",
            digest(key),
            self.rate,
            self.burst,
        )
        return taken is not None


def too_many() -> ApiError:
    return ApiError(429, "request rate limit for this API key exceeded; slow down")
