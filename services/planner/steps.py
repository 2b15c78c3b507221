"""Flows as ordered lists of steps, each owning its undo (Nova's conductor tasks), and their runner.

A step does one thing ("clone"): ``act`` does what it does here and returns the command it
sends (or None when it is done at once); ``done`` records what that command's reply brings.
Its ``undo`` sits next to it. The runner goes down the list; a reply finds its step by type
(a reply of another type than the awaited step's is not for it); a failure names the step
that failed and walks the completed steps backwards, undoing each. Deploy, lifecycle,
VM snapshots and adoption all run here; the replies the planner listens to are derived from
the steps (``replies_of``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from pydantic import BaseModel

from contracts.base import Command, CommandFailed, Succeeded
from contracts.catalogue import failed_reply, succeeded_reply
from contracts.errors import ErrorCode
from services.planner import saga
from services.planner.common import Planner, job
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import HandlerContext

log = structlog.get_logger("planner")
S = TypeVar("S", bound=BaseModel)
AGAIN = "again"  # returned by ``done``: run the same step once more (one NIC after another)


@dataclass(frozen=True)
class Failure:
    """Why a flow failed: the step, the code, the user's text, the vCenter fault."""

    step: str
    code: int
    text: str
    fault: str | None = None


@dataclass(frozen=True)
class Step(Generic[S]):
    name: str
    doing: str | Callable[[S], str]  # in words, for failures and job progress ("cloning")
    act: Callable[[S, HandlerContext, Planner], Awaitable[Command | None]]
    sends: tuple[type[Command], ...] = ()
    done: Callable[[S, Any, HandlerContext, Planner], Awaitable[str | None]] | None = None
    undo: Callable[[S, HandlerContext, Planner], Awaitable[Command | None]] | None = None
    undo_sends: tuple[type[Command], ...] = ()
    long: bool = False  # moves disk data: the copy deadline
    # the undo runs when the step itself fails too (its command may have had part of its effect)
    undo_if_failed: bool = False

    def describe(self, state: S) -> str:
        return self.doing(state) if callable(self.doing) else self.doing


@dataclass(frozen=True)
class Flow(Generic[S]):
    """A process of the planner: its kind (the saga row's and the parked request's), the command
    it answers, its state model, its steps, and what happens at its end either way."""

    kind: str
    command: type[Command]
    state: type[S]
    steps: Sequence[Step[S]]
    succeed: Callable[[S, HandlerContext, Planner], Awaitable[Succeeded]]
    failed: Callable[[S, Failure, HandlerContext, Planner], Awaitable[None]]
    failure_text: Callable[[S, str, str], str]  # (state, what the step was doing, why) -> text
    legacy: Callable[[saga.Saga], saga.Saga] | None = None  # rows written before typed state

    def step(self, name: str) -> Step[S]:
        return next(s for s in self.steps if s.name == name)


def replies_of(flows: Iterable[Flow]) -> set[type]:
    """Every reply type a step of these flows awaits (its commands' Succeeded and Failed)."""
    sent = {c for flow in flows for step in flow.steps for c in (*step.sends, *step.undo_sends)}
    return {reply(c) for c in sent for reply in (succeeded_reply, failed_reply)}


def timeout_of(step: Step, planner: Planner) -> float:
    return planner.copy_timeout if step.long else planner.step_timeout


# -- the runner ----------------------------------------------------------------------------------------


async def begin(ctx: HandlerContext, flow: Flow[S], resource_id: uuid.UUID, state: S, planner: Planner):
    process = await saga.begin(ctx, flow.kind, resource_id, state)
    await run(flow, process, ctx, planner)
    return process


