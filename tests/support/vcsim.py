"""The vCenter simulator for tests: skipped (failed under CI) when the binary is not built."""

from __future__ import annotations

import os
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
