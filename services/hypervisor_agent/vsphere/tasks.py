"""Waiting for vCenter tasks with a PropertyCollector, and reporting every task the agent ran.

An operation that runs a task either blocks its worker thread on it (``run_task``) or, written
as a generator (``outcome = yield from task_steps(...)``), yields it to the worker, which awaits
it on the event loop and resumes the operation in a thread afterwards: a running task then
holds no thread. Either way the session's ``TaskWatcher`` waits for every task at once.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Generator
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pyVmomi import VmomiSupport, vim, vmodl

from services.hypervisor_agent.vsphere import props
from services.hypervisor_agent.vsphere.faults import TaskTimeout, fault_name, translate

if TYPE_CHECKING:
    from services.hypervisor_agent.vsphere.session import VsphereSession

PC = vmodl.query.PropertyCollector

# Only these fields are collected: the whole ``info`` carries fields (e.g. a non-entity
# ``info.entity`` or ``info.name``) that pyvmomi 9 fails to parse from some servers.
TASK_FIELDS = [
    "info.key",
    "info.state",
    "info.error",
    "info.result",
    "info.startTime",
    "info.completeTime",
    "info.descriptionId",
    "info.entityName",
]

# Upper bound of one WaitForUpdatesEx round; keeps each SOAP call well under the socket timeout.
MAX_WAIT_ROUND_S = 60

Report = Callable[["TaskOutcome"], None]


class Deadline:
    """One time budget shared by the several tasks of an operation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self._end - time.monotonic())


@dataclass(frozen=True)
class TaskOutcome:
    """A finished vCenter task: what ran on what, when, and how it ended."""

    key: str
    name: str
    entity: str | None
    entity_name: str | None
    state: Literal["success", "error"]
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    result: Any = None
    fault: str | None = None
    fault_message: str | None = None
    error: Any = None  # the raw LocalizedMethodFault, for translate()


