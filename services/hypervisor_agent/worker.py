"""Runs blocking pyvmomi work off the event loop, within the agent's concurrency caps.

- A bounded thread pool: pyvmomi never runs on the event loop.
- At most ``per_host`` tasks on one host and ``per_datastore`` on one datastore at a time.
- Single flight: a second request for the same object (same key) while the first is in
  flight waits for the first and gets its result, instead of starting the work again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import defaultdict
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class VcenterWorker:
    def __init__(self, session: Any, *, threads: int, per_host: int, per_datastore: int):
        self.session = session
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vcenter")
        self._hosts: defaultdict[str, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(per_host))
        self._datastores: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(per_datastore)
        )
        self._in_flight: dict[Hashable, asyncio.Future] = {}

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        key: Hashable | None = None,
        on_host: str | None = None,
        on_datastore: str | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(session, *args, **kwargs)`` in the pool, once per ``key`` at a time."""
        if key is not None and key in self._in_flight:
            return await asyncio.shield(self._in_flight[key])
        work = asyncio.ensure_future(self._limited(fn, args, kwargs, on_host, on_datastore))
        if key is not None:
            self._in_flight[key] = work
            work.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(work)

    async def _limited(self, fn, args, kwargs, host: str | None, datastore: str | None):
        async with contextlib.AsyncExitStack() as limits:
            # Always host before datastore, so two requests never wait on each other's slot.
            if host:
                await limits.enter_async_context(self._hosts[host])
            if datastore:
                await limits.enter_async_context(self._datastores[datastore])
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, functools.partial(fn, self.session, *args, **kwargs)
            )

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