async def run(flow: Flow, process: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    """From the first step not yet done: act; a step that sends a command waits for its reply."""
    for step in flow.steps:
        if step.name in process.completed:
            continue
        try:
            command = await step.act(process.model, ctx, planner)
        except DomainError as error:
            await fail(flow, process, step, ctx, planner, error.code, error.text, error.fault)
            return
        if command is not None:
            await send(flow, process, step, command, ctx, planner)
            return
        process.completed.append(step.name)
    await succeed(flow, process, ctx, planner)


async def send(flow: Flow, process: saga.Saga, step: Step, command: Command, ctx: HandlerContext, planner):
    """Send the step's command, and say where the job is (CloudStack's jobprocstatus)."""
    await saga.send(ctx, process, step.name, command, timeout=timeout_of(step, planner))
    progress = {"steps_done": len(process.completed), "step": step.describe(process.model)}
    job(ctx, "in_progress", flow.command.type_name(), **progress)


async def on_reply(flow: Flow, process: saga.Saga, reply: Any, ctx: HandlerContext, planner: Planner):
    if process.state == "compensating":  # an undo answered (either way): undo the next one
        await undo_next(flow, process, ctx, planner)
        return
    step = flow.step(process.step)
    if isinstance(reply, CommandFailed):
        await fail(flow, process, step, ctx, planner, reply.error_code, reply.error_text, reply.fault)
        return
    if not isinstance(reply, tuple(succeeded_reply(c) for c in step.sends)):
        log.warning("reply for another step ignored", step=step.name, reply=type(reply).__name__)
        return
    try:
        again = await step.done(process.model, reply, ctx, planner) if step.done else None
        if again == AGAIN:
            command = await step.act(process.model, ctx, planner)
            if command is not None:
                await send(flow, process, step, command, ctx, planner)
                return
    except DomainError as error:
        await fail(flow, process, step, ctx, planner, error.code, error.text, error.fault)
        return
    process.completed.append(step.name)
    await run(flow, process, ctx, planner)


async def timed_out(flow: Flow, process: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    """The step's reply never came, even after re-sending: it fails (an undo is given up on)."""
    if process.state == "compensating":
        await undo_next(flow, process, ctx, planner)
        return
    step = flow.step(process.step)
    await fail(
        flow, process, step, ctx, planner, ErrorCode.INTERNAL_ERROR, "no reply within the step's deadline"
    )


async def fail(
    flow: Flow,
    process: saga.Saga,
    step: Step,
    ctx: HandlerContext,
    planner: Planner,
    code: int,
    text: str,
    fault: str | None = None,
) -> None:
    """Record why (naming the step), then undo what the completed steps made, last first."""
    process.error = Failure(
        step.name, code, flow.failure_text(process.model, step.describe(process.model), text), fault
    )
    process.undo = [
        s.name
        for s in reversed(flow.steps)
        if s.undo and (s.name in process.completed or (s is step and s.undo_if_failed))
    ]
    process.state = "compensating"
    await undo_next(flow, process, ctx, planner)


async def undo_next(flow: Flow, process: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    while process.undo:
        step = flow.step(process.undo.pop(0))
        command = await step.undo(process.model, ctx, planner)
        if command is not None:
            await saga.send(ctx, process, f"undo:{step.name}", command, timeout=planner.step_timeout)
            return
    error = process.error
    await flow.failed(process.model, error, ctx, planner)
    job(ctx, "failed", flow.command.type_name(), error_code=error.code, error_text=error.text)
    await saga.finish(ctx, process, failed=True, code=error.code, text=error.text)
    reply = failed_reply(flow.command)(error_code=error.code, error_text=error.text, fault=error.fault)
    ctx.outgoing.extend(
        await pending.answer(ctx.conn, process.resource_id, flow.kind, reply, source="planner")
    )


async def succeed(flow: Flow, process: saga.Saga, ctx: HandlerContext, planner: Planner) -> None:
    reply = await flow.succeed(process.model, ctx, planner)
    job(ctx, "succeeded", flow.command.type_name(), result=reply.model_dump(mode="json"))
    await saga.finish(ctx, process)
    ctx.outgoing.extend(
        await pending.answer(ctx.conn, process.resource_id, flow.kind, reply, source="planner")
    )
