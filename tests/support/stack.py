"""The services as real processes around the simulator, in one vhost and one database."""

from __future__ import annotations

from contextlib import AsyncExitStack

from tests.support.driver import Driver, watching
from tests.support.processes import ServiceProcess
from tests.support.vcsim import Simulator

ZONE = "zone1"


class Stack(Driver):
    """``async with Stack(env, storage=2) as cloud``: the simulator, the agent and the named services."""

    def __init__(
        self, env: dict[str, str], *, storage: int = 0, planner: int = 0, audit: int = 0, **extra_env
    ):
        self.env = {**env, **{k.upper(): str(v) for k, v in extra_env.items()}}
        self.counts = {"storage": storage, "planner": planner, "audit": audit}
        self.processes: list[ServiceProcess] = []
        self._stack = AsyncExitStack()

    def start(self, service: str, module: str, **env: str) -> ServiceProcess:
        process = ServiceProcess(module, {**self.env, **env}, name=f"{service}-{len(self.processes)}").start()
        self.processes.append(process)
        return process

    async def __aenter__(self) -> Stack:
        self.sim = Simulator()
        self.env.update(ZONE_ID=ZONE, VCENTER_URL=self.sim.url, VCENTER_INSECURE="true")
        started = [self.start("agent", "services.hypervisor_agent")]
        for service, count in self.counts.items():
            started += [self.start(service, f"services.{service}") for _ in range(count)]
        for process in started:
            process.wait_started()
        client, events = await watching(self.env["AMQP_URL"])
        self._stack.push_async_callback(client.close)
        super().__init__(client, events)
        return self

    async def __aexit__(self, *exc) -> None:
        await self._stack.aclose()
        codes = {p.name: p.stop() for p in self.processes}
        self.sim.stop()
        if exc[0] is None:
            assert all(code == 0 for code in codes.values()), {p.name: p.output() for p in self.processes}

    def commands_seen(self, type_name: str) -> list:
        return self.events.matching(lambda e: e.type == type_name)
