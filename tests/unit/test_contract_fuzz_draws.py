"""The contract fuzz's draws (tests/support/fuzz.py): every type and kind, replayable, and what
they must meet said from the contracts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from tests.support import fuzz

DIGEST = (
    "from tests.support import fuzz; import hashlib; "
    "print(hashlib.sha256(b''.join(m.body + m.routing_key.encode() + m.sender.encode() "
    "for m in fuzz.generate(120, 7, 'zone1'))).hexdigest())"
)


def test_every_command_and_query_type_gets_every_kind_of_defect():
    cells = len(fuzz.targets()) * len(fuzz.KINDS)
    messages = fuzz.generate(cells, 11, "zone1")
    assert len(messages) == cells
    assert {(m.target.key, m.kind) for m in messages} == {
        (t.key, k) for t in fuzz.targets() for k in fuzz.KINDS
    }
    assert len({m.message_id for m in messages}) == cells, "each message has its own id"
    for m in messages:
        expected = fuzz.expect(m, "zone1")
        assert not (m.sender == "harness" and expected.valid), "a service user's valid command would run"
        assert not (expected.valid and m.sender == "producer"), "a valid message goes as a stranger"


def test_a_seed_replays_the_same_messages_in_another_process():
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    first = subprocess.run(
        [sys.executable, "-c", DIGEST], env=env, capture_output=True, text=True, check=True
    )
    env["PYTHONHASHSEED"] = "2"
    again = subprocess.run(
        [sys.executable, "-c", DIGEST], env=env, capture_output=True, text=True, check=True
    )
    assert first.stdout == again.stdout
    here = hashlib.sha256(
        b"".join(m.body + m.routing_key.encode() + m.sender.encode() for m in fuzz.generate(120, 7, "zone1"))
    ).hexdigest()
    assert first.stdout.strip() == here
