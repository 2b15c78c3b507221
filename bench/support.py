"""What the benchmarks share: a scratch RabbitMQ vhost, removed afterwards."""

from __future__ import annotations

import contextlib
import subprocess
import uuid
from collections.abc import Iterator

from shared.settings import ServiceSettings


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True)


@contextlib.contextmanager
def scratch_vhost() -> Iterator[str]:
    """An AMQP URL of a new vhost that exists for the duration of the block."""
    vhost = f"snapdeploy-bench-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield ServiceSettings().amqp_url.rsplit("/", 1)[0] + "/" + vhost
    finally:
        rabbitmqctl("delete_vhost", vhost)
