"""A logged exception keeps its stack but never the values of the variables in its frames."""

from __future__ import annotations

import json

import structlog

from shared.logging import configure


def test_a_logged_exception_carries_its_frames_but_no_local_values(capsys):
    configure("test")

    def login(password: str) -> None:
        session_key = "sk-" + password
        raise RuntimeError(f"no session for {len(session_key)} characters")

    try:
        login("hunter2-secret")
    except RuntimeError as error:
        structlog.get_logger().error("request failed", exc_info=error)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    logged = json.loads(line)
    assert logged["exception"][0]["frames"][-1]["name"] == "login"
    assert "hunter2" not in line
