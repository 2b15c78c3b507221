"""Run a service as a real process and read its JSON log lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from snapdeploy.broker_users import service_user
from snapdeploy.local.users import as_user

ROOT = Path(__file__).resolve().parents[2]


def service_of(module: str) -> str | None:
    """``services.hypervisor_agent`` -> ``agent``: whose broker user a service process connects as."""
    if not module.startswith("services."):
        return None
    service = module.split(".")[1]
    return "agent" if service == "hypervisor_agent" else service


class ServiceProcess:
    def __init__(self, module: str, env: dict[str, str], *, name: str | None = None):
        self.module = module
        self.name = name or module
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        service = service_of(module)
        if service is not None and "AMQP_URL" in env:  # every service as its own RabbitMQ user
            self.env["AMQP_URL"] = as_user(env["AMQP_URL"], service_user(service))
        self.lines: list[dict] = []
        self.raw: list[str] = []
        self._changed = threading.Condition()
        self.proc: subprocess.Popen | None = None
        self._eof = False

    def start(self) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._changed:
                self.raw.append(line)
                with contextlib.suppress(json.JSONDecodeError):
                    self.lines.append(json.loads(line))
                self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    def wait_for_log(self, event: str, timeout: float = 30.0, **fields) -> dict:
        """The first log line with this event (and fields), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                        return line
                if self._eof:
                    code = self.proc.poll()
                    raise AssertionError(
                        f"{self.name} exited ({code}) before logging {event!r}:\n{self.output()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name} did not log {event!r} within {timeout}s:\n{self.output()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def wait_started(self, timeout: float = 30.0) -> int:
        """Wait for 'service started'; returns the HTTP port."""
        return self.wait_for_log("service started", timeout)["http_port"]

    def output(self) -> str:
        return "".join(self.raw[-60:])

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait()
        return self.proc.returncode if self.proc else None
