"""The stack of `make demo` and `make up`: the simulator, every service and the API as processes.

They run against the local RabbitMQ and PostgreSQL in a vhost and a database of the demo's own.
Every service connects as its own RabbitMQ user; nobody as guest. The bus connection here only
syncs the zone and reads vCenter's inventory (the truth the demo checks against), and registers
the demo's bus producer; every deployment goes through the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import urllib.parse
import uuid

import aio_pika
import asyncpg

from contracts.agent import SyncInventory
from contracts.events import InventorySynced
from contracts.vsphere import VmInfo
from snapdeploy import broker_users
from snapdeploy.client import BusClient
from snapdeploy.local.processes import ServiceProcess
from snapdeploy.local.simulator import Simulator
from snapdeploy.local.users import TEST_SERVICE_USERS, as_user, producer_user, snapdeploy_users

ZONE = "zone1"
SERVICES = {"hypervisor_agent": 8083, "planner": 8081, "storage": 8082, "audit": 8084}
PRODUCER = "demo-team"  # a bus producer of the demo account: a RabbitMQ user of its own


def scratch_vhost(amqp_url: str, name: str) -> str:
    """A fresh vhost with snapdeploy's users and the demo's producer (snapdeploy/broker_users.py's
    permissions) when rabbitmqctl is here (local broker); the operator console's URL in it. Else the
    URL as given, whose vhost must have those users already (``python -m snapdeploy.broker_users``)."""
    if not shutil.which("rabbitmqctl"):
        return amqp_url
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)
    users = {**snapdeploy_users(), **producer_user(PRODUCER)}
    broker_users.import_definitions(broker_users.definitions(name, users))
    parts = urllib.parse.urlsplit(amqp_url)
    url = urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name, safe="")))
    return as_user(url, "snapdeploy-test")


async def usable(url: str) -> None:
    """The definitions import is asynchronous: wait until the console's user can open the vhost."""
    for _ in range(200):
        try:
            await (await aio_pika.connect(url)).close()
            return
        except (aio_pika.exceptions.AMQPError, ConnectionError, OSError):
            await asyncio.sleep(0.05)
    raise RuntimeError(f"cannot connect to {url.split('@')[-1]}")


async def scratch_database(database_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(database_url)
    admin = await asyncpg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


class Stack:
    """Every service (fixed ports with ``make up``, any free port for the demo) and the API."""

    def __init__(
        self, amqp_url: str, database_url: str, sim: Simulator, *, fixed_ports: bool, api_port: int,
        api_env: dict[str, str],
    ):  # fmt: skip
        self.amqp_url, self.database_url, self.sim = amqp_url, database_url, sim
        self.fixed_ports, self.api_port, self.api_env = fixed_ports, api_port, api_env
        self.processes: list[ServiceProcess] = []
        self._exit = contextlib.AsyncExitStack()

    @property
    def admin_key(self) -> str:
        return self.api_env["API_ADMIN_APIKEY"]

    @property
    def admin_secret(self) -> str:
        return self.api_env["API_ADMIN_SECRETKEY"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/client/api"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/console"

    async def start(self) -> None:
        common = {
            "AMQP_URL": self.amqp_url, "BUS_SERVICE_USERS": TEST_SERVICE_USERS,  # each as its own user
            "DATABASE_URL": self.database_url, "ZONE_ID": ZONE,
            "VCENTER_URL": self.sim.url, "VCENTER_INSECURE": "true",
            "SCAVENGER_INTERVAL": "5", "SCAVENGER_DELAY": "0",
        }  # fmt: skip
        for service, port in SERVICES.items():
            env = {**common, "HTTP_PORT": str(port if self.fixed_ports else 0)}
            self.processes.append(ServiceProcess(f"services.{service}", env, name=service).start())
        api_env = {**common, **self.api_env, "HTTP_PORT": str(self.api_port if self.fixed_ports else 0)}
        api = ServiceProcess("services.api", api_env, name="api").start()
        self.processes.append(api)
        for process in self.processes:
            port = process.wait_started(timeout=60)
            if process is api:
                self.api_port = port
        self.bus = await self._exit.enter_async_context(BusClient(self.amqp_url, name="demo"))
        self.job = uuid.uuid4()  # every sync of the demo is one job

    async def inventory(self) -> tuple[dict[str, VmInfo], dict]:
        """Sync the zone: its VMs by name, as vCenter has them now, and the InventorySynced payload."""
        synced = await self.bus.call_caused(SyncInventory(zone_id=ZONE), InventorySynced, job=self.job)
        return {v.name: v for v in synced.vms}, synced.model_dump(mode="json")

    async def stop(self) -> bool:
        await self._exit.aclose()
        codes = {p.name: p.stop() for p in self.processes}
        print("\nstopped: " + ", ".join(f"{name} (exit {code})" for name, code in codes.items()))
        return all(code == 0 for code in codes.values())

    def print_logs(self) -> None:
        for process in self.processes:
            print(f"\n--- {process.name} (last lines) ---\n{process.output()[-3000:]}")
