"""Parameters of API commands: declared once (they feed listApis), checked before anything happens.

Names are case-insensitive on the wire (CloudStack lowercases them), so a command's arguments
are read from the lowercased parameter map. A failed check is a 431 naming the parameter.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from services.api.errors import ApiError, param_error
from services.api.signing import parse_expires

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAP_KEY = re.compile(r"^([a-z0-9_]+)\[(\d+)\]\.([a-z0-9_]+)$")
# Java's Integer.parseInt: an optional sign and digits, nothing else (Python's int() also takes
# " 1", "1_000"). A map index is a Java int too; past it CloudStack answers 430.
_INTEGER = re.compile(r"[+-]?\d+")
_MAX_MAP_INDEX = 2**31 - 1
_INT_BOUNDS = {
    "integer": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "long": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class Param:
    name: str
    type: str = "string"  # uuid | string | integer | long | short | boolean | list | date | map
    description: str = ""
    required: bool = False
    length: int = 255
    item: str = "string"  # element type of a list

    def convert(self, command: str, raw: str) -> Any:
        if len(raw) > self.length:
            raise invalid(command, self.name, f"longer than {self.length} characters")
        if self.type == "list":
            items = [v for v in (part.strip() for part in raw.split(",")) if v]
            return [_scalar(command, self.name, self.item, v) for v in items]
        return _scalar(command, self.name, self.type, raw)


def invalid(command: str, name: str, why: str) -> ApiError:
    return param_error(
        f"Unable to execute API command {command.lower()} due to invalid value. "
        f"Invalid parameter {name} value: {why}"
    )


def missing(command: str, name: str) -> ApiError:
    return param_error(f"Unable to execute API command {command.lower()} due to missing parameter {name}")


def _scalar(command: str, name: str, kind: str, raw: str) -> Any:
    if kind == "uuid":
        try:
            return uuid.UUID(raw)
        except ValueError:
            raise invalid(command, name, f"{raw!r} is not a UUID") from None
    if kind in _INT_BOUNDS:
        low, high = _INT_BOUNDS[kind]
        if not _INTEGER.fullmatch(raw):
            raise invalid(command, name, f"{raw!r} is not a whole number")
        value = int(raw)
        if not low <= value <= high:
            raise invalid(command, name, f"{raw} is out of range")
        return value
    if kind == "boolean":
        if raw.lower() not in ("true", "false"):
            raise invalid(command, name, f"{raw!r} is not true or false")
        return raw.lower() == "true"
    if kind == "date":
        moment = parse_expires(raw)
        if moment is None:
            raise invalid(command, name, f"{raw!r} is not a date (yyyy-MM-dd'T'HH:mm:ssZ)")
        return moment
    return raw


def check_characters(params: dict[str, str]) -> None:
    for name, value in params.items():
        if _CONTROL.search(value) or _CONTROL.search(name):
            raise param_error(f"Received value {value!r} for parameter {name} is invalid: control characters")


def parse(command: str, declared: tuple[Param, ...], params: dict[str, str]) -> dict[str, Any]:
    """Typed arguments by (lowercase) name; maps (``details[0].key``) collected; 431/430 on bad input."""
    args: dict[str, Any] = {}
    for param in declared:
        if param.type == "map":
            continue
        raw = params.get(param.name)
        if raw is None or raw == "":
            if param.required:
                raise missing(command, param.name)
            continue
        args[param.name] = param.convert(command, raw)
    maps = {p.name for p in declared if p.type == "map"}
    for key, value in params.items():
        if "[" not in key:
            continue
        match = _MAP_KEY.match(key)
        if match is None or int(match.group(2)) > _MAX_MAP_INDEX:
            raise ApiError(430, f"Unable to execute API command {command.lower()}: malformed parameter {key}")
        name, index, field = match.groups()
        if name in maps:
            args.setdefault(name, {}).setdefault(int(index), {})[field] = value
    return args
