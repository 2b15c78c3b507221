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
    schemas: dict[str, Any] = {
        "Envelope": Envelope.model_json_schema(ref_template="#/components/schemas/{model}")
    }
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for spec in CATALOGUE:
        name = spec.key
        payload_schema = spec.model.model_json_schema(ref_template="#/components/schemas/{model}")
        for def_name, definition in payload_schema.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        schemas[name] = payload_schema
        messages[name] = {
            "name": spec.type,
            "title": spec.type,
            "summary": _doc(spec.model),
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
            "x-envelope": {"$ref": "#/components/schemas/Envelope"},
            "x-schema-version": spec.model.schema_version,
            "x-kind": spec.kind,
            "bindings": {"amqp": {"messageType": spec.type, "deliveryMode": 2, "bindingVersion": "0.3.0"}},
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
        }
    for queue in (*TOPOLOGY.queues, agent_commands_queue("{zone}"), API_JOBS):
        channels[f"queue.{queue.name}"] = _queue_channel(queue)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "snapdeploy",
            "version": VERSION,
            "description": (
                "Deploy VMware VMs straight from VM snapshots. Every message is a JSON envelope "
                "(components/schemas/Envelope) whose `payload` is the message below. Commands end in "
                "exactly one <Command>Succeeded or <Command>Failed on snapdeploy.events (and reply_to)."
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
