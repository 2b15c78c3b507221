"""Zones, hosts, clusters, pools, networks, offerings, templates; adopting vCenter VMs (admin)."""

from __future__ import annotations

import uuid

from contracts import planner, storage
from services.api import render
from services.api.commands import lookup
from services.api.errors import param_error
from services.api.params import Param
from services.api.table import Api, Call, page


async def list_zones(call: Call) -> dict:
    zones = await lookup.zones(call)
    if "id" in call.args:
        zones = [z for z in zones if str(render.zone_uuid(z)) == str(call.args["id"])]
    if "name" in call.args:
        zones = [z for z in zones if z == call.args["name"]]
    return page(call, "zone", [render.zone(z) for z in zones])


async def _zone_filter(call: Call) -> str | None:
    return await lookup.zone_named(call, call.args["zoneid"]) if "zoneid" in call.args else None


async def list_hosts(call: Call) -> dict:
    hosts = (await call.ctx.ask(planner.ListHosts(zone_id=await _zone_filter(call)), call.caller.actor)).hosts
    if "storageid" in call.args:
        pool = await lookup.storage_pool(call, call.args["storageid"])
        hosts = [h for h in hosts if h.zone_id == pool.zone_id and pool.name in h.pools]
    if "id" in call.args:
        hosts = [h for h in hosts if h.id == call.args["id"]]
    if "name" in call.args:
        hosts = [h for h in hosts if h.name == call.args["name"]]
    return page(call, "host", [render.host(h) for h in hosts])


async def clusters(call: Call) -> list[dict]:
    hosts = (await call.ctx.ask(planner.ListHosts(zone_id=await _zone_filter(call)), call.caller.actor)).hosts
    seen = sorted({(h.zone_id, h.cluster) for h in hosts if h.cluster})
    return [
        {
            "id": str(render.cluster_uuid(zone, name)),
            "name": name,
            "zoneid": str(render.zone_uuid(zone)),
            "zonename": zone,
            "hypervisortype": render.HYPERVISOR,
            "clustertype": "ExternalManaged",
            "allocationstate": "Enabled",
            "managedstate": "Managed",
        }
        for zone, name in seen
    ]


async def list_clusters(call: Call) -> dict:
    found = await clusters(call)
    if "id" in call.args:
        found = [c for c in found if c["id"] == str(call.args["id"])]
    return page(call, "cluster", found)


async def list_storage_pools(call: Call) -> dict:
    query = storage.ListStoragePools(zone_id=await _zone_filter(call), id=call.args.get("id"))
    pools = (await call.ctx.ask(query, call.caller.actor)).pools
    if "name" in call.args:
        pools = [p for p in pools if p.name == call.args["name"]]
    return page(call, "storagepool", [render.storage_pool(p) for p in pools])


async def list_networks(call: Call) -> dict:
    networks = (
        await call.ctx.ask(planner.ListNetworks(zone_id=await _zone_filter(call)), call.caller.actor)
    ).networks
    if "id" in call.args:
        networks = [n for n in networks if n.id == call.args["id"]]
    return page(call, "network", [render.network(n) for n in networks])


async def list_service_offerings(call: Call) -> dict:
    offerings = (await call.ctx.ask(planner.ListServiceOfferings(), call.caller.actor)).offerings
    if "id" in call.args:
        offerings = [o for o in offerings if o.id == call.args["id"]]
    if "name" in call.args:
        offerings = [o for o in offerings if o.name == call.args["name"]]
    return page(call, "serviceoffering", [render.service_offering(o) for o in offerings])


async def create_service_offering(call: Call) -> dict:
    offering_id = uuid.uuid4()
    command = planner.CreateServiceOffering(
        offering_id=offering_id,
        name=call.args["name"],
        cpu_number=call.args["cpunumber"],
        cpu_speed_mhz=call.args["cpuspeed"],
        memory_mb=call.args["memory"],
    )
    for name in ("cpunumber", "cpuspeed", "memory"):
        if call.args[name] < 1:
            raise param_error(f"{name} must be 1 or more")
    result = await call.run(command, "ServiceOffering", offering_id)
    return result


async def list_templates(call: Call) -> dict:
    templates = (
        await call.ctx.ask(storage.ListTemplates(zone_id=await _zone_filter(call)), call.caller.actor)
    ).templates
    if "id" in call.args:
        templates = [t for t in templates if t.id == call.args["id"]]
    return page(call, "template", [render.template(t) for t in templates])


async def list_hypervisors(call: Call) -> dict:
    return {"count": 1, "hypervisor": [{"name": render.HYPERVISOR}]}


async def nothing(call: Call) -> dict:
    """Network rules snapdeploy does not have; libcloud's list_nodes needs the calls to succeed."""
    return {}


async def _unmanaged(call: Call) -> list[planner.UnmanagedInstance]:
    cluster = next((c for c in await clusters(call) if c["id"] == str(call.args["clusterid"])), None)
    if cluster is None:
        raise param_error(f"cluster {call.args['clusterid']} (clusterid) does not exist")
    found = (
        await call.ctx.ask(planner.ListUnmanagedInstances(zone_id=cluster["zonename"]), call.caller.actor)
    ).instances
    return [i for i in found if i.cluster == cluster["name"] or i.cluster is None]


