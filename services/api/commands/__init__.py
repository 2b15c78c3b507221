"""The command table: every module's ``APIS`` rows, by command name. listApis reads the same table."""

from __future__ import annotations

from services.api.commands import events, infra, jobs, snapshots, users, vms, volumes
from services.api.params import Param
from services.api.table import Api, Call, page


async def list_apis(call: Call) -> dict:
    rows = [api for api in TABLE.values() if call.caller.is_admin or not api.admin]
    if "name" in call.args:
        rows = [api for api in rows if api.name == call.args["name"]]
    return page(call, "api", [api.describe() for api in sorted(rows, key=lambda a: a.name)])


LIST_APIS = Api(
    "listApis",
    list_apis,
    "Lists the commands this API serves, with their parameters.",
    (Param("name", "string", "One command."),),
    listing=True,
    response="api",
)

TABLE: dict[str, Api] = {
    api.name: api
    for api in [
        *vms.APIS,
        *snapshots.APIS,
        *volumes.APIS,
        *infra.APIS,
        *events.APIS,
        *jobs.APIS,
        *users.APIS,
        LIST_APIS,
    ]
}
