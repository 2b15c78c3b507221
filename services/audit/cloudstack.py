"""CloudStack-compatible republish of action events, so existing CloudStack event consumers work unchanged.

CloudStack's RabbitMQ event bus (``plugins/event-bus/rabbitmq``, ``RabbitMQEventBus``) publishes
each action event to a durable topic exchange with the routing key
``<source>.<category>.<event type>.<resource type>.<resource uuid>``, every part with ``.``
replaced by ``-`` and an empty part as ``*``:
``management-server.ActionEvent.VM-CREATE.VirtualMachine.<uuid>``. The body is the flat JSON
map ``ActionEventUtils.publishOnEventBus`` builds: ``user``, ``account``, ``event``, ``status``
(``Scheduled``, ``Started``, ``Completed``; CloudStack has no failed state: a failed action is
``Completed`` with the description ``Error while ...``), ``entity`` (the entity's Java class
name), ``entityuuid``, the entity's simple name -> its uuid, ``description`` and
``eventDateTime`` (``yyyy-MM-dd HH:mm:ss Z``).

Rows are written to ``cloudstack_outbox`` in the ingest transaction, only for newly stored
action events; ``CloudStackRelay`` publishes them with confirms and deletes what was confirmed.
A crash between publish and delete publishes one twice with the same AMQP ``message_id``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import asyncpg

from contracts.topology import CLOUDSTACK_EVENTS
from services.audit.rows import EventRow
from shared.db import outbox
from shared.db.outbox import OutboxRelay
from shared.messaging import derived_id

EVENT_SOURCE = "management-server"  # CloudStack's ManagementService.Name
CATEGORY = "ActionEvent"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"  # Java's "yyyy-MM-dd HH:mm:ss Z"

# CloudStack entity (simple name -> Java class) of an action, as EventTypes.entityEventDetails has it.
ENTITY_CLASSES = {
    "VirtualMachine": "com.cloud.vm.VirtualMachine",
    "Volume": "com.cloud.storage.Volume",
    "Nic": "com.cloud.vm.Nic",
    "VirtualMachineTemplate": "com.cloud.template.VirtualMachineTemplate",
    "VMSnapshot": "com.cloud.vm.snapshot.VMSnapshot",
    "Snapshot": "com.cloud.storage.Snapshot",
    "Network": "com.cloud.network.Network",
    "ServiceOffering": "com.cloud.offering.ServiceOffering",
    "DiskOffering": "com.cloud.offering.DiskOffering",
    "StoragePool": "com.cloud.storage.StoragePool",
    "Host": "com.cloud.host.Host",
}
# The entity follows the event type in CloudStack (VM.* -> VirtualMachine, TEMPLATE.* -> template).
EVENT_PREFIX_ENTITY = {
    "VM": "VirtualMachine",
    "VOLUME": "Volume",
    "NIC": "Nic",
    "TEMPLATE": "VirtualMachineTemplate",
    "VMSNAPSHOT": "VMSnapshot",
    "SNAPSHOT": "Snapshot",
    "NETWORK": "Network",
}
RESOURCE_ALIASES = {
    "Template": "VirtualMachineTemplate",
    "VmSnapshot": "VMSnapshot",
    "UserVm": "VirtualMachine",
}


@dataclass(frozen=True)
class CloudStackEvent:
    message_id: uuid.UUID
    routing_key: str
    body: dict[str, str]

    def to_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


def entity_of(event_type: str, resource_type: str) -> tuple[str, str]:
    """(simple name for the routing key, class name for the body's ``entity``)."""
    simple = EVENT_PREFIX_ENTITY.get(event_type.split(".", 1)[0]) or RESOURCE_ALIASES.get(
        resource_type, resource_type
    )
    return simple, ENTITY_CLASSES.get(simple, simple)


def _key_part(value: str | None) -> str:
    return value.replace(".", "-") if value else "*"


def routing_key(event_type: str, entity: str, resource_uuid: str) -> str:
    parts = (EVENT_SOURCE, CATEGORY, event_type, entity, resource_uuid)
    return ".".join(_key_part(p) for p in parts)


def to_cloudstack(row: EventRow) -> CloudStackEvent | None:
    """The CloudStack event for a stored ``ActionEvent`` row; None for anything else."""
    if row.type != "ActionEvent" or row.event_type is None or row.resource_id is None:
        return None
    simple, entity_class = entity_of(row.event_type, row.resource_type or "")
    resource_uuid = str(row.resource_id)
    failed = row.state == "Failed"
    body: dict[str, Any] = {
        # snapdeploy has no users apart from accounts: the actor on whose behalf the work ran;
        # work no account asked for is the system's, as in CloudStack.
        "user": row.actor_account_id or row.account_id or "system",
        "account": row.account_id or "system",
        "event": row.event_type,
        "status": "Completed" if failed else row.state,
        "entity": entity_class,
        "entityuuid": resource_uuid,
        simple: resource_uuid,
        "description": f"Error while {row.description}" if failed else row.description,
        "eventDateTime": row.occurred_at.astimezone(UTC).strftime(DATE_FORMAT),
    }
    return CloudStackEvent(
        message_id=derived_id(row.message_id, "cloudstack"),
        routing_key=routing_key(row.event_type, simple, resource_uuid),
        body={k: str(v) for k, v in body.items() if v is not None},
    )


async def enqueue(conn: asyncpg.Connection, events: list[CloudStackEvent]) -> None:
    """In the ingest transaction: the republish happens if and only if the row was stored."""
    if not events:
        return
    await conn.execute(
        """INSERT INTO cloudstack_outbox (message_id, routing_key, body)
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])""",
        [e.message_id for e in events],
        [e.routing_key for e in events],
        [e.to_bytes() for e in events],
    )
    await conn.execute("SELECT pg_notify($1 || current_schema(), '')", outbox.CHANNEL_PREFIX)


class CloudStackRelay(OutboxRelay):
    """The shared relay's loop (wake, poll, back off, drain) over ``cloudstack_outbox``."""

    async def publish_pending(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT id, message_id, routing_key, body FROM cloudstack_outbox
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
            )
            if not rows:
                return 0
            results = await asyncio.gather(
                *(
                    self.bus.publish_raw(
                        CLOUDSTACK_EVENTS.name, r["routing_key"], r["body"], message_id=str(r["message_id"])
                    )
                    for r in rows
                ),
                return_exceptions=True,
            )
            confirmed = [r["id"] for r, result in zip(rows, results, strict=True) if result is None]
            await conn.execute("DELETE FROM cloudstack_outbox WHERE id = ANY($1::bigint[])", confirmed)
        self.metrics.published.inc(len(confirmed))
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} of {len(rows)} CloudStack events not confirmed: {errors[0]!r}")
        return len(confirmed)