async def list_unmanaged_instances(call: Call) -> dict:
    found = await _unmanaged(call)
    if "name" in call.args:
        found = [i for i in found if i.vm.name == call.args["name"]]
    items = [
        {
            "name": i.vm.name,
            "clusterid": str(call.args["clusterid"]),
            "powerstate": "PowerOn" if i.vm.power_state == "poweredOn" else "PowerOff",
            "cpunumber": i.vm.num_cpus,
            "memory": i.vm.memory_mb,
            "osid": i.vm.guest_id,
            "disk": [
                {"id": str(d.key), "label": d.file, "capacity": d.size_bytes, "datastorename": d.datastore}
                for d in i.vm.disks
            ],
            "nic": [{"id": str(n.key), "networkname": n.network, "macaddress": n.mac} for n in i.vm.nics],
            "snapshotcount": len(i.vm.snapshots),
        }
        for i in found
    ]
    return page(call, "unmanagedinstance", items)


async def import_unmanaged_instance(call: Call) -> dict:
    found = [i for i in await _unmanaged(call) if i.vm.name == call.args["name"]]
    if not found:
        raise param_error(f"no unmanaged VM named {call.args['name']} in cluster {call.args['clusterid']}")
    if "serviceofferingid" in call.args:
        await lookup.service_offering(call, call.args["serviceofferingid"])
    target = await call.target_account()
    account_id = target[0] if target else call.caller.account_id
    command = planner.ImportVirtualMachine(
        zone_id=found[0].zone_id,
        vm_ref=found[0].vm.ref,
        account_id=account_id,
        service_offering_id=call.args.get("serviceofferingid"),
    )
    job = await call.submit(command, "VirtualMachine", None)
    return {"jobid": str(job)}


ZONE = Param("zoneid", "uuid", "The zone.")
ADMIN_ID = Param("id", "uuid", "One item.")

APIS = [
    Api(
        "listZones",
        list_zones,
        "Lists zones (one per vCenter datacenter).",
        (ADMIN_ID, Param("name", "string", "Exact name."), Param("available", "boolean", "Accepted.")),
        listing=True,
        response="zone",
    ),
    Api(
        "listHosts",
        list_hosts,
        "Lists hosts with their capacity.",
        (
            ADMIN_ID,
            ZONE,
            Param("name", "string", "Exact name."),
            Param("storageid", "uuid", "Hosts that reach this pool."),
            Param("type", "string", "Routing."),
        ),
        listing=True,
        admin=True,
        response="host",
    ),
    Api(
        "listClusters",
        list_clusters,
        "Lists clusters.",
        (ADMIN_ID, ZONE),
        listing=True,
        admin=True,
        response="cluster",
    ),
    Api(
        "listStoragePools",
        list_storage_pools,
        "Lists primary storage pools with capacity figures.",
        (ADMIN_ID, ZONE, Param("name", "string", "Exact name.")),
        listing=True,
        admin=True,
        response="storagepool",
    ),
    Api(
        "listNetworks",
        list_networks,
        "Lists guest networks.",
        (ADMIN_ID, ZONE),
        listing=True,
        response="network",
    ),
    Api(
        "listServiceOfferings",
        list_service_offerings,
        "Lists compute offerings.",
        (ADMIN_ID, Param("name", "string", "Exact name.")),
        listing=True,
        response="serviceoffering",
    ),
    Api(
        "createServiceOffering",
        create_service_offering,
        "Creates a compute offering.",
        (
            Param("name", "string", "Name.", required=True),
            Param("displaytext", "string", "Display text."),
            Param("cpunumber", "integer", "vCPUs.", required=True),
            Param("cpuspeed", "integer", "MHz per vCPU.", required=True),
            Param("memory", "integer", "Memory in MiB.", required=True),
        ),
        admin=True,
        response="serviceoffering",
    ),
    Api(
        "listTemplates",
        list_templates,
        "Lists templates found in vCenter.",
        (
            ADMIN_ID,
            ZONE,
            Param("templatefilter", "string", "Accepted (executable, featured, ...)."),
            Param("isrecursive", "boolean", "Accepted."),
        ),
        listing=True,
        response="template",
    ),
    Api("listHypervisors", list_hypervisors, "Lists hypervisors (VMware).", (ZONE,), response="hypervisor"),
    *(
        Api(name, nothing, "Not used by snapdeploy: always empty.", (), listing=True)
        for name in ("listPublicIpAddresses", "listPortForwardingRules", "listIpForwardingRules", "listTags")
    ),
    Api(
        "listUnmanagedInstances",
        list_unmanaged_instances,
        "Lists vCenter VMs of a cluster that no account owns.",
        (Param("clusterid", "uuid", "The cluster.", required=True), Param("name", "string", "Exact name.")),
        listing=True,
        admin=True,
        response="unmanagedinstance",
    ),
    Api(
        "importUnmanagedInstance",
        import_unmanaged_instance,
        "Adopts a vCenter VM and its snapshot tree into an account.",
        (
            Param("clusterid", "uuid", "The cluster.", required=True),
            Param("name", "string", "The VM's name in vCenter.", required=True),
            Param("serviceofferingid", "uuid", "Its compute offering."),
            Param("displayname", "string", "Accepted."),
        ),
        isasync=True,
        admin=True,
        acts_for=True,
        response="virtualmachine",
    ),
]
