"""The envelope around every message on the bus (DESIGN section 3)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from contracts.base import Message


class Actor(BaseModel):
    """On whose behalf the work runs; authorisation travels with the work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: uuid.UUID | None = None
    role: Literal["admin", "user", "service"] = "service"
    user_id: uuid.UUID | None = Field(
        default=None,
        description="The user of the account who asked (CloudStack's user uuid), when one did; "
        "CloudStack event consumers read it as `user`.",
    )

    @model_serializer(mode="wrap")
    def _without_unknown_user(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An actor without a user travels as it always has (every golden sample stays valid).
        fields = dump(self)
        if fields.get("user_id") is None:
            fields.pop("user_id", None)
        return fields


SYSTEM = Actor()


class Envelope(BaseModel):
    """JSON wrapper of every message; ``message_id`` is the dedupe key everywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    message_id: uuid.UUID
    type: str
    schema_version: int = Field(ge=1)
    correlation_id: uuid.UUID | None = Field(
        default=None, description="The async job this message belongs to."
    )
    causation_id: uuid.UUID | None = Field(
        default=None, description="message_id of the message that caused this one."
    )
    occurred_at: datetime
    source: str
    actor: Actor = SYSTEM
    payload: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        message: Message,
        *,
        source: str,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        actor: Actor = SYSTEM,
        message_id: uuid.UUID | None = None,
    ) -> Envelope:
        return cls(
            message_id=message_id or uuid.uuid4(),
            type=message.type_name(),
            schema_version=message.schema_version,
            correlation_id=correlation_id,
            causation_id=causation_id,
            occurred_at=datetime.now(UTC),
            source=source,
            actor=actor,
            payload=message.model_dump(mode="json"),
        )

    def caused(self, message: Message, *, source: str, message_id: uuid.UUID | None = None) -> Envelope:
        """An envelope for a message this one caused: same job and actor, causation = this."""
        return Envelope.wrap(
            message,
            source=source,
            correlation_id=self.correlation_id,
            causation_id=self.message_id,
            actor=self.actor,
            message_id=message_id,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
