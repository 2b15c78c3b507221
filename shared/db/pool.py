"""An asyncpg pool whose connections work in the service's own schema."""

from __future__ import annotations

import json

import asyncpg


async def _init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool: nothing more than asyncpg's own
    reset (an open transaction rolled back, listener callbacks dropped). The services keep no
    session state: advisory locks, ``SET LOCAL`` and cursors are transaction-scoped, and the
    outbox relay UNLISTENs before it gives its connection back. asyncpg's default reset query
    (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) would cost a round trip and
    a transaction of its own on every release, even on an idle stack."""


async def create_pool(dsn: str, schema: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Connections default to ``search_path = <schema>`` so SQL never names the schema."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": schema, "application_name": f"snapdeploy-{schema}"},
        init=_init_connection,
        reset=_keep_session,
    )
