"""From a received envelope to the row the audit stores (pure; no I/O).

Every message is stored, known type or not, with its envelope fields and payload. The columns
the queries filter on are filled from the payload where the type is one the audit reads:
``ActionEvent`` (CloudStack event type, state, level, resource, account), ``VcenterTask``
(task key, name, entity, state, times, duration, fault), ``<Command>Failed`` replies (error
code, text, fault) and any event naming a ``resource_type`` / ``resource_id``. A payload that
does not validate as its type is stored with the envelope fields only.

PostgreSQL refuses U+0000 in text and jsonb; a message that holds one is stored escaped
(``%`` -> ``%25``, U+0000 -> ``%00`` in every string, ``nul_escaped`` set) and read back intact.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from contracts.envelope import Envelope
from contracts.events import ActionEvent, VcenterTask
from contracts.topology import COMMANDS

Kind = Literal["command", "reply", "event"]
REPLY_SUFFIXES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class EventRow:
    """One row of ``events`` (without the ingest sequence and recorded_at, which the database sets)."""

    message_id: uuid.UUID
    kind: Kind
    type: str
    schema_version: int
    source: str
    exchange: str
    routing_key: str
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    occurred_at: datetime
    actor_account_id: uuid.UUID | None
    actor_role: str | None
    account_id: uuid.UUID | None
    actor_user_id: uuid.UUID | None = None
    event_type: str | None = None
    state: str | None = None
    level: str | None = None
    resource_type: str | None = None
    resource_id: uuid.UUID | None = None
    resource_name: str | None = None
    description: str | None = None
    task_key: str | None = None
    task_name: str | None = None
    task_entity: str | None = None
    task_started_at: datetime | None = None
    task_completed_at: datetime | None = None
    duration_ms: int | None = None
    fault: str | None = None
    error_code: int | None = None
    error_text: str | None = None
    broker_user: str | None = None  # the AMQP user_id RabbitMQ checked: who really sent it
    nul_escaped: bool = False
    payload: str = "{}"  # JSON text; cast to jsonb by the insert

    def values(self) -> tuple:
        return tuple(self.__dict__.values())  # field order; dataclasses.astuple deep-copies (slow)


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(EventRow))
_SQL = {
    "uuid.UUID": "uuid",
    "datetime": "timestamptz",
    "int": "int8",
    "str": "text",
    "Kind": "text",
    "bool": "bool",
}
# Array element type of each column in the batch insert (payload goes as text, cast to jsonb).
SQL_TYPES: dict[str, str] = {f.name: _SQL[str(f.type).split(" |")[0]] for f in fields(EventRow)}


def kind_of(envelope: Envelope, exchange: str) -> Kind:
    """Commands are what came through the commands exchange; replies end in Succeeded / Failed."""
    if exchange == COMMANDS.name:
        return "command"
    if envelope.type.endswith(REPLY_SUFFIXES) and envelope.type != "QueryFailed":
        return "reply"
    return "event"


def to_row(
    envelope: Envelope, *, exchange: str, routing_key: str, broker_user: str | None = None
) -> EventRow:
    kind = kind_of(envelope, exchange)
    base: dict[str, Any] = {
        "message_id": envelope.message_id,
        "kind": kind,
        "type": envelope.type,
        "schema_version": envelope.schema_version,
        "source": envelope.source,
        "exchange": exchange,
        "routing_key": routing_key,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "occurred_at": envelope.occurred_at,
        "actor_account_id": envelope.actor.account_id,
        "actor_role": envelope.actor.role,
        "actor_user_id": envelope.actor.user_id,
        "account_id": envelope.actor.account_id,
        "broker_user": broker_user,
    }
    payload = envelope.payload
    if kind == "event" and envelope.type == ActionEvent.type_name():
        base.update(_action_columns(payload))
    elif kind == "event" and envelope.type == VcenterTask.type_name():
        base.update(_task_columns(payload))
    elif kind == "reply" and envelope.type.endswith("Failed"):
        base.update(_failure_columns(payload))
    elif kind == "event":
        base.update(_resource_columns(payload))
    if _holds_nul(base) or _holds_nul(payload):
        base = {k: _escape(v) if isinstance(v, str) else v for k, v in base.items()}
        base["nul_escaped"], payload = True, deep(payload, _escape)
    base["payload"] = json.dumps(payload, separators=(",", ":"))
    return EventRow(**base)


# -- U+0000 ----------------------------------------------------------------------------------------

_ESCAPED = re.compile("%(25|00)")


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("\x00", "%00")


def unescape(text: str) -> str:
    return _ESCAPED.sub(lambda m: "%" if m.group(1) == "25" else "\x00", text)


def deep(value: Any, change) -> Any:
    """``change`` applied to every string (keys included) of a JSON value."""
    if isinstance(value, str):
        return change(value)
    if isinstance(value, dict):
        return {change(k): deep(v, change) for k, v in value.items()}
    if isinstance(value, list):
        return [deep(v, change) for v in value]
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def parse_action(payload: dict[str, Any]) -> ActionEvent | None:
    try:
        return ActionEvent.model_validate(payload)
    except ValidationError:
        return None


def _action_columns(payload: dict[str, Any]) -> dict[str, Any]:
    action = parse_action(payload)
    if action is None:
        return _resource_columns(payload)
    columns = {
        "event_type": action.event_type,
        "state": action.state,
        "level": action.level,
        "resource_type": action.resource_type,
        "resource_id": action.resource_id,
        "resource_name": action.resource_name,
        "description": action.description,
    }
    if action.account_id is not None:  # the resource's owner, not who asked
        columns["account_id"] = action.account_id
    return columns


def _task_columns(payload: dict[str, Any]) -> dict[str, Any]:
    try:
        task = VcenterTask.model_validate(payload)
    except ValidationError:
        return {}
    return {
        "state": task.state,
        "task_key": task.task_key,
        "task_name": task.name,
        "task_entity": task.entity,
        "resource_name": task.entity_name,
        "task_started_at": task.started_at,
        "task_completed_at": task.completed_at,
        "duration_ms": task.duration_ms,
        "fault": task.fault,
        "error_text": task.fault_message,
    }


def _failure_columns(payload: dict[str, Any]) -> dict[str, Any]:
    code = payload.get("error_code")
    text = payload.get("error_text")
    fault = payload.get("fault")
    return {
        "error_code": code if isinstance(code, int) and not isinstance(code, bool) else None,
        "error_text": text if isinstance(text, str) else None,
        "fault": fault if isinstance(fault, str) else None,
    }


def _resource_columns(payload: dict[str, Any]) -> dict[str, Any]:
    """Any event naming a resource (``ResourceStateChanged``, future ones) is findable by it."""
    resource_type = payload.get("resource_type")
    return {
        "resource_type": resource_type if isinstance(resource_type, str) else None,
        "resource_id": _uuid(payload.get("resource_id")),
    }


def _uuid(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