def wait_for_task(
    si: vim.ServiceInstance,
    task: vim.Task,
    *,
    timeout: float,
    name: str | None = None,
    entity: vim.ManagedEntity | None = None,
    content: vim.ServiceInstanceContent | None = None,
) -> TaskOutcome:
    """Wait until the task succeeds or fails and describe it; raise TaskTimeout after ``timeout``.

    A failed task is returned, not raised: the caller decides. ``name`` is the method that
    started it (``CloneVM_Task``); without it, the name comes from ``info.descriptionId``.
    ``entity`` is the object the task works on: ``info.entity`` is not collected because
    pyvmomi cannot parse it when vCenter puts a non-entity there (disk and file tasks).
    Pass ``content`` to save the round trip that fetches the ServiceContent.
    """
    content = content or si.RetrieveContent()
    deadline = time.monotonic() + timeout
    # A collector of our own: WaitForUpdatesEx on a shared one would steal other waiters' updates.
    collector = content.propertyCollector.CreatePropertyCollector()
    try:
        collector.CreateFilter(
            PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=task)],
                propSet=[PC.PropertySpec(type=vim.Task, pathSet=TASK_FIELDS)],
            ),
            True,
        )
        info: dict[str, Any] = {}
        version = ""
        while info.get("info.state") not in ("success", "error"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TaskTimeout(
                    f"task {task._moId} still {info.get('info.state', 'queued')} after {timeout:g}s",
                    fault="TaskTimeout",
                    context=name,
                )
            wait = min(MAX_WAIT_ROUND_S, max(1, math.ceil(remaining)))
            update = collector.WaitForUpdatesEx(version, PC.WaitOptions(maxWaitSeconds=wait))
            if update is None:  # the wait ran out without a change
                continue
            version = update.version
            for filter_update in update.filterSet:
                for object_update in filter_update.objectSet:
                    info.update((change.name, change.val) for change in object_update.changeSet)
    finally:
        # The collector dies with the session anyway; failing to destroy it must not turn a
        # task we saw finish into an error.
        with contextlib.suppress(vmodl.MethodFault, OSError):
            collector.DestroyPropertyCollector()
    return outcome_of(task, info, name, entity)


@dataclass(frozen=True)
class Pending:
    """What a stepwise operation yields: a running task's future outcome, for the worker to await."""

    future: Future


Steps = Generator[Pending, Any, Any]


def task_steps(
    session: VsphereSession,
    start: Callable[[vim.ServiceInstance], vim.Task],
    *,
    timeout: float,
    report: Report,
    name: str | None = None,
    entity: vim.ManagedEntity | None = None,
    activation_id: str | None = None,
) -> Generator[Pending, TaskOutcome, TaskOutcome]:
    """Start a task, yield until it ends, report it (success or error), raise its fault if it failed.

    ``activation_id`` tags the task (``info.activationId``) so that a later call, after a
    crash, can find it with ``tagged_tasks`` and wait for it instead of starting it again.
    """
    if activation_id is None:
        task = session.call(start)
    else:
        task = session.call(lambda si: _tagged(activation_id, start, si))
    outcome = yield Pending(session.tasks.watch(task, timeout=timeout, name=name, entity=entity))
    report(outcome)
    if outcome.state == "error":
        raise translate(outcome.error, context=outcome.name)
    return outcome


def stepwise(operation: Callable[..., Steps]) -> Callable[..., Any]:
    """An operation written as a generator, callable as a blocking function like every other.

    Called, it runs to its end in the calling thread; the worker runs ``operation.steps``
    instead, awaiting each task it yields without holding a thread.
    """

    @functools.wraps(operation)
    def blocking(*args: Any, **kwargs: Any) -> Any:
        return drive(operation(*args, **kwargs))

    blocking.steps = operation
    return blocking


def drive(steps: Steps) -> Any:
    """Run a stepwise operation to its end in this thread (blocking on each task it yields)."""
    try:
        pending = next(steps)
        while True:
            try:
                outcome = pending.future.result()
            except Exception as error:
                pending = steps.throw(error)
            else:
                pending = steps.send(outcome)
    except StopIteration as done:
        return done.value


# The blocking form, for operations that are not stepwise: start a task, wait for it in this
# thread, report it, raise its fault if it failed.
run_task = stepwise(task_steps)


def running_tasks(session: VsphereSession, entity: vim.ManagedEntity, method: str) -> list[vim.Task]:
    """Queued or running tasks of ``method`` (``CreateSnapshot_Task``) on ``entity``.

    A repeated command waits for these instead of starting the same work a second time. Both
    the entity's and the TaskManager's recent tasks are read (the simulator fills only the
    latter). ``info.entity`` is read only for tasks already known to be ``method``'s, which
    work on entities pyvmomi can parse.
    """
    wanted = _method_stem(method)
    content = session.content

    def find(si: vim.ServiceInstance) -> list[vim.Task]:
        own = props.fetch(content, entity, ["recentTask"]) or {}
        everyone = props.fetch(content, content.taskManager, ["recentTask"]) or {}
        tasks = list(
            {t._moId: t for t in [*own.get("recentTask", []), *everyone.get("recentTask", [])]}.values()
        )
        states = props.fetch_many(content, tasks, ["info.state", "info.descriptionId"])
        candidates = [
            task
            for task in tasks
            if (info := states.get(task._moId))
            and info.get("info.state") in ("queued", "running")
            and _method_stem(info.get("info.descriptionId", "")) == wanted
        ]
        targets = props.fetch_many(content, candidates, ["info.entity"])
        return [
            t
            for t in candidates
            if getattr(targets.get(t._moId, {}).get("info.entity"), "_moId", None) == entity._moId
        ]

    return session.call(find)


def wait_quietly(session: VsphereSession, tasks: list[vim.Task], *, timeout: float) -> None:
    """Wait for tasks someone else started; their outcome is theirs to report."""
    deadline = time.monotonic() + timeout
    for task in tasks:
        session.tasks.wait(task, timeout=max(0.0, deadline - time.monotonic()))


def tagged_tasks(session: VsphereSession, method: str, activation_id: str) -> list[tuple[vim.Task, str]]:
    """The recent tasks of ``method`` started with ``activation_id``, each with its state.

    Finished tasks stay in the TaskManager's recent tasks for a while (about ten minutes on
    vCenter), so an earlier call's success is found as well as a task still running.
    """
    wanted = _method_stem(method)
    content = session.content

    def find(si: vim.ServiceInstance) -> list[tuple[vim.Task, str]]:
        recent = (props.fetch(content, content.taskManager, ["recentTask"]) or {}).get("recentTask", [])
        infos = props.fetch_many(
            content, list(recent), ["info.state", "info.descriptionId", "info.activationId"]
        )
        return [
            (task, info["info.state"])
            for task in recent
            if (info := infos.get(task._moId))
            and info.get("info.activationId") == activation_id
            and _method_stem(info.get("info.descriptionId", "")) == wanted
        ]

    return session.call(find)


def _tagged(activation_id: str, start: Callable[[vim.ServiceInstance], vim.Task], si: vim.ServiceInstance):
    """Call ``start`` with the SOAP header ``operationID``, which the task keeps as ``info.activationId``.

    pyvmomi's request context is per thread: it is set for this one call only.
    """
    context = VmomiSupport.GetRequestContext()
    context["operationID"] = activation_id
    try:
        return start(si)
    finally:
        context.pop("operationID", None)


def _method_stem(name: str) -> str:
    """``CreateSnapshot_Task`` / ``VirtualMachine.CreateSnapshot`` / ``VirtualMachine.createSnapshot``
    -> ``createsnapshot``: the descriptionId's spelling differs between vCenter and the simulator."""
    name = name.rsplit(".", 1)[-1]
    return name.removesuffix("_Task").removesuffix("Task").lower()


def outcome_of(task: vim.Task, info: dict[str, Any], name: str | None, entity: Any) -> TaskOutcome:
    started, completed = _utc(info.get("info.startTime")), _utc(info.get("info.completeTime"))
    # pyvmomi hands a task's LocalizedMethodFault over as the fault itself (msg = localized
    # message); accept the wrapper too.
    error = info.get("info.error")
    fault = error.fault if isinstance(error, vmodl.LocalizedMethodFault) else error
    message = getattr(error, "localizedMessage", None) or getattr(fault, "msg", None)
    return TaskOutcome(
        key=info.get("info.key") or task._moId,
        name=name or info.get("info.descriptionId") or "unknown",
        entity=getattr(entity, "_moId", None),
        entity_name=info.get("info.entityName") or None,
        state=info["info.state"],
        started_at=started,
        completed_at=completed,
        duration_ms=_duration_ms(started, completed),
        result=info.get("info.result"),
        fault=fault_name(fault) if fault is not None else None,
        fault_message=(message or None) if fault is not None else None,
        error=error,
    )


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _duration_ms(started: datetime | None, completed: datetime | None) -> int | None:
    if started is None or completed is None:
        return None
    return max(0, round((completed - started).total_seconds() * 1000))
