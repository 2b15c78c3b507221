"""The chaos run (tests/support/chaos.py): short in every test run; `make chaos ROUNDS=N SEED=S` for more."""

from __future__ import annotations

import os
import random

import pytest

from tests.support.chaos import Chaos, bad_figures, render
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e
QUICK = {
    "step_timeout": 30,
    "copy_timeout": 120,
    "watchdog_interval": 1,
    "retry_backoff_base": 0.2,
    "retry_backoff_max": 2,
    "reconcile_interval": 0,  # the run counts orphans itself, after quiescence
    "reconcile_grace": 3600,
}


async def test_chaos_loses_nothing_doubles_nothing_and_leaves_nothing_behind(service_env, broker, vhost):
    rounds = int(os.environ.get("CHAOS_ROUNDS", "2"))
    seed = int(os.environ.get("CHAOS_SEED") or random.randrange(2**32))
    print(f"\nchaos seed {seed} (replay: make chaos ROUNDS={rounds} SEED={seed})")
    async with Stack(service_env, storage=1, planner=1, audit=1, **QUICK) as cloud:
        chaos = Chaos(
            cloud,
            seed=seed,
            drop_connections=lambda: broker.ctl("close_all_connections", "-p", vhost.name, "chaos"),
        )
        await chaos.setup()
        for number in range(rounds):
            await chaos.round(number)
        table = await chaos.figures()
        print(render(table, seed=seed, rounds=rounds))

        assert bad_figures(table) == {}, render(table, seed=seed, rounds=rounds)
