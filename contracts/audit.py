"""Queries answered by the audit service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from contracts.base import Query, QueryResult


class ListEvents(Query):
    """Recorded messages filtered by job, resource, type, account or time range, oldest first, paged."""

    service = "audit"

    correlation_id: uuid.UUID | None = None
    resource_id: uuid.UUID | None = None
    type: str | None = None
    event_type: str | None = None
    account_id: uuid.UUID | None = None
    since: datetime | None = None
    until: datetime | None = None
    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=100, ge=1, le=1000)


class ListEventsResult(QueryResult):
    """One page of recorded messages."""

    total: int
    items: list[dict[str, Any]]
