"""Who may send what on the bus (DESIGN section 4, "Identity comes from the broker").

Every publish carries the AMQP ``user_id`` of its connection, which RabbitMQ checks. A message
from one of snapdeploy's own service users acts for the actor its envelope states; a message
from any other broker user acts for that user's registered principal (``RegisterBusPrincipal``),
and only as a command or query a producer may send.
"""

from __future__ import annotations

from contracts import storage
from contracts.base import AgentCommand, Command, Message, Query

SERVICE_USERS = (
    "snapdeploy-planner",
    "snapdeploy-storage",
    "snapdeploy-agent",
    "snapdeploy-audit",
    "snapdeploy-api",
)

# Commands one service sends another as a step of work it already authorised: a producer
# sending one would write records for any account it names.
BETWEEN_SERVICES: tuple[type[Command], ...] = (
    storage.RecordVirtualMachine,
    storage.RecordVmSnapshot,
    storage.ForgetVmSnapshot,
    storage.AllocateRootVolume,
    storage.DestroyVmVolumes,
)


def producers_may_send(model: type[Message]) -> bool:
    """Commands and queries of the public catalogue; never events, replies or agent commands."""
    if issubclass(model, AgentCommand) or model in BETWEEN_SERVICES:
        return False
    return issubclass(model, Command | Query)
