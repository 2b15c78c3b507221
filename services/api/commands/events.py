"""listEvents (the audit's records in CloudStack's event shape) and getDeploymentTrail."""

from __future__ import annotations

import uuid

from contracts import audit
from services.api import render
from services.api.commands import lookup
from services.api.errors import param_error
from services.api.params import Param
from services.api.table import Api, Call

MAX_EVENTS = 1000


async def list_events(call: Call) -> dict:
    args = call.args
    owner = await call.owner_filter()
    size = min(args.get("pagesize", 500), MAX_EVENTS)
    query = audit.ListEvents(
        type="ActionEvent",
        event_type=args.get("type"),
        resource_id=args.get("resourceid"),
        account_id=owner,
        since=args.get("startdate"),
        until=args.get("enddate"),
        page=max(args.get("page", 1), 1),
        page_size=max(size, 1),
    )
    answer = await call.ctx.ask(query, call.caller.actor)
    owners = {uuid.UUID(i["account_id"]) for i in answer.items if i.get("account_id")}
    known = await lookup.names(call.ctx, accounts=owners)
    items = [render.event(i, known) for i in answer.items]
    if "level" in args:
        items = [i for i in items if i["level"] == args["level"].upper()]
    if "keyword" in args:
        items = [i for i in items if args["keyword"].lower() in (i.get("description") or "").lower()]
    if answer.total == 0:
        return {}
    return {"count": answer.total, "event": items} if items else {"count": answer.total}


async def get_deployment_trail(call: Call) -> dict:
    lookup.exclusive(call, "virtualmachineid", "jobid")
    if "jobid" in call.args:
        row = await call.ctx.pool.fetchrow("SELECT * FROM async_jobs WHERE uuid = $1", call.args["jobid"])
        if row is None or not call.may_use(row["account_uuid"]):
            raise param_error(f"no job {call.args['jobid']}")
        job_id, vm_id = row["uuid"], row["instance_id"]
    elif "virtualmachineid" in call.args:
        vm = await lookup.vm(call, call.args["virtualmachineid"], "virtualmachineid")
        row = await call.ctx.pool.fetchrow(
            """SELECT uuid FROM async_jobs WHERE instance_id = $1 AND cmd = 'deployVirtualMachine'
               ORDER BY created LIMIT 1""",
            vm.id,
        )
        if row is None:
            raise param_error(f"VM {vm.name} was not deployed through this API; no trail")
        job_id, vm_id = row["uuid"], vm.id
    else:
        raise param_error(
            "Unable to execute API command getdeploymenttrail due to missing parameter virtualmachineid"
        )
    trail = await call.ctx.ask(audit.GetDeploymentTrail(correlation_id=job_id), call.caller.actor)
    entries = [
        render.compact(
            {
                "at": render.date_ms(e.occurred_at),
                "kind": "task" if e.type == "VcenterTask" else e.kind,
                "name": e.task_name or e.event_type or e.type,
                "service": e.source,
                "state": e.state or ("failed" if e.error_code else None),
                "durationms": e.duration_ms,
                "description": e.summary,
            }
        )
        for e in trail.entries
    ]
    return {
        "trail": {
            "virtualmachineid": str(vm_id) if vm_id else None,
            "jobid": str(job_id),
            "status": trail.status,
            "entries": entries,
        }
    }


APIS = [
    Api(
        "listEvents",
        list_events,
        "Lists action events (VM.CREATE, VMSNAPSHOT.CREATE, ...).",
        (
            Param("type", "string", "Event type, e.g. VM.CREATE."),
            Param("level", "string", "INFO, WARN or ERROR."),
            Param("startdate", "date", "From."),
            Param("enddate", "date", "Until."),
            Param("resourceid", "uuid", "Of this resource."),
        ),
        listing=True,
        response="event",
    ),
    Api(
        "getDeploymentTrail",
        get_deployment_trail,
        "Every command, event and vCenter task of a deployment, with durations (snapdeploy).",
        (
            Param("virtualmachineid", "uuid", "The deployed VM."),
            Param("jobid", "uuid", "The deployment's job."),
        ),
        response="trail",
    ),
]
