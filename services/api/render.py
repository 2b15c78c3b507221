"""Contract models as the CloudStack objects clients read (CLOUDSTACK_API.md section 6).

Dates in CloudStack's ``yyyy-MM-dd'T'HH:mm:ssZ``; null fields omitted (as Gson does).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts import planner, storage
from contracts.vsphere import root_disk
from services.api.accounts import ROOT_DOMAIN, ROOT_DOMAIN_NAME

_IDS = uuid.UUID("0b6f3c2a-7e51-4d9a-8c3f-5a2e1d4b9c60")
HYPERVISOR = "VMware"
GIB = 2**30


def zone_uuid(zone: str) -> uuid.UUID:
    """A zone's id: derived from its name (the agent's ZONE_ID), so every replica names it alike."""
    return uuid.uuid5(_IDS, f"zone/{zone}")


def cluster_uuid(zone: str, cluster: str) -> uuid.UUID:
    return uuid.uuid5(_IDS, f"cluster/{zone}/{cluster}")


def date(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def date_ms(moment: datetime | None) -> str | None:
    """CloudStack's date format with milliseconds, for our own extras that time things (trails)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


def compact(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


@dataclass
class Names:
    """What objects refer to by id and clients want by name."""

    accounts: dict[uuid.UUID, str] = field(default_factory=dict)
    offerings: dict[uuid.UUID, planner.ServiceOffering] = field(default_factory=dict)
    pools: dict[uuid.UUID, storage.StoragePool] = field(default_factory=dict)

    def owner(self, account_id: uuid.UUID | None) -> dict[str, Any]:
        return {
            "account": self.accounts.get(account_id) if account_id else None,
            "accountid": str(account_id) if account_id else None,
            "domainid": str(ROOT_DOMAIN),
            "domain": ROOT_DOMAIN_NAME,
        }


def zone(name: str) -> dict[str, Any]:
    return {
        "id": str(zone_uuid(name)),
        "name": name,
        "description": f"vCenter datacenter of zone {name}",
        "networktype": "Advanced",
        "allocationstate": "Enabled",
        "securitygroupsenabled": False,
        "localstorageenabled": False,
        "dns1": "",
        "tags": [],
    }


def nic(n: planner.Nic, zone_id: str) -> dict[str, Any]:
    return compact(
        {
            "id": str(n.id),
            "networkid": str(n.network_id),
            "networkname": n.network,
            "macaddress": n.mac,
            "isdefault": n.device_order == 0,
            "deviceid": str(n.device_order),
            "traffictype": "Guest",
            "type": "Shared",
            "state": n.state,
        }
    )


def virtual_machine(vm: planner.VirtualMachine, names: Names) -> dict[str, Any]:
    offering = names.offerings.get(vm.service_offering_id) if vm.service_offering_id else None
    return compact(
        {
            "id": str(vm.id),
            "name": vm.name,
            "displayname": vm.display_name or vm.name,
            "state": vm.state,
            "zoneid": str(zone_uuid(vm.zone_id)),
            "zonename": vm.zone_id,
            **names.owner(vm.account_id),
            "created": date(vm.created),
            "templateid": str(vm.vm_template_id) if vm.vm_template_id else None,
            "serviceofferingid": str(vm.service_offering_id) if vm.service_offering_id else None,
            "serviceofferingname": offering.name if offering else None,
            "cpunumber": vm.cpu_number,
            "cpuspeed": vm.cpu_speed_mhz,
            "memory": vm.memory_mb,
            "hypervisor": vm.hypervisor,
            "hostid": str(vm.host_id) if vm.host_id else None,
            "hostname": vm.host_name,
            "passwordenabled": False,
            "haenable": False,
            "rootdeviceid": 0,
            "rootdevicetype": "ROOT",
            "securitygroup": [],
            "affinitygroup": [],
            "tags": [],
            "details": {},
            "nic": [nic(n, vm.zone_id) for n in vm.nics],
            "vmsnapshotid": str(vm.source_vm_snapshot_id) if vm.source_vm_snapshot_id else None,
            "reason": vm.reason,
        }
    )


def snapshot_disks(snap: planner.VmSnapshot, volumes: list[storage.Volume]) -> list[dict[str, Any]]:
    """The disks of a VM snapshot as createVolumeFromVmSnapshot takes them: volume id, name, type, size."""
    if not snap.disks:
        return []
    by_key = {v.device_key: v for v in volumes if v.device_key is not None}
    root = root_disk(snap.disks)
    out = []
    for disk in snap.disks:
        volume = by_key.get(disk.key)
        if volume is None:
            continue
        out.append(
            {
                "id": str(volume.id),
                "name": volume.name,
                "type": "ROOT" if disk.key == root.key else "DATADISK",
                "size": disk.size_bytes,
            }
        )
    return out


def vm_snapshot(
    snap: planner.VmSnapshot,
    names: Names,
    *,
    vms: dict[uuid.UUID, planner.VirtualMachine],
    parents: dict[uuid.UUID, str],
    volumes: list[storage.Volume],
    current: bool,
) -> dict[str, Any]:
    vm = vms.get(snap.vm_id)
    zone_name = snap.zone_id or (vm.zone_id if vm else None)
    storage_id = storage_name = None
    if snap.disks and zone_name:
        storage_name = root_disk(snap.disks).datastore
        storage_id = str(storage.pool_id(zone_name, storage_name))
    return compact(
        {
            "id": str(snap.id),
            "name": snap.name,
            "displayname": snap.name,
            "description": snap.description,
            "state": snap.state,
            "type": "DiskAndMemory" if snap.memory else "Disk",
            "current": current,
            "parent": str(snap.parent_id) if snap.parent_id else None,
            "parentName": parents.get(snap.parent_id) if snap.parent_id else None,
            "virtualmachineid": str(snap.vm_id),
            "virtualmachinename": vm.name if vm else None,
            "zoneid": str(zone_uuid(zone_name)) if zone_name else None,
            "zonename": zone_name,
            "hypervisor": HYPERVISOR,
            "created": date(snap.created),
            **names.owner(snap.account_id),
            "tags": [],
            "cpunumber": snap.cpu_number,
            "storageid": storage_id,
            "storage": storage_name,
            "disks": snapshot_disks(snap, volumes),
        }
    )


def volume(v: storage.Volume, names: Names, vms: dict[uuid.UUID, planner.VirtualMachine]) -> dict[str, Any]:
    pool = names.pools.get(v.pool_id)
    vm = vms.get(v.vm_id) if v.vm_id else None
    return compact(
        {
            "id": str(v.id),
            "name": v.name,
            "type": v.type,
            "state": v.state,
            "size": v.size_bytes,
            "virtualmachineid": str(v.vm_id) if v.vm_id else None,
            "vmname": vm.name if vm else None,
            "vmstate": vm.state if vm else None,
            "deviceid": v.device_id,
            "zoneid": str(zone_uuid(pool.zone_id)) if pool else None,
            "zonename": pool.zone_id if pool else None,
            "storageid": str(v.pool_id),
            "storage": pool.name if pool else None,
            "storagetype": "shared",
            "diskofferingid": str(v.disk_offering_id) if v.disk_offering_id else None,
            "templateid": str(v.template_id) if v.template_id else None,
            "vmsnapshotid": str(v.source_vm_snapshot_id) if v.source_vm_snapshot_id else None,
            **names.owner(v.account_id),
            "hypervisor": HYPERVISOR,
            "path": v.disk_path,
            "destroyed": v.state in ("Destroy", "Expunged"),
            "reason": v.reason,
        }
    )


def storage_pool(p: storage.StoragePool) -> dict[str, Any]:
    factor = p.allocation_limit_bytes / p.capacity_bytes if p.capacity_bytes else 1.0
    return {
        "id": str(p.id),
        "name": p.name,
        "zoneid": str(zone_uuid(p.zone_id)),
        "zonename": p.zone_id,
        "type": "VMFS",
        "path": p.name,
        "ipaddress": "",
        "state": "Up",
        "scope": "ZONE",
        "hypervisor": HYPERVISOR,
        "disksizetotal": p.capacity_bytes,
        "disksizeallocated": p.allocated_bytes,
        "disksizeused": p.capacity_bytes - p.free_bytes,
        "overprovisionfactor": round(factor, 4),
        "tags": "",
    }


def host(h: planner.Host) -> dict[str, Any]:
    return compact(
        {
            "id": str(h.id),
            "name": h.name,
            "type": "Routing",
            "state": "Up" if h.state in ("connected", "Up", "Enabled") else h.state,
            "resourcestate": "Enabled",
            "hypervisor": HYPERVISOR,
            "zoneid": str(zone_uuid(h.zone_id)),
            "zonename": h.zone_id,
            "clusterid": str(cluster_uuid(h.zone_id, h.cluster)) if h.cluster else None,
            "clustername": h.cluster,
            "cpuspeed": h.cpu_mhz_total,
            "cpuallocated": f"{(100 * h.cpu_mhz_used / h.cpu_mhz_total) if h.cpu_mhz_total else 0:.2f}%",
            "memorytotal": h.memory_bytes,
            "memoryallocated": h.memory_used_bytes,
            "hosttags": "",
            "storagepools": h.pools,
        }
    )


def network(n: planner.Network) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "name": n.name,
        "displaytext": n.name,
        "zoneid": str(zone_uuid(n.zone_id)),
        "zonename": n.zone_id,
        "type": "Shared",
        "traffictype": "Guest",
        "state": "Implemented",
        "isdefault": False,
        "canusefordeploy": True,
        "acltype": "Domain",
        "domainid": str(ROOT_DOMAIN),
        "domain": ROOT_DOMAIN_NAME,
    }


