"""An inventory sync writes only what changed: one that finds nothing new writes nothing.

Each sync runs in a transaction of its own; ``pg_current_xact_id_if_assigned()`` is NULL at its
end exactly when the transaction wrote nothing (PostgreSQL assigns a transaction id at the
first write).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.envelope import Envelope
from contracts.events import InventorySynced
from services.planner import inventory
from services.storage import projection
from shared.db import create_pool
from shared.db.migrations import migrate
from shared.messaging import HandlerContext

ROOT = Path(__file__).parents[2]


def inventory_event() -> InventorySynced:
    """The golden sample, with a template VM besides its VM (templates are recorded too)."""
    payload = json.loads((ROOT / "contracts/samples/events/InventorySynced.json").read_text())["payload"]
    [vm] = payload["vms"]
    disk = {**vm["disks"][0], "datastore": payload["datastores"][0]["name"], "parent_file": None}
    template = {**vm, "ref": "vm-golden", "name": "golden", "template": True, "snapdeploy_id": None,
                "disks": [disk]}  # fmt: skip
    payload["vms"] = [vm, template]
    return InventorySynced.model_validate(payload)


@pytest.mark.parametrize(
    ("service", "apply"),
    [("planner", inventory.inventory_synced), ("storage", projection.inventory_synced)],
)
async def test_an_inventory_sync_that_finds_nothing_new_writes_nothing(database_url, service, apply):
    pool = await create_pool(database_url, service)
    try:
        async with pool.acquire() as conn:
            await migrate(conn, service, ROOT / "services" / service / "migrations")
        cause = Envelope(
            message_id=uuid.uuid4(), type="InventorySynced", schema_version=1,
            occurred_at=datetime.now(UTC), source="agent", payload={},
        )  # fmt: skip

        async def wrote(event: InventorySynced) -> bool:
            async with pool.acquire() as conn, conn.transaction():
                await apply(event, HandlerContext(cause, service, conn=conn))
                return await conn.fetchval("SELECT pg_current_xact_id_if_assigned()") is not None

        event = inventory_event()
        assert await wrote(event), "the first sync records the zone"
        assert not await wrote(event), "the same inventory again writes nothing"
        vm, template = event.vms
        changed = event.model_copy(update={"vms": [vm, template.model_copy(update={"name": "renamed"})]})
        assert await wrote(changed), "a renamed template is written"
        assert not await wrote(changed)
    finally:
        await pool.close()
