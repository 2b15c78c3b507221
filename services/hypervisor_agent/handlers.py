"""Agent handlers, one per command; the registry is at the end."""

from __future__ import annotations

from shared.messaging import Handlers

HANDLERS: Handlers = {}
