"""One PropertyCollector per session that watches every running vCenter task.

A task waiter used to hold a pool thread and a collector of its own for the whole task. Here one
thread runs ``WaitForUpdatesEx`` on one collector whose single filter follows a ``ListView`` of
the running tasks, and hands each finished task's outcome to a ``concurrent.futures.Future``:
an operation awaits that future on the event loop (no thread held) or, from a worker thread,
blocks on it. Watching a task costs one ``ModifyListView`` (which also drops the tasks that
finished since the last one); the waits are shared. An idle watcher makes no calls.
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from pyVmomi import vim, vmodl

from services.hypervisor_agent.vsphere.faults import TaskTimeout, VsphereError, translate
from services.hypervisor_agent.vsphere.tasks import TASK_FIELDS, TaskOutcome, outcome_of

if TYPE_CHECKING:
    from services.hypervisor_agent.vsphere.session import VsphereSession

log = structlog.get_logger(__name__)
PC = vmodl.query.PropertyCollector

# Upper bound of one WaitForUpdatesEx round; keeps each SOAP call well under the socket timeout
# and bounds how late a task's deadline is noticed.
MAX_WAIT_ROUND_S = 10
# A wait loop that fails this many times in a row gives up on the tasks it watches (their
# callers get the error, which is retryable: the tasks may still finish in vCenter).
MAX_FAILURES = 5


@dataclass
class _Watched:
    task: vim.Task
    name: str | None
    entity: Any
    deadline: float
    future: Future = field(default_factory=Future)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Collector:
    collector: Any
    view: Any
    generation: int  # of the session's login: collectors and views die with their session
    version: str = ""


class TaskWatcher:
    def __init__(self, session: VsphereSession) -> None:
        self._session = session
        self._lock = threading.Condition()
        self._watched: dict[str, _Watched] = {}
        self._finished: list[vim.Task] = []  # still in the view: dropped with the next change of it
        self._current: _Collector | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # -- what operations call -------------------------------------------------------------------

    def watch(self, task: vim.Task, *, timeout: float, name: str | None = None, entity: Any = None) -> Future:
        """A future of the task's outcome (a ``TaskOutcome``, failed or not); TaskTimeout after ``timeout``.

        Call it from a worker thread: it adds the task to the watched view.
        """
        watched = _Watched(task, name, entity, time.monotonic() + timeout)
        with self._lock:
            if self._closed:
                raise VsphereError("the vCenter session is closed", fault="NotConnected")
            current = self._live_collector_locked()
            self._watched[task._moId] = watched
            finished, self._finished = self._finished, []
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="vcenter-tasks", daemon=True)
                self._thread.start()
            self._lock.notify_all()
        if current is None:
            return watched.future  # the loop makes the collector and its view with every watched task
        try:
            self._session.call(lambda si: current.view.ModifyListView(add=[task], remove=finished))
        except VsphereError as error:
            # the view may have died with a session: the loop makes a new one with every watched
            # task (and gives up on them, with this error, if vCenter stays unreachable)
            log.info("vcenter.task_view_lost", error=str(error))
            with self._lock:
                if self._current is current:
                    self._current = None
                self._lock.notify_all()
        return watched.future

    def _live_collector_locked(self) -> _Collector | None:
        if self._current is not None and self._current.generation != self._session.generation:
            self._current = None
        return self._current

    def wait(
        self, task: vim.Task, *, timeout: float, name: str | None = None, entity: Any = None
    ) -> TaskOutcome:
        """Block this (worker) thread until the task ends."""
        return self.watch(task, timeout=timeout, name=name, entity=entity).result()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            watched = list(self._watched.values())
            self._watched.clear()
            self._lock.notify_all()
        for w in watched:
            _settle(w.future, exception=VsphereError("the vCenter session closed", fault="NotConnected"))

    # -- the wait loop --------------------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        while True:
            with self._lock:
                while not self._watched and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                nearest = min(w.deadline for w in self._watched.values())
            self._expire()
            try:
                with self._lock:
                    current = self._live_collector_locked()
                current = current or self._make_collector()
                wait = max(1, min(MAX_WAIT_ROUND_S, round(nearest - time.monotonic())))
                update = self._session.call(
                    lambda si, c=current, wait=wait: c.collector.WaitForUpdatesEx(
                        c.version, PC.WaitOptions(maxWaitSeconds=wait)
                    )
                )
                failures = 0
            except VsphereError as error:
                failures += 1
                log.warning("vcenter.task_watch_failed", error=str(error), attempt=failures)
                self._start_over(error if failures >= MAX_FAILURES else None)
                continue
            if update is None:
                continue
            current.version = update.version
            for filter_update in update.filterSet or []:
                for object_update in filter_update.objectSet or []:
                    changes = {c.name: c.val for c in object_update.changeSet or []}
                    self._merge(object_update.obj._moId, changes)

    def _make_collector(self) -> _Collector:
        """A collector of our own, a ListView of every watched task, and one filter through the view."""
        content = self._session.content
        with self._lock:
            tasks = [w.task for w in self._watched.values()]
            self._finished = []

        generation = self._session.generation

        def make(si: vim.ServiceInstance) -> _Collector:
            collector = content.propertyCollector.CreatePropertyCollector()
            view = content.viewManager.CreateListView(obj=tasks)
            through_view = PC.TraversalSpec(name="view", type=vim.view.ListView, path="view", skip=False)
            collector.CreateFilter(
                PC.FilterSpec(
                    objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[through_view])],
                    propSet=[PC.PropertySpec(type=vim.Task, pathSet=TASK_FIELDS)],
                ),
                True,
            )
            return _Collector(collector, view, generation)

        current = self._session.call(make)
        with self._lock:
            self._current = current
            # tasks that came while the view was being made are not in it yet
            known = {t._moId for t in tasks}
            late = [w.task for w in self._watched.values() if w.task._moId not in known]
        if late:
            self._session.call(lambda si: current.view.ModifyListView(add=late))
        return current

    def _merge(self, moid: str, changes: dict[str, Any]) -> None:
        with self._lock:
            watched = self._watched.get(moid)
            if watched is None:
                return
            watched.info.update(changes)
            if watched.info.get("info.state") not in ("success", "error"):
                return
            del self._watched[moid]
            self._finished.append(watched.task)
        _settle(watched.future, result=outcome_of(watched.task, watched.info, watched.name, watched.entity))

    def _expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [w for w in self._watched.values() if w.deadline <= now]
            for w in late:
                del self._watched[w.task._moId]
                self._finished.append(w.task)
        for w in late:
            state = w.info.get("info.state", "queued")
            _settle(
                w.future,
                exception=TaskTimeout(
                    f"task {w.task._moId} still {state} after its deadline",
                    fault="TaskTimeout",
                    context=w.name,
                ),
            )

    def _start_over(self, give_up: VsphereError | None) -> None:
        """Forget the collector (it may have died with a session); the next round makes a new one."""
        with self._lock:
            old, self._current = self._current, None
            watched = list(self._watched.values()) if give_up is not None else []
            if give_up is not None:
                self._watched.clear()
        if old is not None:
            with contextlib.suppress(VsphereError):
                self._session.call(lambda si: old.collector.DestroyPropertyCollector())
        for w in watched:
            _settle(w.future, exception=translate(give_up))
        time.sleep(0.2)


def _settle(future: Future, *, result: Any = None, exception: BaseException | None = None) -> None:
    with contextlib.suppress(Exception):  # already settled
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(result)
