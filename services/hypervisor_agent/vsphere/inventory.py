"""Reading the zone: the inventory sync, and finding the objects commands name."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pyVmomi import vim

from contracts.events import InventorySynced
from contracts.vsphere import DatastoreInfo, HostInfo, NetworkInfo, SnapshotInfo, VmInfo
from services.hypervisor_agent.vsphere import devices, props
from services.hypervisor_agent.vsphere.faults import DuplicateName, FileMissing, InvalidRequest
from services.hypervisor_agent.vsphere.session import VsphereSession

# extraConfig key holding the snapdeploy id of every VM and template the agent makes.
SNAPDEPLOY_KEY = "snapdeploy.id"
# Snapshots have no extraConfig: their snapdeploy id is a line of the description.
_SNAPSHOT_MARKER = re.compile(r"^snapdeploy:(\S+)$", re.MULTILINE)

HOST_PROPS = [
    "name",
    "parent",
    "runtime.connectionState",
    "runtime.inMaintenanceMode",
    "hardware.cpuInfo.numCpuCores",
    "summary.hardware.cpuMhz",
    "hardware.memorySize",
    "datastore",
    "network",
]
DATASTORE_PROPS = ["name", "summary.capacity", "summary.freeSpace", "summary.type", "host"]
NETWORK_PROPS = ["name", "host"]
VM_PROPS = [
    "name",
    "config.instanceUuid",
    "config.template",
    "config.guestId",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.extraConfig",
    "config.bootOptions",
    "runtime.host",
    "runtime.powerState",
    "datastore",
    "snapshot",
]


def read_inventory(session: VsphereSession, zone_id: str) -> InventorySynced:
    """Hosts, datastores, port groups, VMs and templates of the datacenter, in one paged retrieval."""
    session.forget()  # what the agent remembered of the inventory is read afresh from now on
    found = session.call(
        lambda si: props.contents(
            session.content,
            session.datacenter,
            {
                vim.ComputeResource: ["name"],
                vim.HostSystem: HOST_PROPS,
                vim.Datastore: DATASTORE_PROPS,
                vim.Network: NETWORK_PROPS,
                vim.VirtualMachine: VM_PROPS,
            },
        )
    )
    by_type: dict[type, list[tuple[Any, dict]]] = {}
    for obj, values in found:
        kind = next(
            t
            for t in (vim.ComputeResource, vim.HostSystem, vim.Datastore, vim.Network, vim.VirtualMachine)
            if isinstance(obj, t)
        )
        by_type.setdefault(kind, []).append((obj, values))
    clusters = {
        obj._moId: values["name"]
        for obj, values in by_type.get(vim.ComputeResource, [])
        if isinstance(obj, vim.ClusterComputeResource)
    }
    network_names = {obj._moId: values.get("name", "") for obj, values in by_type.get(vim.Network, [])}
    return InventorySynced(
        zone_id=zone_id,
        datacenter=session.datacenter_name,
        hosts=[_host(obj, v, clusters, network_names) for obj, v in by_type.get(vim.HostSystem, [])],
        datastores=[_datastore(obj, v) for obj, v in by_type.get(vim.Datastore, [])],
        networks=[
            NetworkInfo(ref=obj._moId, name=v.get("name", ""), hosts=_refs(v.get("host")))
            for obj, v in by_type.get(vim.Network, [])
        ],
        vms=[
            _vm(obj, v, network_names)
            for obj, v in by_type.get(vim.VirtualMachine, [])
            if "config.hardware.device" in v
        ],
    )


# -- references from ids and names -------------------------------------------------------------------


def vm_by_ref(session: VsphereSession, ref: str) -> vim.VirtualMachine:
    return vim.VirtualMachine(ref, session.stub)


def host_by_ref(session: VsphereSession, ref: str) -> vim.HostSystem:
    return vim.HostSystem(ref, session.stub)


def snapshot_ref(session: VsphereSession, ref: str) -> vim.vm.Snapshot:
    return vim.vm.Snapshot(ref, session.stub)


def read_vm(session: VsphereSession, vm: vim.VirtualMachine, paths: list[str]) -> dict | None:
    """Properties of a VM or template; None when it does not exist."""
    return session.call(lambda si: props.fetch(session.content, vm, paths))


def require_vm(session: VsphereSession, vm: vim.VirtualMachine, paths: list[str]) -> dict:
    values = read_vm(session, vm, paths)
    if values is None:
        raise FileMissing(f"VM {vm._moId} not found", fault="ManagedObjectNotFound")
    return values


def vm_folder(session: VsphereSession) -> vim.Folder:
    return session.remember(
        "vm-folder",
        lambda: session.call(
            lambda si: props.fetch(session.content, session.datacenter, ["vmFolder"])["vmFolder"]
        ),
    )


def find_vm_by_name(session: VsphereSession, name: str) -> vim.VirtualMachine | None:
    """The VM or template of that name in the datacenter's VM folder, where the agent puts its own."""
    folder = vm_folder(session)
    return session.lookup(lambda si: session.content.searchIndex.FindChild(folder, name))


