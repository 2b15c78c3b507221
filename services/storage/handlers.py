"""Storage handlers, one per message type; the registry is at the end."""

from __future__ import annotations

from shared.messaging import Handlers

HANDLERS: Handlers = {}
