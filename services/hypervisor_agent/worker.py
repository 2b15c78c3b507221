"""Runs blocking pyvmomi work off the event loop, admitted the way vCenter counts it.

- A bounded thread pool: pyvmomi never runs on the event loop. An operation written as a
  generator (``vsphere.tasks.task_steps``) gives its thread back while its vCenter task runs:
  the worker awaits the task on the loop and resumes the operation in a thread afterwards.
- Admission (``admission.Admission``): per-operation costs against per-host and per-datastore
  budgets and a global cap; waiting costs no thread, and work of deployments already under way
  goes first.
- Single flight: a second request for the same object (same key) while the first is in
  flight waits for the first and gets its result, instead of starting the work again.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from services.hypervisor_agent.admission import NOT_PROVISIONING, Admission, Cost
from services.hypervisor_agent.vsphere.tasks import Pending, Steps

T = TypeVar("T")


@dataclass(frozen=True)
class _Done:
    value: Any


class VcenterWorker:
    def __init__(self, session: Any, *, threads: int, admission: Admission):
        self.session = session
        self.admission = admission
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="vcenter")
        self._in_flight: dict[Hashable, asyncio.Future] = {}

    async def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        key: Hashable | None = None,
        cost: Cost = NOT_PROVISIONING,
        on_host: str | None = None,
        on_datastore: str | None = None,
        **kwargs: Any,
    ) -> T:
        """``fn(session, *args, **kwargs)`` in the pool, once per ``key`` at a time, once admitted."""
        if key is not None and key in self._in_flight:
            return await asyncio.shield(self._in_flight[key])
        work = asyncio.ensure_future(self._admitted(fn, args, kwargs, cost, on_host, on_datastore))
        if key is not None:
            self._in_flight[key] = work
            work.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(work)

    async def _admitted(self, fn, args, kwargs, cost: Cost, host: str | None, datastore: str | None):
        claim = await self.admission.admit(cost=cost, host=host, datastore=datastore)
        try:
            # a stepwise operation runs step by step, its tasks awaited here without a thread
            operation = getattr(fn, "steps", fn)
            return await self._execute(functools.partial(operation, self.session, *args, **kwargs))
        finally:
            self.admission.release(claim)

    async def _execute(self, call: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._pool, _first_step, call)
        while isinstance(result, Pending):
            try:
                outcome = await asyncio.wrap_future(result.future)
            except Exception as error:
                result = await loop.run_in_executor(self._pool, _throw, result.steps, error)
            else:
                result = await loop.run_in_executor(self._pool, _send, result.steps, outcome)
        return result.value if isinstance(result, _Done) else result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- one step of a stepwise operation, in a pool thread ------------------------------------------------


@dataclass(frozen=True)
class _Suspended(Pending):
    steps: Steps = None


def _first_step(call: Callable[[], Any]) -> Any:
    result = call()
    return _send(result, None) if inspect.isgenerator(result) else _Done(result)


def _send(steps: Steps, value: Any) -> Any:
    try:
        return _Suspended(steps.send(value).future, steps)
    except StopIteration as done:
        return _Done(done.value)


def _throw(steps: Steps, error: BaseException) -> Any:
    try:
        return _Suspended(steps.throw(error).future, steps)
    except StopIteration as done:
        return _Done(done.value)
