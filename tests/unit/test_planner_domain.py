"""Planner and storage rules that need no I/O."""

from __future__ import annotations

import uuid

import pytest

from contracts.planner import DeployVirtualMachine
from contracts.vsphere import DiskConfig, VmSnapshotConfig
from services.planner import domain
from services.storage import domain as storage_domain
from shared.errors import DomainError


def config(cpus: int) -> VmSnapshotConfig:
    disk = DiskConfig(
        key=2000, file="[ds1] vm/vm.vmdk", datastore="ds1", size_bytes=2**30,
        controller_key=1000, controller_type="scsi", unit_number=0,
    )  # fmt: skip
    return VmSnapshotConfig(
        num_cpus=cpus,
        cores_per_socket=1,
        memory_mb=2048,
        guest_id="g",
        disks=[disk],
        nics=[],
        has_memory_dump=True,
    )


def test_the_offerings_vcpus_must_match_the_snapshots_and_memory_may_differ():
    domain.check_offering("two", 2, config(2))  # memory 2048 at the snapshot; the offering's memory wins
    with pytest.raises(DomainError, match="has 4 vCPUs; the VM had 2") as refused:
        domain.check_offering("four", 4, config(2))
    assert refused.value.code == 431


def test_a_snapshot_deployment_takes_no_zone_and_needs_an_offering():
    base = {"vm_id": uuid.uuid4(), "vm_snapshot_id": uuid.uuid4()}
    with pytest.raises(DomainError, match="service_offering_id is required"):
        domain.check_snapshot_request(DeployVirtualMachine(**base))
    with pytest.raises(DomainError, match="zone_id cannot be given"):
        domain.check_snapshot_request(
            DeployVirtualMachine(**base, zone_id="zone1", service_offering_id=uuid.uuid4())
        )


@pytest.mark.parametrize(
    "require", [domain.require_vmware, lambda h: storage_domain.require_vmware(h, "seeding")]
)
def test_other_hypervisors_are_refused_with_432(require):
    require("VMware")
    with pytest.raises(DomainError, match="not supported on hypervisor KVM") as refused:
        require("KVM")
    assert refused.value.code == 432


def test_only_the_owner_or_an_admin_may_use_a_snapshot():
    owner = uuid.uuid4()
    assert domain.may_use("user", owner, owner)
    assert domain.may_use("admin", uuid.uuid4(), owner)
    assert not domain.may_use("user", uuid.uuid4(), owner)


def test_pool_capacity_and_the_vm_snapshot_rule():
    pool = storage_domain.PoolFigures("ds1", capacity_bytes=100, allocated_bytes=150, factor=2.0)
    assert pool.limit == 200 and pool.fits(50) and not pool.fits(51)
    error = storage_domain.insufficient_capacity(pool, 51, "a seed")
    assert error.code == 533 and "needs 51 bytes, 150 of 200 allocated" in error.text
    storage_domain.refuse_with_snapshots("v", "attach", [])
    with pytest.raises(DomainError, match=r"cannot resize volume v: its VM has VM snapshots \(S1, S2\)"):
        storage_domain.refuse_with_snapshots("v", "resize", ["S2", "S1"])
