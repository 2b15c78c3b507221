"""Prometheus metrics of the messaging core; one registry per service instance."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        self.handled = Counter(
            "snapdeploy_messages_handled_total",
            "Messages handled, by type and outcome: ok, failed, duplicate, rejected, retried, dead_lettered.",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.handle_seconds = Histogram(
            "snapdeploy_handler_seconds", "Handler duration.", ["type"], registry=self.registry
        )
        self.in_flight = Gauge(
            "snapdeploy_messages_in_flight", "Handlers running now.", registry=self.registry
        )
        self.published = Counter(
            "snapdeploy_messages_published_total",
            "Messages published with a confirm.",
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "snapdeploy_outbox_pending",
            "Outbox rows not yet published (last relay pass).",
            registry=self.registry,
        )
