"""Composition root of the hypervisor agent of one zone (one vCenter datacenter)."""

from __future__ import annotations

import asyncio

import structlog
from pydantic import Field

from contracts.topology import agent_commands_queue
from services.hypervisor_agent.admission import Admission
from services.hypervisor_agent.handlers import Agent, handlers
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.worker import VcenterWorker
from shared.service import Consumes, Runtime, ServiceDefinition
from shared.settings import ServiceSettings

log = structlog.get_logger("agent")


class AgentSettings(ServiceSettings):
    http_port: int = 8083
    zone_id: str = Field(default="zone1", description="Zone this agent serves (queue agent.<zone>.commands).")
    vcenter_url: str = Field(
        default="https://user:pass@127.0.0.1:8989/sdk", description="vCenter SDK URL with credentials."
    )
    vcenter_datacenter: str = Field(default="DC0", description="The datacenter that is this zone.")
    vcenter_insecure: bool = Field(default=False, description="Skip certificate checks (opt-out per zone).")
    vcenter_ca_file: str | None = Field(
        default=None,
        description="CA certificates (PEM) that verify vCenter's certificate; else the system's.",
    )
    vcenter_threads: int = Field(
        default=16, ge=1, description="Worker threads making pyvmomi calls (a running task holds none)."
    )
    # vSphere's own figures ("vCenter Limits for Tasks Running at the Same Time")
    vcenter_units_per_host: int = Field(
        default=16, ge=1, description="Provisioning units per host (a linked clone takes 1, a full copy 4)."
    )
    vcenter_units_per_datastore: int = Field(
        default=128, ge=1, description="Provisioning units per datastore (a linked clone 1, a full copy 16)."
    )
    vcenter_max_operations: int = Field(
        default=640, ge=1, description="vCenter operations running at once, of every kind."
    )
    vcenter_max_waiting: int = Field(
        default=2048,
        ge=0,
        description="Commands held waiting for admission beyond those running (prefetch = both).",
    )
    vcenter_task_timeout: float = Field(
        default=1800.0, gt=0, description="Seconds one vCenter task may take."
    )
    vcenter_keepalive: float = Field(default=300.0, gt=0, description="Seconds between session keep-alives.")


def build() -> tuple[ServiceDefinition, AgentSettings]:
    settings = AgentSettings()
    agent = Agent(zone_id=settings.zone_id, task_timeout=settings.vcenter_task_timeout)
    session = VsphereSession(
        settings.vcenter_url,
        datacenter=settings.vcenter_datacenter,
        verify_ssl=not settings.vcenter_insecure,
        ca_file=settings.vcenter_ca_file,
        keepalive_interval=settings.vcenter_keepalive,
    )

    async def connect(runtime: Runtime) -> None:
        agent.bus = runtime.bus
        agent.worker = VcenterWorker(
            session,
            threads=settings.vcenter_threads,
            admission=Admission(
                per_host=settings.vcenter_units_per_host,
                per_datastore=settings.vcenter_units_per_datastore,
                total=settings.vcenter_max_operations,
            ),
        )
        await asyncio.to_thread(session.connect)
        log.info("vCenter session open", datacenter=settings.vcenter_datacenter, zone=settings.zone_id)

    async def disconnect(runtime: Runtime) -> None:
        await asyncio.to_thread(session.close)
        agent.worker.shutdown()

    async def keepalive(runtime: Runtime) -> None:
        while True:
            await asyncio.sleep(settings.vcenter_keepalive)
            try:
                await agent.worker.run(lambda s: s.keepalive())
            except Exception as error:  # the next command logs in again
                log.warning("vCenter keep-alive failed", error=repr(error))

    definition = ServiceDefinition(
        name="agent",
        handlers=handlers(agent),
        # A command waiting for admission holds its delivery (acked only after its effect) but no
        # thread: prefetch covers everything vCenter may run plus a backlog, so the commands of
        # deployments under way are delivered while new clones wait for their host's units.
        consumes=[
            Consumes(
                agent_commands_queue(settings.zone_id),
                namespace="agent",
                prefetch=settings.vcenter_max_operations + settings.vcenter_max_waiting,
            )
        ],
        uses_database=False,
        startup=[connect],
        cleanup=[disconnect],
        jobs=[keepalive],
    )
    return definition, settings
