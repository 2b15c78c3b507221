"""Planner queries: instances (with NICs), VM snapshots, hosts, networks, offerings.

Answers are scoped to the caller's account (``account_scope``): another account's instance or
snapshot looks exactly like none. Hosts are the operator's: only admins and services see them.
Networks and offerings are shared by every account.
"""

from __future__ import annotations

from contracts import planner as q
from contracts.vsphere import VmInfo
from services.planner.common import Planner
from shared.identity import account_scope
from shared.messaging import HandlerContext


async def list_virtual_machines(query: q.ListVirtualMachines, ctx: HandlerContext, planner: Planner):
    rows = await ctx.conn.fetch(
        """SELECT i.*, h.name AS host_name FROM instances i LEFT JOIN hosts h ON h.uuid = i.host_uuid
           WHERE ($1::uuid IS NULL OR i.uuid = $1) AND ($2::uuid IS NULL OR i.account_id = $2)
             AND ($3::text IS NULL OR i.state = $3) AND ($4::uuid IS NULL OR i.account_id = $4)
           ORDER BY i.created, i.name""",
        query.id,
        query.account_id,
        query.state,
        account_scope(ctx.envelope.actor),
    )
    nics = (
        await ctx.conn.fetch(
            """SELECT n.*, w.name AS network FROM nics n JOIN networks w ON w.uuid = n.network_uuid
               WHERE n.instance_uuid = ANY($1::uuid[]) ORDER BY n.device_order""",
            [r["uuid"] for r in rows],
        )
        if rows
        else []
    )
    by_vm: dict = {}
    for nic in nics:
        by_vm.setdefault(nic["instance_uuid"], []).append(
            q.Nic(
                id=nic["uuid"],
                network_id=nic["network_uuid"],
                network=nic["network"],
                device_order=nic["device_order"],
                mac=nic["mac"],
                state=nic["state"],
            )
        )
    return q.ListVirtualMachinesResult(
        vms=[
            q.VirtualMachine(
                id=r["uuid"],
                name=r["name"],
                display_name=r["display_name"],
                state=r["state"],
                account_id=r["account_id"],
                zone_id=r["zone_id"],
                host_id=r["host_uuid"],
                host_name=r["host_name"],
                vm_ref=r["vm_ref"],
                hypervisor=r["hypervisor"],
                service_offering_id=r["service_offering_id"],
                vm_template_id=r["vm_template_id"],
                disk_offering_id=r["disk_offering_id"],
                cpu_number=r["cpu_number"],
                cpu_speed_mhz=r["cpu_speed_mhz"],
                memory_mb=r["memory_mb"],
                source_vm_snapshot_id=r["source_vm_snapshot_id"],
                root_volume_id=r["root_volume_id"],
                pool=r["pool"],
                nics=by_vm.get(r["uuid"], []),
                reason=r["reason"],
                created=r["created"],
            )
            for r in rows
        ]
    )


async def list_vm_snapshots(query: q.ListVmSnapshots, ctx: HandlerContext, planner: Planner):
    rows = await ctx.conn.fetch(
        """SELECT s.*, i.zone_id FROM vm_snapshots s JOIN instances i ON i.uuid = s.instance_uuid
           WHERE s.state <> 'Removed'
             AND ($1::uuid IS NULL OR s.instance_uuid = $1) AND ($2::uuid IS NULL OR s.uuid = $2)
             AND ($3::uuid IS NULL OR s.account_id = $3) AND ($4::uuid IS NULL OR s.account_id = $4)
           ORDER BY s.created""",
        query.vm_id,
        query.id,
        query.account_id,
        account_scope(ctx.envelope.actor),
    )
    return q.ListVmSnapshotsResult(
        snapshots=[
            q.VmSnapshot(
                id=r["uuid"],
                vm_id=r["instance_uuid"],
                name=r["name"],
                parent_id=r["parent_uuid"],
                current=r["current"],
                state=r["state"],
                memory=r["memory"],
                created=r["created"],
                account_id=r["account_id"],
                zone_id=r["zone_id"],
                description=r["description"],
                cpu_number=(r["config"] or {}).get("num_cpus"),
                disks=r["disks"] or [],
            )
            for r in rows
        ]
    )


async def list_hosts(query: q.ListHosts, ctx: HandlerContext, planner: Planner):
    if account_scope(ctx.envelope.actor) is not None:
        return q.ListHostsResult(hosts=[])
    rows = await ctx.conn.fetch(
        "SELECT * FROM hosts WHERE ($1::text IS NULL OR zone_id = $1) ORDER BY name", query.zone_id
    )
    return q.ListHostsResult(
        hosts=[
            q.Host(
                id=r["uuid"],
                name=r["name"],
                zone_id=r["zone_id"],
                cluster=r["cluster"],
                state=r["state"],
                cpu_mhz_total=r["cpu_mhz_total"],
                cpu_mhz_used=r["cpu_mhz_used"],
                memory_bytes=r["memory_bytes"],
                memory_used_bytes=r["memory_used_bytes"],
                pools=r["pools"],
            )
            for r in rows
        ]
    )


async def list_networks(query: q.ListNetworks, ctx: HandlerContext, planner: Planner):
    rows = await ctx.conn.fetch(
        "SELECT * FROM networks WHERE ($1::text IS NULL OR zone_id = $1) ORDER BY name", query.zone_id
    )
    return q.ListNetworksResult(
        networks=[q.Network(id=r["uuid"], name=r["name"], zone_id=r["zone_id"]) for r in rows]
    )


async def list_service_offerings(query: q.ListServiceOfferings, ctx: HandlerContext, planner: Planner):
    rows = await ctx.conn.fetch("SELECT * FROM service_offerings ORDER BY name")
    return q.ListServiceOfferingsResult(
        offerings=[
            q.ServiceOffering(
                id=r["uuid"],
                name=r["name"],
                cpu_number=r["cpu_number"],
                cpu_speed_mhz=r["cpu_speed_mhz"],
                memory_mb=r["memory_mb"],
            )
            for r in rows
        ]
    )


async def list_unmanaged_instances(query: q.ListUnmanagedInstances, ctx: HandlerContext, planner: Planner):
    rows = await ctx.conn.fetch(
        """SELECT v.zone_id, v.info, h.cluster FROM vcenter_vms v
           LEFT JOIN hosts h ON h.zone_id = v.zone_id AND h.ref = v.info->>'host'
           WHERE ($1::text IS NULL OR v.zone_id = $1) AND NOT (v.info->>'template')::boolean
             AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.zone_id = v.zone_id AND i.vm_ref = v.ref
                             AND i.state NOT IN ('Destroyed', 'Expunged'))
           ORDER BY v.info->>'name'""",
        query.zone_id,
    )
    return q.ListUnmanagedInstancesResult(
        instances=[
            q.UnmanagedInstance(
                zone_id=r["zone_id"], cluster=r["cluster"], vm=VmInfo.model_validate(r["info"])
            )
            for r in rows
        ]
    )
