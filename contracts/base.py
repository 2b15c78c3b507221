"""Base classes for commands, events and queries.

A message type is a frozen pydantic model. Its class name is its wire ``type``; its
``schema_version`` is a class attribute raised whenever the body changes incompatibly.
A type lives in a namespace: the service that owns it (``planner``, ``storage``, ``agent``,
``audit``, ``api``) or ``events`` for the events every service may emit.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from contracts.types import ZoneId

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake(name: str) -> str:
    """``CloneFromSnapshot`` -> ``clone_from_snapshot`` (routing-key form of a type name)."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


class Message(BaseModel):
    """Any message body. Unknown fields are refused so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


class Command(Message):
    """Imperative; handled by exactly one service, answered by one terminal reply."""

    service: ClassVar[str]

    def routing_key(self) -> str:
        return f"{self.service}.{snake(self.type_name())}"


class AgentCommand(Command):
    """A command for the hypervisor agent of one zone (one vCenter datacenter)."""

    service: ClassVar[str] = "agent"

    zone_id: ZoneId = Field(description="Zone (vCenter datacenter) whose agent runs the command.")

    def routing_key(self) -> str:
        return f"agent.{self.zone_id}.{snake(self.type_name())}"


class Event(Message):
    """Something that happened; any number of consumers."""

    def routing_detail(self) -> str | None:
        """Optional last routing-key segment that lets consumers bind narrowly."""
        return None


class Succeeded(Event):
    """Terminal reply of a command that did what it was asked."""


class CommandFailed(Event):
    """Terminal reply of a command that could not be done.

    ``error_code`` follows CloudStack (431 parameter error, 432 unsupported, 530 internal,
    531 account, 533 insufficient capacity, 536 resource in use). ``retryable`` says whether
    sending the same command again may succeed.
    """

    error_code: int
    error_text: str
    retryable: bool = False
    fault: str | None = Field(default=None, description="vSphere fault name, when vCenter refused the work.")


class Query(Message):
    """A side-effect-free request answered on the caller's reply-to."""

    service: ClassVar[str]

    def routing_key(self) -> str:
        return f"{self.service}.{snake(self.type_name())}"


class QueryResult(Message):
    """Answer to a query."""
