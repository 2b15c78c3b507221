"""RabbitMQ nodes of the test's own, through scripts/rabbit-cluster: one node (a private broker a
test may crash and restart) or a three-node cluster (a test may kill one node at a time)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from snapdeploy import broker_users
from snapdeploy.local.users import snapdeploy_users
from tests.support.processes import ROOT

SCRIPT = ROOT / "scripts" / "rabbit-cluster"
SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


class Cluster:
    """``nodes`` nodes under ``directory`` with AMQP ports from ``port`` (the script's defaults: three
    nodes on 5772-5774 under build/rabbit-cluster)."""

    def __init__(self, *, nodes: int = 3, directory: Path | None = None, port: int | None = None):
        self.nodes = nodes
        self.env = {**os.environ, "RABBIT_CLUSTER_NODES": str(nodes)}
        if directory is not None:
            self.env["RABBIT_CLUSTER_DIR"] = str(directory)
        if port is not None:  # nodes of their own: named after their port
            self.env["RABBIT_CLUSTER_PORT"] = str(port)
            self.env["RABBIT_CLUSTER_NAME"] = f"snapdeploy-{port}"

    def run(self, *args: str, timeout: float = 300) -> str:
        return subprocess.run(
            [str(SCRIPT), *args], check=True, capture_output=True, text=True, timeout=timeout, env=self.env
        ).stdout

    def running(self) -> bool:
        return subprocess.run([str(SCRIPT), "status"], capture_output=True, env=self.env).returncode == 0

    def ctl(self, node: int, *args: str) -> str:
        return self.run("ctl", str(node), "-q", *args, timeout=60)

    def urls(self, vhost: str) -> str:
        return self.run("urls", vhost).strip()

    def add_vhost(self, vhost: str) -> None:
        """The vhost with snapdeploy's service users and the tests' harness user, as on the single broker."""
        document = broker_users.definitions(vhost, snapdeploy_users())
        broker_users.import_definitions(document, rabbitmqctl=f"env {self._env_prefix()} {SCRIPT} ctl 1")

    def _env_prefix(self) -> str:
        keys = ("RABBIT_CLUSTER_NODES", "RABBIT_CLUSTER_DIR", "RABBIT_CLUSTER_PORT", "RABBIT_CLUSTER_NAME")
        return " ".join(f"{k}={self.env[k]}" for k in keys if k in self.env)

    def kill(self, node: int) -> None:
        self.run("kill", str(node))

    def start_node(self, node: int) -> None:
        self.run("start-node", str(node))

    def restart(self) -> None:
        """Every node killed at once, then started again: the broker crashes and comes back."""
        for node in range(1, self.nodes + 1):
            self.kill(node)
        self.run("start")

    def quorum_members(self, node: int, vhost: str) -> dict[str, int]:
        rows = json.loads(
            self.ctl(node, "list_queues", "-p", vhost, "name", "type", "members", "--formatter", "json")
        )
        return {row["name"]: len(row["members"]) for row in rows if row["type"] == "quorum"}
