"""RabbitMQ topology, declared in one place (DESIGN section 3).

Exchanges are durable topics. Every queue is a durable quorum queue with a delivery limit
and a dead-letter exchange; each has a ``<queue>.dlq`` companion. Dead letters are routed
by the *queue name*, not the original routing key: several queues bind the same keys (the
audit queue binds everything), and routing by the original key would copy one queue's dead
letters into every other queue's DLQ. RabbitMQ keeps the original key in the ``x-death``
header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from contracts.base import Command, Event, Query, snake


@dataclass(frozen=True)
class Exchange:
    name: str
    type: Literal["topic", "direct", "fanout", "headers"] = "topic"


COMMANDS = Exchange("snapdeploy.commands")
EVENTS = Exchange("snapdeploy.events")
QUERIES = Exchange("snapdeploy.queries")
DEAD_LETTER = Exchange("snapdeploy.dead-letter")
# CloudStack-compatible action events, for existing CloudStack event consumers.
CLOUDSTACK_EVENTS = Exchange("cloudstack-events")

EXCHANGES = (COMMANDS, EVENTS, QUERIES, DEAD_LETTER, CLOUDSTACK_EVENTS)

# RabbitMQ's pseudo-queue for answers straight to the asking channel (queries).
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def producer_queue_prefix(broker_user: str) -> str:
    """A producer's own queues, the only ones its permissions let it declare and read (its replies
    go there): ``producer.<broker user>.``."""
    return f"producer.{broker_user}."


DEFAULT_DELIVERY_LIMIT = 10
DEFAULT_PREFETCH = 16


@dataclass(frozen=True)
class Binding:
    exchange: Exchange
    routing_key: str


@dataclass(frozen=True)
class QueueSpec:
    name: str
    bindings: tuple[Binding, ...] = ()
    delivery_limit: int = DEFAULT_DELIVERY_LIMIT
    prefetch: int = DEFAULT_PREFETCH

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def arguments(self) -> dict[str, object]:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_LETTER.name,
            "x-dead-letter-routing-key": self.name,
        }

    @staticmethod
    def dlq_arguments() -> dict[str, object]:
        return {"x-queue-type": "quorum"}


# -- routing keys --------------------------------------------------------------------------------


def command_routing_key(command: Command) -> str:
    """``<service>.<command>``; agent commands ``agent.<zone>.<command>``."""
    return command.routing_key()


def event_routing_key(source: str, event: Event) -> str:
    """``<source>.<event>[.<detail>]``: ``agent.vcenter_task.success``, ``planner.action_event.vm_create``."""
    key = f"{source}.{snake(event.type_name())}"
    detail = event.routing_detail()
    return f"{key}.{detail}" if detail else key


def query_routing_key(query: Query) -> str:
    return query.routing_key()


# -- the queues of each service ------------------------------------------------------------------


def commands_queue(service: str, *, prefetch: int = DEFAULT_PREFETCH) -> QueueSpec:
    return QueueSpec(f"{service}.commands", (Binding(COMMANDS, f"{service}.*"),), prefetch=prefetch)


def replies_queue(service: str, *event_keys: str, prefetch: int = DEFAULT_PREFETCH) -> QueueSpec:
    """Replies to the commands a service sends (``reply_to``), plus events it subscribes to."""
    return QueueSpec(
        f"{service}.replies", tuple(Binding(EVENTS, key) for key in event_keys), prefetch=prefetch
    )


def agent_commands_queue(zone_id: str, *, prefetch: int = DEFAULT_PREFETCH) -> QueueSpec:
    return QueueSpec(
        f"agent.{zone_id}.commands", (Binding(COMMANDS, f"agent.{zone_id}.*"),), prefetch=prefetch
    )


def queries_queue(service: str) -> QueueSpec:
    return QueueSpec(f"{service}.queries", (Binding(QUERIES, f"{service}.*"),), delivery_limit=3)


AUDIT_INGEST = QueueSpec(
    "audit.ingest",
    (Binding(EVENTS, "#"), Binding(COMMANDS, "#")),
    prefetch=500,
)


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[Exchange, ...] = EXCHANGES
    queues: tuple[QueueSpec, ...] = field(default_factory=tuple)


# Who a producer's broker user acts as: the planner owns it, storage and audit keep copies.
PRINCIPALS_CHANGED = "planner.bus_principal_changed"

# The api's async jobs follow their commands: every reply and job event (to end a job or count a
# finished step) and the agent and storage commands (to name the step running). All replicas
# consume this one queue; the job rows they move are in PostgreSQL, where every replica reads.
# Declared by the api only: without an api nothing should pile up in it.
API_JOBS = QueueSpec(
    "api.jobs",
    (Binding(EVENTS, "#"), Binding(COMMANDS, "agent.#"), Binding(COMMANDS, "storage.#")),
    prefetch=64,
)

PLANNER_REPLIES = replies_queue("planner", "agent.inventory_synced")
STORAGE_REPLIES = replies_queue("storage", "agent.inventory_synced", PRINCIPALS_CHANGED)
AUDIT_REPLIES = replies_queue("audit", PRINCIPALS_CHANGED)


def service_queues() -> tuple[QueueSpec, ...]:
    """Queues every service declares at start, so no command is ever published to nowhere.

    Agent queues depend on the zone and are declared by the agent of that zone."""
    return (
        commands_queue("planner"),
        commands_queue("storage"),
        PLANNER_REPLIES,
        STORAGE_REPLIES,
        queries_queue("planner"),
        queries_queue("storage"),
        queries_queue("audit"),
        AUDIT_REPLIES,
        AUDIT_INGEST,
    )


TOPOLOGY = Topology(queues=service_queues())
