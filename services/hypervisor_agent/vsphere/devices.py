"""Virtual devices: reading disks and NICs into contract values, and building device specs."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from pyVmomi import vim

from contracts import vsphere
from contracts.vsphere import DiskConfig, NicConfig
from services.hypervisor_agent.vsphere.faults import InvalidRequest

Device = vim.vm.device
KB = 1024

_CONTROLLER_TYPES: list[tuple[type, str]] = [
    (Device.VirtualSCSIController, "scsi"),
    (Device.VirtualIDEController, "ide"),
    (Device.VirtualSATAController, "sata"),
    (Device.VirtualNVMEController, "nvme"),
]

_ADAPTERS: dict[str, type] = {
    "vmxnet3": Device.VirtualVmxnet3,
    "vmxnet2": Device.VirtualVmxnet2,
    "vmxnet": Device.VirtualVmxnet,
    "e1000": Device.VirtualE1000,
    "e1000e": Device.VirtualE1000e,
    "pcnet32": Device.VirtualPCNet32,
    "sriov": Device.VirtualSriovEthernetCard,
}


def datastore_of(path: str) -> str:
    """``[ds1] a/b.vmdk`` -> ``ds1``."""
    return split_path(path)[0]


def split_path(path: str) -> tuple[str, str]:
    """``[ds1] a/b.vmdk`` -> (``ds1``, ``a/b.vmdk``)."""
    if not path.startswith("[") or "]" not in path:
        raise InvalidRequest(f"not a datastore path: {path!r}", fault="InvalidDatastorePath")
    end = path.index("]")
    return path[1:end], path[end + 1 :].strip()


def controller_type(controller: Any) -> str:
    return next((name for cls, name in _CONTROLLER_TYPES if isinstance(controller, cls)), "other")


def disks(devices: Iterable[Any]) -> list[Any]:
    return [d for d in devices if isinstance(d, Device.VirtualDisk)]


def nics(devices: Iterable[Any]) -> list[Any]:
    return [d for d in devices if isinstance(d, Device.VirtualEthernetCard)]


def disk_size_bytes(disk: Any) -> int:
    return disk.capacityInBytes or (disk.capacityInKB or 0) * KB


def boot_disk_keys(boot_options: Any) -> list[int]:
    """Device keys of the disks in a VM's configured boot order (``config.bootOptions``), in order."""
    order = getattr(boot_options, "bootOrder", None) or []
    return [d.deviceKey for d in order if isinstance(d, vim.vm.BootOptions.BootableDiskDevice)]


def disk_config(disk: Any, controllers: Mapping[int, Any], boot_keys: list[int] = ()) -> DiskConfig:
    backing = disk.backing
    parent = getattr(backing, "parent", None)
    controller = controllers.get(disk.controllerKey)
    return DiskConfig(
        key=disk.key,
        file=backing.fileName,
        datastore=datastore_of(backing.fileName),
        size_bytes=disk_size_bytes(disk),
        controller_key=disk.controllerKey,
        controller_type=controller_type(controller),
        unit_number=disk.unitNumber if disk.unitNumber is not None else -1,
        parent_file=parent.fileName if parent is not None else None,
        boot_order=boot_keys.index(disk.key) if disk.key in boot_keys else None,
    )


def describe_disk(device_list: list[Any], disk: Any) -> DiskConfig:
    """DiskConfig of one disk among the VM's devices (which hold its controller)."""
    return disk_config(disk, {d.key: d for d in device_list if isinstance(d, Device.VirtualController)})


def disk_configs(devices: list[Any], boot_keys: list[int] = ()) -> list[DiskConfig]:
    controllers = {d.key: d for d in devices if isinstance(d, Device.VirtualController)}
    return [disk_config(d, controllers, list(boot_keys)) for d in disks(devices)]


def root_disk(devices: list[Any], boot_options: Any = None) -> Any | None:
    """The boot disk among the VM's devices, by the one rule every service uses
    (``contracts.vsphere.root_disk``); None for a VM without disks."""
    found = disks(devices)
    if not found:
        return None
    root = vsphere.root_disk(disk_configs(devices, boot_disk_keys(boot_options)))
    return next(d for d in found if d.key == root.key)


def nic_config(nic: Any, network_names: Mapping[str, str] | None = None) -> NicConfig:
    return NicConfig(
        key=nic.key,
        network=network_name(nic.backing, network_names or {}),
        mac=nic.macAddress or None,
        adapter_type=adapter_type(nic),
    )


def network_name(backing: Any, network_names: Mapping[str, str]) -> str:
    """Port group name of a NIC backing: standard ones carry it, distributed ones a port group key."""
    if isinstance(backing, Device.VirtualEthernetCard.NetworkBackingInfo):
        return backing.deviceName or network_names.get(getattr(backing.network, "_moId", ""), "")
    port = getattr(backing, "port", None)
    if port is not None:
        return network_names.get(port.portgroupKey, port.portgroupKey or "")
    return ""


def adapter_type(nic: Any) -> str:
    # most derived first: VirtualE1000e is not a VirtualE1000, but vmxnet3 is a vmxnet
    for name, cls in sorted(_ADAPTERS.items(), key=lambda item: -len(type.mro(item[1]))):
        if isinstance(nic, cls):
            return name
    return type(nic).__name__.rsplit(".", 1)[-1].removeprefix("Virtual").lower()


def deterministic_mac(nic_id: str) -> str:
    """A MAC in vSphere's manual range 00:50:56:00:00:00-00:50:56:3F:FF:FF, derived from the NIC's id.

    The same id always gives the same MAC, so a repeated AttachNic finds the NIC it added.
    """
    digest = hashlib.sha256(nic_id.encode()).digest()
    return f"00:50:56:{digest[0] & 0x3F:02x}:{digest[1]:02x}:{digest[2]:02x}"


def new_nic(*, network: str, adapter: str, mac: str, key: int = -1) -> Any:
    cls = _ADAPTERS.get(adapter)
    if cls is None:
        raise InvalidRequest(
            f"unknown NIC adapter type {adapter!r}; one of {sorted(_ADAPTERS)}", fault="InvalidArgument"
        )
    return cls(
        key=key,
        addressType="manual",
        macAddress=mac,
        backing=Device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network),
        connectable=Device.VirtualDevice.ConnectInfo(
            startConnected=True, allowGuestControl=True, connected=False
        ),
    )


def add(device: Any, **kwargs: Any) -> Any:
    return Device.VirtualDeviceSpec(operation=Device.VirtualDeviceSpec.Operation.add, device=device, **kwargs)


def remove(device: Any, **kwargs: Any) -> Any:
    return Device.VirtualDeviceSpec(
        operation=Device.VirtualDeviceSpec.Operation.remove, device=device, **kwargs
    )


def edit(device: Any) -> Any:
    return Device.VirtualDeviceSpec(operation=Device.VirtualDeviceSpec.Operation.edit, device=device)


def existing_disk(
    *, path: str, controller_key: int, unit_number: int, key: int = -1, size_bytes: int = 0
) -> Any:
    """A disk device that attaches a disk file as it is (no fileOperation: nothing is created)."""
    return Device.VirtualDisk(
        key=key,
        controllerKey=controller_key,
        unitNumber=unit_number,
        capacityInKB=size_bytes // KB,
        backing=Device.VirtualDisk.FlatVer2BackingInfo(fileName=path, diskMode="persistent"),
    )


def extra_config(values: Iterable[Any] | None) -> dict[str, str]:
    return {option.key: option.value for option in values or []}
