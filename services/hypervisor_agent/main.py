"""Composition root of the hypervisor agent of one zone."""

from __future__ import annotations

from pydantic import Field

from contracts.topology import agent_commands_queue
from services.hypervisor_agent.handlers import HANDLERS
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class AgentSettings(ServiceSettings):
    http_port: int = 8083
    zone_id: str = Field(default="zone1", description="Zone this agent serves (queue agent.<zone>.commands).")


def build() -> tuple[ServiceDefinition, AgentSettings]:
    settings = AgentSettings()
    definition = ServiceDefinition(
        name="hypervisor_agent",
        handlers=HANDLERS,
        consumes=[Consumes(agent_commands_queue(settings.zone_id), namespace="agent")],
        uses_database=False,
    )
    return definition, settings
