"""Virtual machines: list, deploy (from a VM snapshot or a template), start, stop, reboot, destroy, NICs."""

from __future__ import annotations

import uuid

from contracts import planner, storage
from services.api import render
from services.api.commands import lookup
from services.api.commands.results import vm_objects
from services.api.errors import denied, param_error
from services.api.params import Param
from services.api.table import Api, Call, page

VM = "VirtualMachine"


async def list_virtual_machines(call: Call) -> dict:
    owner = await call.owner_filter()
    query = planner.ListVirtualMachines(
        id=call.args.get("id"), account_id=owner, state=call.args.get("state")
    )
    vms = (await call.ctx.ask(query, call.caller.actor)).vms
    if "zoneid" in call.args:
        zone = await lookup.zone_named(call, call.args["zoneid"])
        vms = [vm for vm in vms if vm.zone_id == zone]
    if "name" in call.args:
        vms = [vm for vm in vms if vm.name == call.args["name"]]
    vms = [vm for vm in vms if vm.state != "Expunged"]
    return page(call, "virtualmachine", await vm_objects(call.ctx, call.caller.actor, vms))


async def deploy_virtual_machine(call: Call) -> dict:
    args = call.args
    lookup.exclusive(call, "vmsnapshotid", "templateid")
    if "vmsnapshotid" not in args and "templateid" not in args:
        raise param_error(
            "Unable to execute API command deployvirtualmachine due to missing parameter: "
            "one of vmsnapshotid and templateid is required"
        )
    actor = await call.actor()
    await lookup.service_offering(call, args["serviceofferingid"])
    zone = await lookup.zone_named(call, args["zoneid"]) if "zoneid" in args else None
    if "vmsnapshotid" in args:
        snapshot = await lookup.vm_snapshot(call, args["vmsnapshotid"])
        if snapshot.state != "Ready":
            raise param_error(f"VM snapshot {snapshot.name} is {snapshot.state}, not Ready")
        if zone is not None and snapshot.zone_id is not None and zone != snapshot.zone_id:
            raise param_error(f"VM snapshot {snapshot.name} is in zone {snapshot.zone_id}, not {zone}")
        zone = snapshot.zone_id
    elif zone is None:
        raise param_error(
            "Unable to execute API command deployvirtualmachine due to missing parameter zoneid"
        )
    else:
        templates = (await call.ctx.ask(storage.ListTemplates(zone_id=zone), lookup.AUTHORITY)).templates
        template = next((t for t in templates if t.id == args["templateid"]), None)
        if template is None or not template.deployable:
            raise param_error(f"template {args['templateid']} (templateid) is not deployable in zone {zone}")
    networks = {
        n.id for n in (await call.ctx.ask(planner.ListNetworks(zone_id=zone), lookup.AUTHORITY)).networks
    }
    for network_id in args.get("networkids", []):
        if network_id not in networks:
            raise param_error(f"network {network_id} (networkids) does not exist in zone {zone}")
    if "hostid" in args:
        if not call.caller.is_admin:
            raise denied("only an admin may choose the host (hostid)")
        hosts = {h.id for h in (await call.ctx.ask(planner.ListHosts(zone_id=zone), lookup.AUTHORITY)).hosts}
        if args["hostid"] not in hosts:
            raise param_error(f"host {args['hostid']} (hostid) does not exist in zone {zone}")
    vm_id = uuid.uuid4()
    command = planner.DeployVirtualMachine(
        vm_id=vm_id,
        vm_snapshot_id=args.get("vmsnapshotid"),
        template_id=args.get("templateid"),
        zone_id=zone if "templateid" in args else None,
        service_offering_id=args["serviceofferingid"],
        network_ids=args.get("networkids", []),
        host_id=args.get("hostid"),
        name=args.get("name"),
        display_name=args.get("displayname"),
    )
    job = await call.submit(command, VM, vm_id, actor=actor)
    return {"id": str(vm_id), "jobid": str(job)}


async def _lifecycle(call: Call, command: planner.PlannerCommand, vm_id: uuid.UUID) -> dict:
    job = await call.submit(command, VM, vm_id)
    return {"jobid": str(job)}


