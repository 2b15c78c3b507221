"""Commit a RecordProbe command to the probe's outbox, then die by SIGKILL before any relay runs.

Exactly the window the outbox exists for: the transaction is committed, nothing is published.
With ``--claimed`` the row is written as a handler writes it, claimed by its writer, which dies
before it publishes it. Prints the command's message_id before dying.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

from contracts.envelope import Envelope
from shared.db import create_pool, outbox
from shared.db.migrations import migrate
from shared.messaging import command_out
from shared.settings import ServiceSettings
from tests.integration.probe import RecordProbe, build


async def commit_then_die(key: str, *, claimed: bool) -> None:
    definition, _ = build()
    settings = ServiceSettings()
    pool = await create_pool(settings.database_url, "probe")
    async with pool.acquire() as conn:
        await migrate(conn, "probe", definition.migrations)
        command = RecordProbe(key=key)
        envelope = Envelope.wrap(command, source="crash-writer", correlation_id=uuid.uuid4())
        async with conn.transaction():
            await outbox.add(conn, [command_out(envelope, command)], claim=claimed)
    print(envelope.message_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(commit_then_die(sys.argv[1], claimed="--claimed" in sys.argv[2:]))