def service_offering(o: planner.ServiceOffering) -> dict[str, Any]:
    return {
        "id": str(o.id),
        "name": o.name,
        "displaytext": o.name,
        "cpunumber": o.cpu_number,
        "cpuspeed": o.cpu_speed_mhz,
        "memory": o.memory_mb,
        "storagetype": "shared",
        "offerha": False,
        "iscustomized": False,
        "hosttags": "",
    }


def disk_offering(o: storage.DiskOffering) -> dict[str, Any]:
    return compact(
        {
            "id": str(o.id),
            "name": o.name,
            "displaytext": o.name,
            "disksize": o.size_bytes // GIB if o.size_bytes else 0,
            "iscustomized": o.size_bytes is None,
            "storagetype": "shared",
        }
    )


def template(t: storage.Template) -> dict[str, Any]:
    return {
        "id": str(t.id),
        "name": t.name,
        "displaytext": t.name,
        "ostypeid": "",
        "ostypename": "Other (64-bit)",
        "hypervisor": HYPERVISOR,
        "format": "OVA",
        "size": t.size_bytes,
        "isready": t.deployable,
        "ispublic": True,
        "isfeatured": False,
        "passwordenabled": False,
        "templatetype": "USER",
        "zoneid": str(zone_uuid(t.zone_id)),
        "zonename": t.zone_id,
        "status": "Download Complete" if t.deployable else "Not deployable (no base snapshot)",
        "account": "system",
        "domainid": str(ROOT_DOMAIN),
    }