def find_vm_by_snapdeploy_id(session: VsphereSession, snapdeploy_id: str) -> vim.VirtualMachine | None:
    """The VM or template whose extraConfig ``snapdeploy.id`` is ``snapdeploy_id``.

    Reads only extraConfig, but of every VM: the ops find their objects by name instead.
    """
    found = session.call(
        lambda si: props.contents(
            session.content, session.datacenter, {vim.VirtualMachine: ["config.extraConfig"]}
        )
    )
    return next(
        (
            obj
            for obj, values in found
            if devices.extra_config(values.get("config.extraConfig")).get(SNAPDEPLOY_KEY) == snapdeploy_id
        ),
        None,
    )


def find_own_vm(session: VsphereSession, name: str, snapdeploy_id: str) -> vim.VirtualMachine | None:
    """The VM of that name when it carries ``snapdeploy_id``; DuplicateName when it carries another.

    Deterministic names make this the idempotency check of every create.
    """
    vm = find_vm_by_name(session, name)
    if vm is None:
        return None
    values = read_vm(session, vm, ["config.extraConfig"])
    if values is None:
        return None
    owner = devices.extra_config(values.get("config.extraConfig")).get(SNAPDEPLOY_KEY)
    if owner != snapdeploy_id:
        raise DuplicateName(
            f"a VM named {name!r} exists and belongs to {owner or 'no snapdeploy object'}",
            fault="DuplicateName",
        )
    return vm


def host_root_pool(session: VsphereSession, host: vim.HostSystem) -> vim.ResourcePool:
    """The root resource pool of the host's cluster (or standalone compute resource)."""
    return session.remember(("root-pool", host._moId), lambda: _root_pool(session, host))


def _root_pool(session: VsphereSession, host: vim.HostSystem) -> vim.ResourcePool:
    host_values = session.call(lambda si: props.fetch(session.content, host, ["parent"]))
    if host_values is None:
        raise FileMissing(f"host {host._moId} not found", fault="ManagedObjectNotFound")
    values = session.call(lambda si: props.fetch(session.content, host_values["parent"], ["resourcePool"]))
    if not values or values.get("resourcePool") is None:
        raise InvalidRequest(f"host {host._moId} has no resource pool", fault="InvalidState")
    return values["resourcePool"]


def datastore_by_name(session: VsphereSession, name: str) -> vim.Datastore | None:
    key = ("datastore", name)
    found = session.remember(key, lambda: _datastore_by_name(session, name))
    if found is None:
        session.forget(key)  # a datastore that is not there yet may come
    return found


def _datastore_by_name(session: VsphereSession, name: str) -> vim.Datastore | None:
    def find(si: vim.ServiceInstance) -> vim.Datastore | None:
        listed = props.fetch(session.content, session.datacenter, ["datastore"]) or {}
        names = props.fetch_many(session.content, list(listed.get("datastore", [])), ["name"])
        return next(
            (ds for ds in listed.get("datastore", []) if names.get(ds._moId, {}).get("name") == name), None
        )

    return session.call(find)


def network_names(session: VsphereSession) -> dict[str, str]:
    """Network moref id -> name; a distributed port group's id is also its port group key."""

    def read(si: vim.ServiceInstance) -> dict[str, str]:
        listed = (props.fetch(session.content, session.datacenter, ["network"]) or {}).get("network", [])
        names = props.fetch_many(session.content, list(listed), ["name"])
        return {moid: values.get("name", "") for moid, values in names.items()}

    return session.call(read)


def snapshot_nodes(snapshot_info: Any) -> Iterator[tuple[Any, str | None]]:
    """(tree node, parent snapshot ref) of a VM's snapshot tree, parents before children."""
    stack = [(node, None) for node in reversed(getattr(snapshot_info, "rootSnapshotList", None) or [])]
    while stack:
        node, parent = stack.pop()
        yield node, parent
        stack.extend((child, node.snapshot._moId) for child in reversed(node.childSnapshotList or []))


