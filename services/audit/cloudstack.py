"""CloudStack-compatible republish of action events, so existing CloudStack event consumers work unchanged.

What current CloudStack sends, and this module copies (``ActionEventUtils.publishOnEventBus``,
``ActionEventInterceptor``, ``plugins/event-bus/rabbitmq`` ``RabbitMQEventBus``):

- Exchange: a durable topic; routing key ``<source>.<category>.<event type>.<resource type>.<resource
  uuid>``, each part with ``.`` replaced by ``-`` and an empty part as ``*``:
  ``management-server.ActionEvent.VM-CREATE.VirtualMachine.<uuid>``; an action on no resource
  is ``management-server.ActionEvent.<TYPE>.*.*``.
- Properties: ``MessageProperties.PERSISTENT_TEXT_PLAIN`` (persistent, ``text/plain``).
- Body: a flat JSON map: ``user`` (the calling user's uuid), ``account`` (the owner's uuid),
  ``event``, ``status`` (``Created``, ``Scheduled``, ``Started``, ``Completed``), ``entity`` (the
  resource type by its API name: ``VirtualMachine``, ``Volume``, ``Template``), ``entityuuid``,
  each first-class entity's class name -> uuid, ``description`` and ``eventDateTime``
  (``yyyy-MM-dd HH:mm:ss Z``). Absent values are left out (Gson drops nulls).
- A VM snapshot's events are filed under its VM (``updateParentResourceCases``): entity
  ``VirtualMachine`` and the VM's uuid.
- Texts: a phase repeats the action's description; completion is ``Successfully completed
  <description>``, failure a ``Completed`` at level ERROR with ``Error while <description>``,
  and an action that creates its entity first sends ``Created`` with ``Successfully created
  entity for <description>``. snapdeploy's own text of a phase, when it says more, follows as
  CloudStack's event details do (``<description>. <details>``).

What the audit remembers to do this (the action's description, which actions are open, the VM
of each VM snapshot) is in ``services.audit.actions``; this module is the pure format.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.topology import CLOUDSTACK_EVENTS
from shared.db import outbox
from shared.db.outbox import OutboxRelay
from shared.messaging import derived_id

EVENT_SOURCE = "management-server"  # CloudStack's ManagementService.Name
CATEGORY = "ActionEvent"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"  # Java's "yyyy-MM-dd HH:mm:ss Z"
CONTENT_TYPE = "text/plain"  # MessageProperties.PERSISTENT_TEXT_PLAIN
# Work no user asked for runs as CloudStack's system user and account (ids 1): fixed uuids here.
SYSTEM_USER_ID = uuid.UUID("a1c0f3e2-5d4b-4c6a-8e9f-000000000001")
SYSTEM_ACCOUNT_ID = uuid.UUID("a1c0f3e2-5d4b-4c6a-8e9f-0000000000a1")

# snapdeploy's resource types (and older spellings) -> CloudStack's ApiCommandResourceType name.
RESOURCE_TYPES = {
    "VirtualMachine": "VirtualMachine",
    "UserVm": "VirtualMachine",
    "Volume": "Volume",
    "Nic": "Nic",
    "Template": "Template",
    "VirtualMachineTemplate": "Template",
    "VmSnapshot": "VmSnapshot",
    "VMSnapshot": "VmSnapshot",
    "Snapshot": "Snapshot",
    "Network": "Network",
    "ServiceOffering": "ServiceOffering",
    "DiskOffering": "DiskOffering",
    "StoragePool": "StoragePool",
    "Host": "Host",
    "Zone": "Zone",
    "Account": "Account",
    "User": "User",
    "Domain": "Domain",
}
# The entity of an event type, when the action names no resource type (EventTypes.entityEventDetails).
EVENT_ENTITIES = {
    "VM": "VirtualMachine",
    "VOLUME": "Volume",
    "NIC": "Nic",
    "TEMPLATE": "Template",
    "VMSNAPSHOT": "VmSnapshot",
    "SNAPSHOT": "Snapshot",
    "NETWORK": "Network",
}
# The Java class of a resource type, whose simple name keys it among the first-class entities.
ENTITY_CLASSES = {"Template": "VirtualMachineTemplate", "VmSnapshot": "VMSnapshot"}
CLOSING = ("Completed", "Failed")


@dataclass(frozen=True)
class CloudStackEvent:
    message_id: uuid.UUID
    routing_key: str
    body: dict[str, str]

    def to_bytes(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Action:
    """One phase of an action, with what the audit knows about the whole action."""

    message_id: uuid.UUID  # of the snapdeploy ActionEvent this phase is
    event_type: str
    state: str  # snapdeploy's: Scheduled, Started, Completed, Failed
    resource_type: str | None
    resource_id: uuid.UUID | None
    text: str  # this phase's own description
    occurred_at: datetime
    account_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None
    description: str | None = None  # the action's (its first phase's); None: this phase's own
    creates: bool = False  # the first phase of an action that creates its entity: Created first
    vm_id: uuid.UUID | None = None  # a VM snapshot's VM


def cloudstack_type(event_type: str, resource_type: str | None) -> str | None:
    """CloudStack's resource type of an action (ApiCommandResourceType's name)."""
    if resource_type:
        return RESOURCE_TYPES.get(resource_type, resource_type)
    return EVENT_ENTITIES.get(event_type.split(".", 1)[0])


def _key_part(value: str | None) -> str:
    return value.replace(".", "-") if value else "*"


def routing_key(event_type: str, entity: str | None, resource_uuid: str | None) -> str:
    parts = (EVENT_SOURCE, CATEGORY, event_type, entity, resource_uuid)
    return ".".join(_key_part(p) for p in parts)


def phase_text(action: Action) -> str:
    """The action's description, with this phase's own text as details when it says more."""
    description = action.description or action.text
    if action.text and action.text != description:
        return f"{description}. {action.text}"
    return description


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def to_cloudstack(action: Action) -> list[CloudStackEvent]:
    """The CloudStack events of one phase: ``Created`` first when it creates its entity, then the phase."""
    kind = cloudstack_type(action.event_type, action.resource_type)
    entity, entity_id = kind, action.resource_id
    if kind == "VmSnapshot" and action.vm_id is not None:  # updateParentResourceCases
        entity, entity_id = "VirtualMachine", action.vm_id
    first_class = {}
    if action.resource_id is not None and kind is not None:
        first_class[ENTITY_CLASSES.get(kind, kind)] = str(action.resource_id)
    if entity_id is not None and entity is not None:
        first_class.setdefault(ENTITY_CLASSES.get(entity, entity), str(entity_id))

    def event(status: str, description: str, purpose: str) -> CloudStackEvent:
        body: dict[str, Any] = {
            "user": action.user_id or SYSTEM_USER_ID,
            "account": action.account_id or SYSTEM_ACCOUNT_ID,
            "event": action.event_type,
            "status": status,
            "entity": entity,
            "entityuuid": entity_id,
            **first_class,
            "description": description,
            "eventDateTime": action.occurred_at.astimezone(UTC).strftime(DATE_FORMAT),
        }
        return CloudStackEvent(
            message_id=derived_id(action.message_id, purpose),
            routing_key=routing_key(action.event_type, entity, str(entity_id) if entity_id else None),
            body={k: str(v) for k, v in body.items() if v is not None},
        )

    description = action.description or action.text
    events = []
    if action.creates:
        events.append(
            event("Created", f"Successfully created entity for {description}", "cloudstack-created")
        )
    if action.state == "Failed":
        events.append(event("Completed", f"Error while {phase_text(action)}", "cloudstack"))
    elif action.state == "Completed":
        events.append(event("Completed", f"Successfully completed {phase_text(action)}", "cloudstack"))
    elif action.state == "Started":
        events.append(event("Started", _capitalised(phase_text(action)), "cloudstack"))
    else:
        events.append(event(action.state, phase_text(action), "cloudstack"))
    return events


def aborted(left_open: Action, cause: Action) -> CloudStackEvent:
    """The closing CloudStack sends for an action its failed job left open: ``Error while ...``."""
    closing = Action(
        **{
            **left_open.__dict__,
            "state": "Failed",
            "text": left_open.description or left_open.text,
            "occurred_at": cause.occurred_at,
            "creates": False,
        }
    )
    [event] = to_cloudstack(closing)
    purpose = f"aborted:{left_open.event_type}:{left_open.resource_id}"
    return CloudStackEvent(derived_id(cause.message_id, purpose), event.routing_key, event.body)


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
                        CLOUDSTACK_EVENTS.name,
                        r["routing_key"],
                        r["body"],
                        message_id=str(r["message_id"]),
                        content_type=CONTENT_TYPE,
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