def seeded_template(
    seed: storage.Seed, names: Names, *, snapshot_name: str | None, vm_ids: list[uuid.UUID]
) -> dict[str, Any]:
    pool = names.pools.get(seed.pool_id)
    return compact(
        {
            "id": str(seed.id),
            "vmsnapshotid": str(seed.vm_snapshot_id),
            "vmsnapshotname": snapshot_name,
            "storageid": str(seed.pool_id),
            "storage": pool.name if pool else None,
            "state": seed.state,
            "size": seed.template_size,
            "installpath": seed.install_path,
            "markedforgc": seed.marked_for_gc,
            "created": date(seed.created),
            "virtualmachineids": [str(v) for v in vm_ids],
        }
    )


def event(item: dict[str, Any], names: Names) -> dict[str, Any]:
    account = uuid.UUID(item["account_id"]) if item.get("account_id") else None
    occurred = datetime.fromisoformat(item["occurred_at"]) if item.get("occurred_at") else None
    return compact(
        {
            "id": str(item["message_id"]),
            "type": item.get("event_type"),
            "level": item.get("level") or "INFO",
            "state": item.get("state"),
            "description": item.get("description"),
            "username": names.accounts.get(account) if account else "system",
            **names.owner(account),
            "resourceid": item.get("resource_id"),
            "resourcetype": item.get("resource_type"),
            "resourcename": item.get("resource_name"),
            "created": date(occurred),
            "parentid": None,
            "archived": False,
        }
    )