def snapshot_by_ref(
    session: VsphereSession, vm: vim.VirtualMachine, ref: str
) -> tuple[vim.vm.Snapshot, Any] | None:
    """The snapshot ``ref`` of ``vm`` with its tree node, or None when the VM or the snapshot is gone."""
    values = session.call(lambda si: props.fetch(session.content, vm, ["snapshot"]))
    if values is None:
        return None
    node = next((n for n, _ in snapshot_nodes(values.get("snapshot")) if n.snapshot._moId == ref), None)
    return (node.snapshot, node) if node is not None else None


def snapshot_infos(snapshot_info: Any) -> list[SnapshotInfo]:
    return [_snapshot(node, parent) for node, parent in snapshot_nodes(snapshot_info)]


def snapshot_has_memory(node: Any) -> bool:
    """Whether the snapshot holds a memory image.

    vSphere records a snapshot's ``state`` as the power state a revert returns to; only a
    snapshot of a running VM taken with its memory reverts to ``poweredOn``.
    """
    return node.state == vim.VirtualMachine.PowerState.poweredOn


def snapshot_description(description: str, snapdeploy_id: str) -> str:
    marker = f"snapdeploy:{snapdeploy_id}"
    return f"{description}\n{marker}" if description else marker


def snapshot_snapdeploy_id(description: str | None) -> str | None:
    match = _SNAPSHOT_MARKER.search(description or "")
    return match.group(1) if match else None


# -- conversions ----------------------------------------------------------------------------------


def _refs(values: Any) -> list[str]:
    """Moref ids of a list of objects, or of ``DatastoreHostMount``-like entries keyed by their object."""
    return [getattr(v, "key", v)._moId for v in values or []]


def _host(obj: Any, v: dict, clusters: dict[str, str], network_names: dict[str, str]) -> HostInfo:
    if v.get("runtime.inMaintenanceMode"):
        state = "Maintenance"
    elif v.get("runtime.connectionState") == "connected":
        state = "Up"
    else:
        state = "Down"
    cores = v.get("hardware.cpuInfo.numCpuCores") or 0
    return HostInfo(
        ref=obj._moId,
        name=v.get("name", ""),
        cluster=clusters.get(getattr(v.get("parent"), "_moId", "")),
        state=state,
        cpu_cores=cores,
        cpu_mhz_total=cores * (v.get("summary.hardware.cpuMhz") or 0),
        memory_bytes=v.get("hardware.memorySize") or 0,
        datastores=_refs(v.get("datastore")),
        networks=[network_names[n._moId] for n in v.get("network") or [] if n._moId in network_names],
    )


def _datastore(obj: Any, v: dict) -> DatastoreInfo:
    return DatastoreInfo(
        ref=obj._moId,
        name=v.get("name", ""),
        type=v.get("summary.type") or "VMFS",
        capacity_bytes=v.get("summary.capacity") or 0,
        free_bytes=v.get("summary.freeSpace") or 0,
        hosts=_refs(v.get("host")),
    )


def _vm(obj: Any, v: dict, network_names: dict[str, str]) -> VmInfo:
    device_list = list(v.get("config.hardware.device") or [])
    snapshot = v.get("snapshot")
    current = getattr(snapshot, "currentSnapshot", None)
    return VmInfo(
        ref=obj._moId,
        name=v.get("name", ""),
        instance_uuid=v.get("config.instanceUuid"),
        host=getattr(v.get("runtime.host"), "_moId", None),
        datastores=_refs(v.get("datastore")),
        power_state=v.get("runtime.powerState", "poweredOff"),
        template=bool(v.get("config.template")),
        guest_id=v.get("config.guestId"),
        num_cpus=v.get("config.hardware.numCPU") or 0,
        memory_mb=v.get("config.hardware.memoryMB") or 0,
        snapdeploy_id=devices.extra_config(v.get("config.extraConfig")).get(SNAPDEPLOY_KEY),
        disks=devices.disk_configs(device_list, devices.boot_disk_keys(v.get("config.bootOptions"))),
        nics=[devices.nic_config(n, network_names) for n in devices.nics(device_list)],
        snapshots=snapshot_infos(snapshot),
        current_snapshot_ref=current._moId if current is not None else None,
    )


def _snapshot(node: Any, parent_ref: str | None) -> SnapshotInfo:
    description = node.description or ""
    return SnapshotInfo(
        ref=node.snapshot._moId,
        name=node.name,
        description=_SNAPSHOT_MARKER.sub("", description).strip(),
        parent_ref=parent_ref,
        created=node.createTime,
        has_memory=snapshot_has_memory(node),
        snapdeploy_id=snapshot_snapdeploy_id(description),
    )
