"""Generate the AsyncAPI 3 document from the message models and the topology.

``python -m contracts.asyncapi > contracts/asyncapi.yaml`` (``make asyncapi``); a test fails
when the committed file differs from what this prints, so the document cannot drift.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from contracts.base import snake
from contracts.catalogue import CATALOGUE, MessageSpec
from contracts.envelope import Envelope
from contracts.topology import (
    API_JOBS,
    COMMANDS,
    EVENTS,
    QUERIES,
    TOPOLOGY,
    Exchange,
    QueueSpec,
    agent_commands_queue,
)

VERSION = "0.1.0"


def _doc(model: type) -> str:
    return " ".join((model.__doc__ or "").split())


def _address(spec: MessageSpec) -> tuple[Exchange, str]:
    word = snake(spec.type)
    if spec.kind == "command":
        prefix = "agent.{zone}" if spec.namespace == "agent" else spec.namespace
        return COMMANDS, f"{prefix}.{word}"
    if spec.kind == "query":
        return QUERIES, f"{spec.namespace}.{word}"
    source = "{source}" if spec.namespace == "events" else spec.namespace
    detail = {"ActionEvent": ".{event_type}", "VcenterTask": ".{state}"}.get(spec.type, "")
    return EVENTS, f"{source}.{word}{detail}"


def _schema(model: type, schemas: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema; the models it refers to go to components/schemas (no dangling refs)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for def_name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(def_name, definition)
    return schema


def _as_it_travels(spec: MessageSpec) -> dict[str, Any]:
    """The message on the wire: the envelope, whose ``type`` is this one and ``payload`` this body."""
    return {
        "allOf": [
            {"$ref": "#/components/schemas/Envelope"},
            {
                "type": "object",
                "properties": {
                    "type": {"const": spec.type},
                    "schema_version": {"type": "integer", "minimum": 1, "maximum": spec.model.schema_version},
                    "payload": {"$ref": f"#/components/schemas/{spec.key}"},
                },
            },
        ]
    }


def _operation_binding(spec: MessageSpec) -> dict[str, Any]:
    """AMQP 0.3.0 puts delivery properties on operations: persistent (2) except queries (direct
    reply-to, nothing stored); commands are mandatory (an unroutable one stays in the outbox)."""
    binding: dict[str, Any] = {"deliveryMode": 1 if spec.kind == "query" else 2}
    if spec.kind in ("command", "query"):
        binding["mandatory"] = True
        binding["ack"] = spec.kind == "command"
    return {**binding, "bindingVersion": "0.3.0"}


def _queue_channel(queue: QueueSpec) -> dict[str, Any]:
    return {
        "address": queue.name,
        "description": "Bound to " + ", ".join(f"{b.exchange.name} `{b.routing_key}`" for b in queue.bindings)
        if queue.bindings
        else "Replies sent to reply_to.",
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {"name": queue.name, "durable": True, "exclusive": False, "autoDelete": False},
                "x-arguments": queue.arguments(),
                "x-prefetch": queue.prefetch,
                "bindingVersion": "0.3.0",
            }
        },
    }


def document() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    schemas["Envelope"] = _schema(Envelope, schemas)
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in CATALOGUE:
        name = spec.key
        schemas[name] = _schema(spec.model, schemas)
        messages[name] = {
            "name": spec.type,
            "title": spec.type,
            "summary": _doc(spec.model),
            "contentType": "application/json",
            "payload": _as_it_travels(spec),
            "correlationId": {
                "description": "The job (async job id) the message belongs to; also the AMQP correlation_id.",
                "location": "$message.payload#/correlation_id",
            },
            "x-schema-version": spec.model.schema_version,
            "x-kind": spec.kind,
            "bindings": {"amqp": {"messageType": spec.type, "bindingVersion": "0.3.0"}},
        }
        exchange, key = _address(spec)
        channels[name] = {
            "address": key,
            "messages": {spec.type: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": {
                        "name": exchange.name,
                        "type": exchange.type,
                        "durable": True,
                        "autoDelete": False,
                    },
                    "bindingVersion": "0.3.0",
                }
            },
        }
        handled_by = spec.namespace if spec.kind in ("command", "query") else None
        operations[f"{name}.{'receive' if handled_by else 'send'}"] = {
            "action": "receive" if handled_by else "send",
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": (f"{handled_by} handles it" if handled_by else f"emitted by {spec.namespace}"),
            "bindings": {"amqp": _operation_binding(spec)},
        }
    for queue in (*TOPOLOGY.queues, agent_commands_queue("{zone}"), API_JOBS):
        channels[f"queue.{queue.name}"] = _queue_channel(queue)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "snapdeploy",
            "version": VERSION,
            "description": (
                "Deploy VMware VMs straight from VM snapshots. Every message travels as a JSON envelope "
                "(components/schemas/Envelope) whose `type` names it and whose `payload` is its body "
                "(components/schemas/<namespace>.<type>). Commands end in exactly one "
                "<Command>Succeeded or <Command>Failed on snapdeploy.events (and reply_to)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {"host": "localhost:5672", "protocol": "amqp", "protocolVersion": "0.9.1"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render() -> str:
    return yaml.safe_dump(document(), sort_keys=False, width=110, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(render())
