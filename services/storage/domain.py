"""Storage rules with no I/O: capacity, which disk is the root disk, what users are told."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts import vsphere
from contracts.errors import ErrorCode
from contracts.vsphere import DiskConfig
from shared.errors import DomainError

SUPPORTED_HYPERVISOR = "VMware"


@dataclass(frozen=True)
class PoolFigures:
    name: str
    capacity_bytes: int
    allocated_bytes: int
    factor: float

    @property
    def limit(self) -> int:
        return int(self.capacity_bytes * self.factor)

    def fits(self, request: int) -> bool:
        return self.allocated_bytes + request <= self.limit


def insufficient_capacity(pool: PoolFigures, request: int, what: str) -> DomainError:
    return DomainError(
        ErrorCode.INSUFFICIENT_CAPACITY,
        f"insufficient capacity on storage pool {pool.name} for {what}: needs {request} bytes, "
        f"{pool.allocated_bytes} of {pool.limit} allocated (capacity {pool.capacity_bytes} x "
        f"over-provisioning {pool.factor:g})",
    )


def require_vmware(hypervisor: str, operation: str) -> None:
    if hypervisor != SUPPORTED_HYPERVISOR:
        raise DomainError(
            ErrorCode.UNSUPPORTED,
            f"{operation} is not supported on hypervisor {hypervisor}; only on {SUPPORTED_HYPERVISOR}",
        )


def root_disk(disks: Sequence[DiskConfig], root_key: int | None = None) -> DiskConfig:
    """The snapshot's root disk: the one the VM's ROOT volume is, else the first on the first controller."""
    if not disks:
        raise DomainError(ErrorCode.PARAM_ERROR, "the VM snapshot has no disk")
    for disk in disks:
        if disk.key == root_key:
            return disk
    return vsphere.root_disk(list(disks))


def refuse_with_snapshots(volume_name: str, operation: str, snapshot_names: Sequence[str]) -> None:
    """CloudStack's rule: attach, detach and resize wait until the VM has no VM snapshot."""
    if snapshot_names:
        names = ", ".join(sorted(snapshot_names))
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"cannot {operation} volume {volume_name}: its VM has VM snapshots ({names}); delete them first",
        )
