"""Composition root of the planner."""

from __future__ import annotations

from pathlib import Path

from contracts.topology import PLANNER_REPLIES, commands_queue
from services.planner.handlers import HANDLERS
from shared.service import Consumes, ServiceDefinition
from shared.settings import ServiceSettings


class PlannerSettings(ServiceSettings):
    http_port: int = 8081


def build() -> tuple[ServiceDefinition, PlannerSettings]:
    settings = PlannerSettings()
    definition = ServiceDefinition(
        name="planner",
        handlers=HANDLERS,
        consumes=[
            Consumes(commands_queue("planner"), namespace="planner"),
            Consumes(PLANNER_REPLIES),
        ],
        migrations=Path(__file__).with_name("migrations"),
    )
    return definition, settings
