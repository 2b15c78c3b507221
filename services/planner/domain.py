"""Planner rules with no I/O: what a request may ask, whether an offering fits a snapshot."""

from __future__ import annotations

from contracts.errors import ErrorCode
from contracts.planner import DeployVirtualMachine
from contracts.vsphere import VmSnapshotConfig
from shared.errors import DomainError

SUPPORTED_HYPERVISOR = "VMware"
MIB = 2**20


def check_snapshot_request(command: DeployVirtualMachine) -> None:
    """Deploying from a VM snapshot: the zone and template come from the snapshot; an offering is required."""
    if command.zone_id is not None:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            "zone_id cannot be given with vm_snapshot_id: the VM snapshot's zone is used",
        )
    if command.service_offering_id is None:
        raise DomainError(
            ErrorCode.PARAM_ERROR, "service_offering_id is required to deploy from a VM snapshot"
        )


def require_vmware(hypervisor: str) -> None:
    if hypervisor != SUPPORTED_HYPERVISOR:
        raise DomainError(
            ErrorCode.UNSUPPORTED,
            f"deploying from a VM snapshot is not supported on hypervisor {hypervisor}; "
            f"only on {SUPPORTED_HYPERVISOR}",
        )


def may_use(actor_role: str, actor_account, owner_account) -> bool:
    return actor_role in ("admin", "service") or actor_account == owner_account


def check_offering(offering_name: str, cpu_number: int, config: VmSnapshotConfig) -> None:
    """The spec's validation: the offering's vCPU count must match the VM's at the snapshot.
    Memory may differ (it is the offering's); a memory dump in the snapshot is ignored."""
    if cpu_number != config.num_cpus:
        raise DomainError(
            ErrorCode.PARAM_ERROR,
            f"service offering {offering_name} has {cpu_number} vCPUs; the VM had {config.num_cpus} "
            "at the VM snapshot, and they must match",
        )


def cpu_needed(cpu_number: int, cpu_speed_mhz: int) -> int:
    return cpu_number * cpu_speed_mhz


def memory_needed(memory_mb: int) -> int:
    return memory_mb * MIB
