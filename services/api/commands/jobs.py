"""queryAsyncJobResult and listAsyncJobs (CLOUDSTACK_API.md section 4)."""

from __future__ import annotations

from services.api.errors import denied, param_error
from services.api.jobs import job_response
from services.api.params import Param
from services.api.table import Api, Call, page

# Answered synchronously (the api waits for their reply): jobs inside, not CloudStack async jobs.
SYNC_COMMANDS = ["deleteVolume", "createServiceOffering"]


async def query_async_job_result(call: Call) -> dict:
    row = await call.ctx.pool.fetchrow("SELECT * FROM async_jobs WHERE uuid = $1", call.args["jobid"])
    if row is None:
        raise param_error(f"Unable to execute API command queryasyncjobresult: no job {call.args['jobid']}")
    if not call.may_use(row["account_uuid"]):
        raise denied(f"Account {call.caller.account} does not have permission to see job {row['uuid']}")
    return job_response(row, await call.ctx.account_names())


async def list_async_jobs(call: Call) -> dict:
    owner = await call.owner_filter()
    rows = await call.ctx.pool.fetch(
        """SELECT * FROM async_jobs WHERE ($1::uuid IS NULL OR account_uuid = $1)
             AND ($2::timestamptz IS NULL OR created >= $2) AND cmd <> ALL($3::text[])
           ORDER BY created DESC LIMIT 10000""",
        owner,
        call.args.get("startdate"),
        SYNC_COMMANDS,
    )
    names = await call.ctx.account_names()
    return page(call, "asyncjobs", [job_response(r, names) for r in rows], name_of="cmd")


APIS = [
    Api(
        "queryAsyncJobResult",
        query_async_job_result,
        "The status and result of an async job.",
        (Param("jobid", "uuid", "The job.", required=True),),
        response="asyncjobs",
    ),
    Api(
        "listAsyncJobs",
        list_async_jobs,
        "Lists async jobs, newest first.",
        (Param("startdate", "date", "Jobs created since."),),
        listing=True,
        response="asyncjobs",
    ),
]
