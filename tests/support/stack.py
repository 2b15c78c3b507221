"""The services as real processes around the simulator, in one vhost and one database."""

from __future__ import annotations

import secrets
from contextlib import AsyncExitStack

from snapdeploy.local.driver import Driver, watching
from tests.support.processes import ServiceProcess
from tests.support.vcsim import Simulator

ZONE = "zone1"


class Stack(Driver):
    """``async with Stack(env, storage=2) as cloud``: the simulator, the agent and the named services."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        storage: int = 0,
        planner: int = 0,
        audit: int = 0,
        api: int = 0,
        **extra_env,
    ):
        self.env = {**env, **{k.upper(): str(v) for k, v in extra_env.items()}}
        self.counts = {"storage": storage, "planner": planner, "audit": audit}
        self.api_count = api
        # The api's bootstrap admin and encryption key: new for every test.
        self.admin_key, self.admin_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        self.env.setdefault("API_ENCRYPTION_KEY", secrets.token_urlsafe(32))
        self.env.update(API_ADMIN_APIKEY=self.admin_key, API_ADMIN_SECRETKEY=self.admin_secret)
        self.api_urls: list[str] = []
        self.api_processes: list[ServiceProcess] = []
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
        for _ in range(self.api_count):
            self.start_api()
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

    def start_api(self) -> str:
        """One more api replica; its /client/api URL."""
        process = self.start("api", "services.api")
        self.api_processes.append(process)
        url = f"http://127.0.0.1:{process.wait_started()}/client/api"
        self.api_urls.append(url)
        return url

    @property
    def api_url(self) -> str:
        return self.api_urls[0]

    def commands_seen(self, type_name: str) -> list:
        return self.events.matching(lambda e: e.type == type_name)
