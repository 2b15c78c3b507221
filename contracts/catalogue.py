"""Every message type snapdeploy puts on the wire, by namespace.

A type is identified by ``(namespace, type)``: commands and their replies belong to the
service that handles the command, shared events to ``events``. The catalogue is built by
an explicit call from the modules listed here; nothing registers itself at import time.
Each command's ``<Command>Succeeded`` is written next to it; its ``<Command>Failed`` has the
common failure body and is derived here.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from pydantic import create_model

from contracts import agent, audit, events, planner, storage
from contracts.base import Command, CommandFailed, Message, Query, QueryResult, Succeeded

Kind = Literal["command", "event", "query", "result"]

# namespace -> module whose classes are its types
MODULES: dict[str, ModuleType] = {
    "planner": planner,
    "storage": storage,
    "agent": agent,
    "audit": audit,
    "events": events,
}


@dataclass(frozen=True)
class MessageSpec:
    namespace: str
    model: type[Message]
    kind: Kind
    command: type[Command] | None = None  # for replies: the command they answer

    @property
    def type(self) -> str:
        return self.model.type_name()

    @property
    def key(self) -> str:
        return f"{self.namespace}.{self.type}"


@functools.cache
def failed_reply(command: type[Command]) -> type[CommandFailed]:
    """The ``<Command>Failed`` type of a command (one class per command, made once)."""
    name = f"{command.type_name()}Failed"
    model = create_model(name, __base__=CommandFailed, __module__=command.__module__)
    model.__doc__ = (
        f"{command.type_name()} could not be done: error code, text, whether to retry, vSphere fault."
    )
    return model


def succeeded_reply(command: type[Command]) -> type[Succeeded]:
    module = inspect.getmodule(command)
    reply = getattr(module, f"{command.type_name()}Succeeded", None)
    if not (isinstance(reply, type) and issubclass(reply, Succeeded)):
        raise TypeError(f"{command.type_name()} has no {command.type_name()}Succeeded in {module.__name__}")
    return reply


def _kind(model: type[Message]) -> Kind:
    if issubclass(model, Command):
        return "command"
    if issubclass(model, Query):
        return "query"
    if issubclass(model, QueryResult):
        return "result"
    return "event"


def specs_of(namespace: str, module: ModuleType) -> list[MessageSpec]:
    """The message types defined in a module, each command followed by its two replies."""
    specs: list[MessageSpec] = []
    for model in vars(module).values():
        if not (
            inspect.isclass(model) and issubclass(model, Message) and model.__module__ == module.__name__
        ):
            continue
        if model.__name__.endswith("Succeeded") or _is_abstract(model):
            continue
        specs.append(MessageSpec(namespace, model, _kind(model)))
        if issubclass(model, Command):
            specs.append(MessageSpec(namespace, succeeded_reply(model), "event", model))
            specs.append(MessageSpec(namespace, failed_reply(model), "event", model))
    return specs


def _is_abstract(model: type[Message]) -> bool:
    """Per-service base classes (``PlannerCommand``) are not messages of their own."""
    return model.__name__.endswith("Command") and issubclass(model, Command)


class Catalogue:
    """Lookup of message types by namespace and wire type."""

    def __init__(self, specs: list[MessageSpec]):
        self.specs = specs
        self._by_key: dict[tuple[str, str], MessageSpec] = {}
        for spec in specs:
            key = (spec.namespace, spec.type)
            if key in self._by_key:
                raise ValueError(f"duplicate message type {spec.key}")
            self._by_key[key] = spec

    def get(self, namespace: str, type_name: str) -> MessageSpec | None:
        return self._by_key.get((namespace, type_name))

    def resolve(self, type_name: str, source: str) -> MessageSpec | None:
        """A received message's type: the emitter's own vocabulary first, then shared events."""
        return self.get(source, type_name) or self.get("events", type_name)

    def extend(self, specs: list[MessageSpec]) -> Catalogue:
        return Catalogue([*self.specs, *specs])

    def __iter__(self):
        return iter(self.specs)


def build_catalogue() -> Catalogue:
    return Catalogue([spec for ns, module in MODULES.items() for spec in specs_of(ns, module)])


CATALOGUE = build_catalogue()
