"""The vCenter simulator for tests: skipped (failed under CI) when the binary is not built."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from snapdeploy.local import simulator
from snapdeploy.local.simulator import BINARY, sha256

__all__ = ["BINARY", "Simulator", "require_binary", "sha256"]


def require_binary() -> Path:
    if BINARY.exists():
        return BINARY
    message = f"{BINARY} is missing: run `make vcsim`"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


class Simulator(simulator.Simulator):
    def __init__(self):
        super().__init__(require_binary())

    def disk_size(self, disk_path: str) -> int | None:
        """A disk's size as the datastore shows it: the length of its ``-flat`` extent (None: no disk)."""
        flat = disk_path.removesuffix(".vmdk") + "-flat.vmdk"
        request = urllib.request.Request(self.base + self._folder(flat), method="HEAD")
        request.add_header("Authorization", self._auth)
        try:
            with urllib.request.urlopen(request, context=self._tls, timeout=30) as response:
                return int(response.headers["Content-Length"])
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def requests(self, method: str) -> int:
        """How many times ``method`` was called since the simulator started (or was reset)."""
        return self.control("state")["requests"].get(method, 0)
