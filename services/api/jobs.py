"""Async jobs: rows that follow their command on the bus, and CloudStack's view of them (section 4).

The job id is the correlation id of every message of the job. From ``api.jobs`` the api learns:
a command sent to the agent or storage for the job names the step running now (``jobprocstep``);
each other reply of the job is one step done (``jobprocstatus``); the terminal reply of the
job's own command ends it, with the result object (read from the owning service at that moment)
or the error code and text. Every replica consumes the one queue and writes PostgreSQL, so any
replica answers any job, also after a restart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from contracts.base import snake
from contracts.envelope import Envelope
from contracts.topology import COMMANDS
from services.api.render import date
from shared.db import inbox

log = structlog.get_logger("api.jobs")

CONSUMER = "api.jobs"
STEP_WORDS = {
    "GetVmSnapshotConfigs": "reading the snapshot's configuration",
    "SeedTemplateFromVmSnapshot": "seeding the template",
    "SeedTemplate": "copying the root disk into the seed",
    "AllocateRootVolume": "allocating the root volume",
    "CloneFromSnapshot": "cloning",
    "ReconfigureVm": "reconfiguring",
    "RecordVirtualMachine": "recording the disks",
    "RecordVmSnapshot": "recording the snapshot",
    "AttachNic": "adding a NIC",
    "PowerOnVm": "powering on",
    "PowerOffVm": "powering off",
    "DestroyVm": "destroying",
    "DestroyVmVolumes": "releasing the volumes",
    "CreateVmSnapshot": "taking the snapshot",
    "RemoveVmSnapshot": "removing the snapshot",
    "ForgetVmSnapshot": "forgetting the snapshot",
    "CopyVolumeFromSnapshot": "copying the disk",
    "CreateDisk": "creating the disk",
    "AttachDisk": "attaching the disk",
    "DetachDisk": "detaching the disk",
    "ExtendDisk": "extending the disk",
}
STATUS = {0: "pending", 1: "succeeded", 2: "failed"}

# (job row, the terminal reply's payload) -> the jobresult object, e.g. {"virtualmachine": {...}}
Renderer = Callable[[asyncpg.Record, dict[str, Any]], Awaitable[dict[str, Any]]]


RESULT_ATTEMPTS = 6  # reading the result object: about 15 s of backoff, over a broker failover


async def result_object(
    render: Renderer,
    job: asyncpg.Record,
    payload: dict[str, Any],
    *,
    attempts: int = RESULT_ATTEMPTS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> dict[str, Any]:
    """The succeeded job's result object (``{"virtualmachine": {...}}``), read again after a failed
    read (a broker node failing over, a planner restarting): clients read the object, so a job
    should not end without it while it can still be had. Past the last attempt the work is done
    all the same: ``{"success": true}``."""
    for attempt in range(attempts):
        try:
            return await render(job, payload)
        except Exception as error:
            if attempt == attempts - 1:
                log.warning("could not read the job's result object", error=repr(error))
                break
            await sleep(min(8.0, 0.5 * 2**attempt))
    return {"success": True}


def step_words(type_name: str) -> str:
    return STEP_WORDS.get(type_name, snake(type_name).replace("_", " "))


class JobTracker:
    """The ``api.jobs`` consumer."""

    def __init__(self, pool: asyncpg.Pool, render: Renderer):
        self.pool = pool
        self.render = render

    async def __call__(self, delivery: AbstractIncomingMessage) -> None:
        try:
            await self.track(delivery)
        except Exception as error:  # the broker redelivers; the inbox keeps counts exact
            log.warning("job update failed, will retry", error=repr(error))
            await delivery.nack(requeue=True)
            return
        await delivery.ack()

    async def track(self, delivery: AbstractIncomingMessage) -> None:
        if not delivery.correlation_id:
            return
        try:
            envelope = Envelope.model_validate_json(delivery.body)
        except ValidationError:
            return  # not ours to judge: the audit and the owners see it too
        if envelope.correlation_id is None:
            return
        type_name = envelope.type
        is_command = delivery.exchange == COMMANDS.name
        is_reply = type_name.endswith(("Succeeded", "Failed"))
        if not (is_command or is_reply):
            return
        job = await self.pool.fetchrow(
            "SELECT * FROM async_jobs WHERE uuid = $1 AND status = 0", envelope.correlation_id
        )
        if job is None:
            return
        if is_command:
            await self.pool.execute(
                "UPDATE async_jobs SET procstep = $2 WHERE uuid = $1 AND status = 0",
                job["uuid"],
                step_words(type_name),
            )
        elif envelope.causation_id == job["command_id"]:
            await self.finish(job, envelope)
        else:
            async with self.pool.acquire() as conn, conn.transaction():
                if await inbox.claim(conn, CONSUMER, envelope.message_id, type_name):
                    await conn.execute(
                        "UPDATE async_jobs SET procstatus = procstatus + 1 WHERE uuid = $1 AND status = 0",
                        job["uuid"],
                    )

    async def finish(self, job: asyncpg.Record, reply: Envelope) -> None:
        if reply.type.endswith("Failed"):
            code = int(reply.payload.get("error_code") or 530)
            text = reply.payload.get("error_text") or "failed"
            status, result = 2, {"errorcode": code, "errortext": text}
        else:
            code, status = 0, 1
            result = await result_object(self.render, job, reply.payload)
        await self.pool.execute(
            """UPDATE async_jobs SET status = $2, result_code = $3, result = $4, completed = now(),
                   procstep = NULL WHERE uuid = $1 AND status = 0""",
            job["uuid"],
            status,
            code,
            result,
        )
        log.info("job finished", job_id=str(job["uuid"]), cmd=job["cmd"], status=STATUS[status], code=code)


def job_response(row: asyncpg.Record, accounts: dict[uuid.UUID, str]) -> dict[str, Any]:
    """queryAsyncJobResult / listAsyncJobs fields (AsyncJobResponse)."""
    from services.api.accounts import ROOT_DOMAIN

    out: dict[str, Any] = {
        "jobid": str(row["uuid"]),
        "accountid": str(row["account_uuid"]),
        "account": accounts.get(row["account_uuid"]),
        "domainid": str(ROOT_DOMAIN),
        "domainpath": "ROOT",
        "userid": str(row["user_uuid"]),
        "cmd": row["cmd"],
        "jobstatus": row["status"],
        "jobprocstatus": row["procstatus"],
        "jobresultcode": row["result_code"],
        "created": date(row["created"]),
    }
    if row["procstep"] and row["status"] == 0:
        out["jobprocstep"] = row["procstep"]
    if row["instance_type"]:
        out["jobinstancetype"] = row["instance_type"]
        out["jobinstanceid"] = str(row["instance_id"])
    if row["status"] != 0:
        out["jobresulttype"] = "object"
        out["jobresult"] = row["result"] or {}
        out["completed"] = date(row["completed"])
    return {k: v for k, v in out.items() if v is not None}