async def start_virtual_machine(call: Call) -> dict:
    vm = await lookup.vm(call, call.args["id"])
    return await _lifecycle(call, planner.StartVirtualMachine(vm_id=vm.id), vm.id)


async def stop_virtual_machine(call: Call) -> dict:
    vm = await lookup.vm(call, call.args["id"])
    return await _lifecycle(
        call, planner.StopVirtualMachine(vm_id=vm.id, forced=call.args.get("forced", False)), vm.id
    )


async def reboot_virtual_machine(call: Call) -> dict:
    reboot = lookup.planner_command("RebootVirtualMachine")
    vm = await lookup.vm(call, call.args["id"])
    return await _lifecycle(call, reboot(vm_id=vm.id), vm.id)


async def destroy_virtual_machine(call: Call) -> dict:
    vm = await lookup.vm(call, call.args["id"])
    command = planner.DestroyVirtualMachine(vm_id=vm.id, expunge=call.args.get("expunge", False))
    return await _lifecycle(call, command, vm.id)


async def list_nics(call: Call) -> dict:
    vm = await lookup.vm(call, call.args["virtualmachineid"], "virtualmachineid")
    nics = [render.nic(n, vm.zone_id) | {"virtualmachineid": str(vm.id)} for n in vm.nics]
    if "nicid" in call.args:
        nics = [n for n in nics if n["id"] == str(call.args["nicid"])]
    return page(call, "nic", nics, name_of="networkname")


ID = Param("id", "uuid", "The virtual machine.", required=True)

APIS = [
    Api(
        "listVirtualMachines",
        list_virtual_machines,
        "Lists virtual machines.",
        (
            Param("id", "uuid", "The virtual machine."),
            Param("name", "string", "Exact name."),
            Param("state", "string", "Running, Stopped, ..."),
            Param("zoneid", "uuid", "The zone."),
        ),
        listing=True,
        response="virtualmachine",
    ),
    Api(
        "deployVirtualMachine",
        deploy_virtual_machine,
        "Creates and starts a VM from a VM snapshot (vmsnapshotid) or a template (templateid).",
        (
            Param("serviceofferingid", "uuid", "The compute offering.", required=True),
            Param("vmsnapshotid", "uuid", "Deploy from this VM snapshot (not with templateid)."),
            Param("templateid", "uuid", "Deploy from this template (not with vmsnapshotid)."),
            Param("zoneid", "uuid", "The zone; from the VM snapshot when vmsnapshotid is given."),
            Param("networkids", "list", "Guest networks, one NIC each, in order.", length=4096, item="uuid"),
            Param("hostid", "uuid", "Admins: the host to deploy on."),
            Param("name", "string", "Host name of the VM.", length=63),
            Param("displayname", "string", "Display name."),
        ),
        isasync=True,
        acts_for=True,
        response="virtualmachine",
    ),
    Api(
        "startVirtualMachine",
        start_virtual_machine,
        "Starts a VM.",
        (ID,),
        isasync=True,
        response="virtualmachine",
    ),
    Api(
        "stopVirtualMachine",
        stop_virtual_machine,
        "Stops a VM.",
        (ID, Param("forced", "boolean", "Power off without a guest shutdown.")),
        isasync=True,
        response="virtualmachine",
    ),
    Api(
        "rebootVirtualMachine",
        reboot_virtual_machine,
        "Reboots a VM.",
        (ID,),
        isasync=True,
        response="virtualmachine",
    ),
    Api(
        "destroyVirtualMachine",
        destroy_virtual_machine,
        "Destroys a VM.",
        (ID, Param("expunge", "boolean", "Also remove it from vCenter and free its root volume at once.")),
        isasync=True,
        response="virtualmachine",
    ),
    Api(
        "listNics",
        list_nics,
        "Lists the NICs of a VM.",
        (
            Param("virtualmachineid", "uuid", "The VM.", required=True),
            Param("nicid", "uuid", "One NIC."),
        ),
        listing=True,
        response="nic",
    ),
]
