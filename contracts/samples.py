"""Golden samples: one JSON envelope per message type under ``contracts/samples/<namespace>/``.

``python -m contracts.samples`` writes a sample for every type that has none, with every
field filled from the type's JSON schema; it never overwrites one. Tests check both ways:
each sample reads into its model and writes back unchanged, and each model has a sample that
names every one of its fields.
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

from contracts.catalogue import CATALOGUE, MessageSpec

SAMPLES = Path(__file__).with_name("samples")
_NS = uuid.UUID("0b6d1f8e-7c2a-4f4e-9a43-1f0d2c3b4a59")
WHEN = "2026-01-15T10:30:00Z"
# Fields a generated sample must leave empty to be valid (mutually exclusive options).
OVERRIDES: dict[str, dict[str, Any]] = {
    "planner.DeployVirtualMachine": {"template_id": None, "zone_id": None},
    # fields with a pattern (contracts.types): a value of the form they take
    "planner.ListVirtualMachines": {"state": "Running"},
    "storage.ListVolumes": {"state": "Ready"},
    "agent.AttachNic": {"mac": "00:50:56:00:00:01"},
    "agent.DetachNic": {"mac": "00:50:56:00:00:01"},
    "audit.ListEvents": {"type": "ActionEvent", "event_type": "VM.CREATE"},
}


def sample_path(spec: MessageSpec) -> Path:
    return SAMPLES / spec.namespace / f"{spec.type}.json"


def _value(schema: dict[str, Any], defs: dict[str, Any], name: str) -> Any:
    if "$ref" in schema:
        return _value(defs[schema["$ref"].rsplit("/", 1)[1]], defs, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _value(options[0], defs, name)
    kind = schema.get("type")
    if kind == "object":
        if "properties" not in schema:
            return {"example": name}
        return {k: _value(v, defs, k) for k, v in schema["properties"].items()}
    if kind == "array":
        return [_value(schema.get("items", {}), defs, name)]
    if kind == "integer":
        return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1, 1)
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return False
    if schema.get("format") == "uuid":
        return str(uuid.uuid5(_NS, name))
    if schema.get("format") == "date-time":
        return WHEN
    return f"example-{name.replace('_', '-')}"


def make_sample(spec: MessageSpec) -> dict[str, Any]:
    schema = spec.model.model_json_schema()
    payload = {**_value(schema, schema.get("$defs", {}), spec.type), **OVERRIDES.get(spec.key, {})}
    payload = spec.model.model_validate(payload).model_dump(mode="json")
    return {
        "message_id": str(uuid.uuid5(_NS, spec.key)),
        "type": spec.type,
        "schema_version": spec.model.schema_version,
        "correlation_id": str(uuid.uuid5(_NS, "job")),
        "causation_id": str(uuid.uuid5(_NS, "cause")),
        "occurred_at": WHEN,
        "source": spec.namespace if spec.namespace != "events" else "planner",
        "actor": {"account_id": str(uuid.uuid5(_NS, "account")), "role": "user"},
        "payload": payload,
    }


def write_missing() -> list[Path]:
    written = []
    for spec in CATALOGUE:
        path = sample_path(spec)
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(make_sample(spec), indent=2) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_missing():
        print(f"wrote {path.relative_to(SAMPLES.parent.parent)}", file=sys.stderr)
