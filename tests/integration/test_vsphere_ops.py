"""The agent's vCenter layer against the vSphere simulator (tests/vcsim) over real HTTPS, no mocks.

One simulator serves the whole module; tests use their own ids, so the objects they leave
(snapshots on src-vm, seeds, clones) do not disturb each other. Disk contents are written and
read through the datastore ``/folder`` endpoint and compared by SHA-256.
"""

from __future__ import annotations

import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from pyVmomi import vim

from contracts.agent import NicRequest, VmShape
from services.hypervisor_agent.vsphere import devices, inventory, ops, props, vm_ops
from services.hypervisor_agent.vsphere.faults import FileMissing, InvalidRequest, NoSpace, VsphereError
from services.hypervisor_agent.vsphere.session import VsphereSession
from services.hypervisor_agent.vsphere.tasks import TaskOutcome
from tests.support.vcsim import Simulator
from tests.support.vcsim import sha256 as sha

pytestmark = pytest.mark.integration

TIMEOUT = 30.0

A = b"A" * 4096 + b" root disk at S1"
B = b"B" * 8192 + b" root disk at S2"
C = b"C" * 1000 + b" root disk now"
DATA_S1 = os.urandom(64 * 1024)
DATA_S2 = os.urandom(32 * 1024)


class Recorder:
    """The ``report`` callback: keeps every TaskOutcome."""

    def __init__(self) -> None:
        self.outcomes: list[TaskOutcome] = []

    def __call__(self, outcome: TaskOutcome) -> None:
        self.outcomes.append(outcome)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.outcomes]


@pytest.fixture(scope="module")
def sim():
    simulator = Simulator()
    yield simulator
    simulator.stop()


@pytest.fixture(scope="module")
def session(sim: Simulator):
    s = VsphereSession(sim.url, datacenter="DC0", verify_ssl=False)
    s.connect()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def reset_simulator(sim: Simulator):
    sim.control("reset")
    yield
    sim.control("reset")


@pytest.fixture
def report() -> Recorder:
    return Recorder()


@dataclass(frozen=True)
class Snapshots:
    vm_ref: str
    s1: str
    s2: str


@pytest.fixture(scope="module")
def snapshots(sim: Simulator, session: VsphereSession) -> Snapshots:
    """src-vm with root disk A and data disk DATA_S1 at S1, B and DATA_S2 at S2, root C now."""
    vm = inventory.find_vm_by_name(session, "src-vm")
    ignore = Recorder()
    root, data = current_disks(session, vm._moId)
    sim.write(root, A)
    sim.write(data, DATA_S1)
    s1 = ops.create_snapshot(session, vm._moId, snapshot_id="s1", name="S1", report=ignore, timeout=TIMEOUT)
    root, data = current_disks(session, vm._moId)  # the VM moved to child disks
    sim.write(root, B)
    sim.write(data, DATA_S2)
    s2 = ops.create_snapshot(session, vm._moId, snapshot_id="s2", name="S2", report=ignore, timeout=TIMEOUT)
    sim.write(current_disks(session, vm._moId)[0], C)
    return Snapshots(vm_ref=vm._moId, s1=s1.ref, s2=s2.ref)


def current_disks(session: VsphereSession, vm_ref: str) -> list[str]:
    values = inventory.require_vm(session, inventory.vm_by_ref(session, vm_ref), ["config.hardware.device"])
    return [
        d.file
        for d in sorted(devices.disk_configs(values["config.hardware.device"]), key=lambda d: d.unit_number)
    ]


def vm_devices(session: VsphereSession, vm_ref: str) -> list:
    values = inventory.require_vm(session, inventory.vm_by_ref(session, vm_ref), ["config.hardware.device"])
    return list(values["config.hardware.device"])


def vm_names(session: VsphereSession) -> list[str]:
    found = props.contents(session.content, session.datacenter, {vim.VirtualMachine: ["name"]})
    return sorted(values["name"] for _, values in found)


def host_ref(session: VsphereSession, name: str) -> str:
    found = props.contents(session.content, session.datacenter, {vim.HostSystem: ["name"]})
    return next(obj._moId for obj, values in found if values["name"] == name)


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def seed(session: VsphereSession, snapshots: Snapshots, snapshot_ref: str, report=None) -> ops.SeedResult:
    return ops.seed_template(
        session,
        seed_id=new_id(),
        vm_ref=snapshots.vm_ref,
        snapshot_ref=snapshot_ref,
        datastore="ds1",
        report=report or Recorder(),
        timeout=TIMEOUT,
    )


def clone(
    session: VsphereSession,
    template: ops.SeedResult,
    vm_id: str,
    report=None,
    shape=None,
    nics=(),
    power_on=False,
) -> ops.CloneResult:
    return ops.clone_from_snapshot(
        session,
        vm_id=vm_id,
        vm_name=f"i-{vm_id}",
        template_ref=template.template_ref,
        base_snapshot_ref=template.base_snapshot_ref,
        host_ref=host_ref(session, "esx-1-2"),
        datastore="ds1",
        shape=shape,
        nics=nics,
        power_on=power_on,
        report=report or Recorder(),
        timeout=TIMEOUT,
    )


# -- reading ------------------------------------------------------------------------------------


def test_inventory_lists_the_zone_with_snapshot_trees(session, snapshots):
    synced = inventory.read_inventory(session, "zone-1")

    assert {h.name for h in synced.hosts} == {"esx-1-1", "esx-1-2", "esx-2-1", "esx-2-2"}
    host = next(h for h in synced.hosts if h.name == "esx-2-1")
    assert host.cluster == "cluster2" and host.state == "Up" and host.cpu_cores > 0 and host.memory_bytes > 0
    assert {"VM Network", "pg-web", "pg-db", "pg-mgmt"} <= set(host.networks)
    ds = {d.name: d for d in synced.datastores}
    assert set(ds) == {"ds1", "ds2"} and len(ds["ds1"].hosts) == 2 and len(ds["ds2"].hosts) == 4
    assert ds["ds2"].ref in host.datastores and ds["ds1"].ref not in host.datastores
    src = next(v for v in synced.vms if v.name == "src-vm")
    assert src.num_cpus == 2 and not src.template and src.host is not None
    assert [n.network for n in src.nics] == ["VM Network"]
    by_id = {s.snapdeploy_id: s for s in src.snapshots}
    assert by_id["s1"].ref == snapshots.s1 and by_id["s1"].parent_ref is None
    assert by_id["s2"].parent_ref == snapshots.s1 and by_id["s2"].name == "S2"
    refs = [s.ref for s in src.snapshots]
    assert refs.index(snapshots.s1) < refs.index(snapshots.s2), "parents come first"


def test_snapshot_config_is_the_vm_as_at_the_snapshot(session, snapshots, report):
    at_s1 = ops.get_snapshot_config(session, snapshots.vm_ref, snapshots.s1)
    assert (at_s1.num_cpus, at_s1.cores_per_socket, at_s1.memory_mb) == (2, 1, 2048)
    assert at_s1.guest_id == "otherGuest64" and not at_s1.has_memory_dump
    assert [(d.key, d.file, d.controller_type, d.unit_number) for d in at_s1.disks] == [
        (2000, "[ds1] src-vm/src-vm.vmdk", "scsi", 0),
        (2001, "[ds1] src-vm/src-vm_1.vmdk", "scsi", 1),
    ]
    assert at_s1.disks[0].size_bytes == 1024**3 and at_s1.disks[0].datastore == "ds1"
    assert [(n.network, n.adapter_type) for n in at_s1.nics] == [("VM Network", "vmxnet3")]

    ops.reconfigure_vm(
        session,
        snapshots.vm_ref,
        num_cpus=4,
        cores_per_socket=2,
        memory_mb=4096,
        report=report,
        timeout=TIMEOUT,
    )
    try:
        s3 = ops.create_snapshot(
            session, snapshots.vm_ref, snapshot_id=new_id(), name="S3", report=report, timeout=TIMEOUT
        )
        at_s3 = ops.get_snapshot_config(session, snapshots.vm_ref, s3.ref)
        assert (at_s3.num_cpus, at_s3.cores_per_socket, at_s3.memory_mb) == (4, 2, 4096)
        assert at_s3.disks[0].parent_file is not None, "after two snapshots the VM runs on child disks"
        assert ops.get_snapshot_config(session, snapshots.vm_ref, snapshots.s1) == at_s1
        ops.remove_snapshot(session, snapshots.vm_ref, s3.ref, report=report, timeout=TIMEOUT)
    finally:
        ops.reconfigure_vm(
            session,
            snapshots.vm_ref,
            num_cpus=2,
            cores_per_socket=1,
            memory_mb=2048,
            report=report,
            timeout=TIMEOUT,
        )


def test_snapshot_config_of_a_missing_snapshot_or_vm_is_431(session, snapshots):
    with pytest.raises(FileMissing) as missing_snapshot:
        ops.get_snapshot_config(session, snapshots.vm_ref, "snapshot-999999")
    with pytest.raises(FileMissing) as missing_vm:
        ops.get_snapshot_config(session, "vm-999999", snapshots.s1)
    assert missing_snapshot.value.code == missing_vm.value.code == 431


# -- seeding, cloning, copying -----------------------------------------------------------------------


def test_seeds_hold_the_root_disk_as_at_their_snapshot(sim, session, snapshots):
    from_s1 = seed(session, snapshots, snapshots.s1)
    from_s2 = seed(session, snapshots, snapshots.s2)

    assert sha(sim.read(from_s1.disk_path)) == sha(A)
    assert sha(sim.read(from_s2.disk_path)) == sha(B)
    assert from_s1.disk_path == f"[ds1] {from_s1.template_name}/root.vmdk"
    assert from_s1.size_bytes == 1024**3
    template = inventory.read_vm(
        session,
        inventory.vm_by_ref(session, from_s1.template_ref),
        ["config.template", "config.hardware.device", "snapshot"],
    )
    assert template["config.template"] is True
    assert devices.nics(template["config.hardware.device"]) == []
    # the base snapshot froze the copied disk: the template itself now sits on a child of it
    assert [d.parent_file for d in devices.disk_configs(template["config.hardware.device"])] == [
        from_s1.disk_path
    ]
    assert [s.name for s in inventory.snapshot_infos(template["snapshot"])] == ["cloud.template.base"]


def test_seed_on_another_datastore_than_the_root_disk_is_431(session, snapshots):
    with pytest.raises(InvalidRequest, match="ds1") as refused:
        ops.seed_template(
            session,
            seed_id=new_id(),
            vm_ref=snapshots.vm_ref,
            snapshot_ref=snapshots.s1,
            datastore="ds2",
            report=Recorder(),
            timeout=TIMEOUT,
        )
    assert refused.value.code == 431


def test_linked_clone_of_a_seed_reads_its_disk_and_has_no_nics(sim, session, snapshots, report):
    template = seed(session, snapshots, snapshots.s1)
    made = clone(session, template, new_id(), report)

    assert made.root_disk.parent_file == template.disk_path
    assert made.root_disk.file.startswith(f"[ds1] {made.vm_name}/")
    assert sha(sim.read(made.root_disk.file)) == sha(A), "an unwritten child reads through to the seed disk"
    assert devices.nics(vm_devices(session, made.vm_ref)) == []
    placed = inventory.read_vm(
        session,
        inventory.vm_by_ref(session, made.vm_ref),
        ["runtime.host", "runtime.powerState", "config.extraConfig"],
    )
    assert placed["runtime.host"]._moId == host_ref(session, "esx-1-2")
    assert placed["runtime.powerState"] == "poweredOff"
    assert devices.extra_config(placed["config.extraConfig"])["snapdeploy.id"] == made.vm_name.removeprefix(
        "i-"
    )


def test_a_shaped_clone_has_the_offerings_cpus_memory_and_reservation_in_one_task(session, snapshots):
    template = seed(session, snapshots, snapshots.s1)
    report = Recorder()
    shape = VmShape(num_cpus=3, cores_per_socket=1, memory_mb=1536, cpu_mhz=750)
    made = clone(session, template, new_id(), report, shape=shape)

    assert report.names == ["CloneVM_Task"], "no ReconfigVM_Task after it"
    values = inventory.read_vm(
        session,
        inventory.vm_by_ref(session, made.vm_ref),
        ["config.hardware.numCPU", "config.hardware.memoryMB", "config.cpuAllocation.reservation"],
    )
    assert values == {
        "config.hardware.numCPU": 3,
        "config.hardware.memoryMB": 1536,
        "config.cpuAllocation.reservation": 750,
    }
    assert made.root_disk.parent_file == template.disk_path, "still a linked clone of the seed"


def test_a_clone_with_nics_has_them_in_order_with_macs_from_their_ids_in_one_task(session, snapshots):
    template = seed(session, snapshots, snapshots.s1)
    report = Recorder()
    asked = [NicRequest(nic_id=new_id(), network="pg-db"), NicRequest(nic_id=new_id(), network="pg-web")]
    vm_id = new_id()
    made = clone(session, template, vm_id, report, nics=asked)

    assert report.names == ["CloneVM_Task"], "no ReconfigVM_Task per NIC"
    on_vm = devices.nics(vm_devices(session, made.vm_ref))
    assert [(n.key, n.macAddress, n.backing.deviceName) for n in on_vm] == [
        (nic.device_key, nic.mac, net) for nic, net in zip(made.nics, ["pg-db", "pg-web"], strict=True)
    ]
    assert [n.mac for n in made.nics] == [vm_ops.nic_mac(a.nic_id) for a in asked]
    again = clone(session, template, vm_id, nics=asked)  # a redelivery finds the clone and its NICs
    assert again.nics == made.nics and len(devices.nics(vm_devices(session, made.vm_ref))) == 2


def test_a_clone_asked_to_power_on_runs_on_its_host_after_one_task(session, snapshots):
    template = seed(session, snapshots, snapshots.s1)
    report = Recorder()
    made = clone(session, template, new_id(), report, power_on=True)

    assert report.names == ["CloneVM_Task"], "no PowerOnVM_Task after it"
    vm = inventory.vm_by_ref(session, made.vm_ref)
    values = inventory.read_vm(session, vm, ["runtime.powerState", "runtime.host"])
    assert values["runtime.powerState"] == vm_ops.POWERED_ON
    assert made.powered_on and made.host_ref == values["runtime.host"]._moId == host_ref(session, "esx-1-2")
    assert made.root_disk.parent_file == template.disk_path, "still a linked clone of the seed"


def test_a_clone_left_off_by_an_earlier_delivery_is_powered_on_when_asked_again(session, snapshots):
    template = seed(session, snapshots, snapshots.s1)
    vm_id = new_id()
    first = clone(session, template, vm_id)
    assert not first.powered_on and first.host_ref == host_ref(session, "esx-1-2")

    report = Recorder()
    again = clone(session, template, vm_id, report, power_on=True)
    assert report.names == ["PowerOnVM_Task"], "the same VM, powered on: no second clone"
    assert again.vm_ref == first.vm_ref and again.powered_on
    vm = inventory.vm_by_ref(session, first.vm_ref)
    assert inventory.read_vm(session, vm, ["runtime.powerState"])["runtime.powerState"] == vm_ops.POWERED_ON


def test_a_clone_with_a_nic_on_an_unknown_port_group_is_431_and_makes_no_vm(session, snapshots):
    template = seed(session, snapshots, snapshots.s1)
    vm_id = new_id()
    with pytest.raises(InvalidRequest, match="port group 'pg-nowhere' not found on host esx-1-2"):
        clone(session, template, vm_id, nics=[NicRequest(nic_id=new_id(), network="pg-nowhere")])
    assert f"i-{vm_id}" not in vm_names(session)


def test_copy_volume_holds_the_data_disk_as_at_the_snapshot(sim, session, snapshots, report):
    volume_id = new_id()
    copied = ops.copy_volume_from_snapshot(
        session,
        volume_id=volume_id,
        vm_ref=snapshots.vm_ref,
        snapshot_ref=snapshots.s1,
        disk_key=2001,
        report=report,
        timeout=TIMEOUT,
    )
    assert copied.disk_path == f"[ds1] snapdeploy-volumes/{volume_id}.vmdk" and copied.datastore == "ds1"
    assert copied.size_bytes == 2 * 1024**3
    assert sha(sim.read(copied.disk_path)) == sha(DATA_S1)
    assert report.names == ["CopyVirtualDisk_Task"]


def test_an_empty_disk_has_its_size_and_one_vcenter_refuses_leaves_no_file(sim, session):
    report = Recorder()
    volume_id = new_id()
    made = ops.create_disk(
        session,
        volume_id=volume_id,
        datastore="ds1",
        size_bytes=3 * 1024**3 + 1,
        report=report,
        timeout=TIMEOUT,
    )
    assert made.disk_path == f"[ds1] snapdeploy-volumes/{volume_id}.vmdk" and made.datastore == "ds1"
    assert sim.disk_size(made.disk_path) == 3 * 1024**3 + 1024, "capacity is whole KiB, rounded up"
    assert report.names == ["CreateVirtualDisk_Task"]

    sim.fail("CreateVirtualDisk_Task", "NoDiskSpace")
    doomed = new_id()
    with pytest.raises(NoSpace):
        ops.create_disk(
            session, volume_id=doomed, datastore="ds1", size_bytes=1024**3, report=report, timeout=TIMEOUT
        )
    assert sim.disk_size(f"[ds1] snapdeploy-volumes/{doomed}.vmdk") is None
    with pytest.raises(InvalidRequest):
        ops.create_disk(
            session, volume_id=new_id(), datastore="ds9", size_bytes=1024**3, report=report, timeout=TIMEOUT
        )


# -- idempotency ------------------------------------------------------------------------------------


def test_every_operation_called_twice_makes_nothing_new(sim, session, snapshots):
    twice = Recorder()
    seed_id, vm_id, volume_id, nic_id = new_id(), new_id(), new_id(), new_id()

    def both(fn, **kwargs):
        first = fn(session, report=twice, timeout=TIMEOUT, **kwargs)
        before = (vm_names(session), len(twice.outcomes))
        second = fn(session, report=twice, timeout=TIMEOUT, **kwargs)
        assert second == first, fn.__name__
        assert (vm_names(session), len(twice.outcomes)) == before, f"{fn.__name__} did more the second time"
        return first

    template = both(
        ops.seed_template,
        seed_id=seed_id,
        vm_ref=snapshots.vm_ref,
        snapshot_ref=snapshots.s1,
        datastore="ds1",
    )
    made = both(
        ops.clone_from_snapshot,
        vm_id=vm_id,
        vm_name=f"i-{vm_id}",
        template_ref=template.template_ref,
        base_snapshot_ref=template.base_snapshot_ref,
        host_ref=host_ref(session, "esx-1-1"),
        datastore="ds1",
    )
    volume = both(
        ops.copy_volume_from_snapshot,
        volume_id=volume_id,
        vm_ref=snapshots.vm_ref,
        snapshot_ref=snapshots.s2,
        disk_key=2001,
    )
    assert sha(sim.read(volume.disk_path)) == sha(DATA_S2)
    blank = both(ops.create_disk, volume_id=new_id(), datastore="ds2", size_bytes=2 * 1024**3)
    assert sim.disk_size(blank.disk_path) == 2 * 1024**3
    snapshot = both(ops.create_snapshot, vm_ref=made.vm_ref, snapshot_id=new_id(), name="user snapshot")
    assert snapshot.snapdeploy_id and snapshot.name == "user snapshot"
    both(ops.reconfigure_vm, vm_ref=made.vm_ref, num_cpus=3, cores_per_socket=1, memory_mb=3072)
    key, mac = both(ops.attach_nic, vm_ref=made.vm_ref, nic_id=nic_id, network="pg-web")
    assert mac.startswith("00:50:56:") and int(mac.split(":")[3], 16) <= 0x3F
    assert [n.key for n in devices.nics(vm_devices(session, made.vm_ref))] == [key]
    disk = both(ops.attach_disk, vm_ref=made.vm_ref, disk_path=volume.disk_path)
    assert disk.file == volume.disk_path and disk.unit_number == 1
    both(ops.extend_disk, disk_path=volume.disk_path, size_bytes=3 * 1024**3, vm_ref=made.vm_ref)
    with pytest.raises(InvalidRequest):
        ops.extend_disk(
            session,
            disk_path=volume.disk_path,
            size_bytes=1024**3,
            vm_ref=made.vm_ref,
            report=twice,
            timeout=TIMEOUT,
        )
    assert both(ops.power_on, vm_ref=made.vm_ref) == host_ref(session, "esx-1-1")
    both(ops.power_off, vm_ref=made.vm_ref)
    both(ops.detach_disk, vm_ref=made.vm_ref, disk_path=volume.disk_path)
    assert sha(sim.read(volume.disk_path)) == sha(DATA_S2), "detaching keeps the file"
    both(ops.detach_nic, vm_ref=made.vm_ref, mac=mac)
    both(ops.remove_snapshot, vm_ref=made.vm_ref, snapshot_ref=snapshot.ref)
    both(ops.destroy_vm, vm_ref=made.vm_ref)
    assert f"i-{vm_id}" not in vm_names(session)
    both(ops.delete_disk, disk_path=volume.disk_path)
    assert not sim.exists(volume.disk_path)
    both(ops.delete_template, template_ref=template.template_ref)
    assert template.template_name not in vm_names(session) and not sim.exists(template.disk_path)


def test_a_clone_named_like_another_objects_vm_is_a_duplicate(session, snapshots):
    template = seed(session, snapshots, snapshots.s1)
    taken = clone(session, template, new_id())
    with pytest.raises(VsphereError) as duplicate:
        ops.clone_from_snapshot(
            session,
            vm_id=new_id(),
            vm_name=taken.vm_name,
            template_ref=template.template_ref,
            base_snapshot_ref=template.base_snapshot_ref,
            host_ref=host_ref(session, "esx-1-1"),
            datastore="ds1",
            report=Recorder(),
            timeout=TIMEOUT,
        )
    assert duplicate.value.fault == "DuplicateName" and duplicate.value.code == 431


# -- failures ------------------------------------------------------------------------------------


def test_clone_without_disk_space_is_533_and_leaves_no_vm(sim, session, snapshots, report):
    template = seed(session, snapshots, snapshots.s1)
    vm_id = new_id()
    before = vm_names(session)
    sim.fail("CloneVM_Task", "InsufficientDiskSpace", message="ds1 is full")

    with pytest.raises(NoSpace) as no_space:
        clone(session, template, vm_id, report)

    assert no_space.value.fault == "NoDiskSpace" and no_space.value.code == 533
    assert not no_space.value.retryable
    assert str(no_space.value).startswith("NoDiskSpace on datastore ds1: ds1 is full")
    assert vm_names(session) == before
    [failed] = report.outcomes
    assert failed.state == "error" and failed.fault == "NoDiskSpace" and failed.fault_message == "ds1 is full"


def test_a_clone_that_fails_to_power_on_says_so_and_leaves_no_vm(sim, session, snapshots, report):
    template = seed(session, snapshots, snapshots.s1)
    vm_id = new_id()
    before = vm_names(session)
    sim.fail("PowerOnVM_Task", "InvalidPowerState")

    with pytest.raises(VsphereError) as failed:
        clone(session, template, vm_id, report, power_on=True)

    assert failed.value.fault == "InvalidPowerState"
    assert f"i-{vm_id} was cloned but did not power on" in str(failed.value)
    assert vm_names(session) == before, "the clone vCenter left, powered off, is destroyed"
    assert [o.name for o in report.outcomes] == ["CloneVM_Task", "Destroy_Task"]


@pytest.mark.parametrize("failing_step", ["CopyVirtualDisk_Task", "CreateSnapshot_Task"])
def test_a_failed_seed_leaves_nothing(sim, session, snapshots, report, failing_step):
    seed_id = new_id()
    name = f"snapdeploy-seed-{seed_id}"
    before = vm_names(session)
    sim.fail(failing_step, "NoDiskSpace")

    with pytest.raises(NoSpace):
        ops.seed_template(
            session,
            seed_id=seed_id,
            vm_ref=snapshots.vm_ref,
            snapshot_ref=snapshots.s1,
            datastore="ds1",
            report=report,
            timeout=TIMEOUT,
        )

    assert vm_names(session) == before
    assert not sim.exists(f"[ds1] {name}/root.vmdk")
    assert not sim.exists(f"[ds1] {name}"), "the seed folder is removed too"
    assert [o.name for o in report.outcomes if o.state == "error"] == [failing_step]


def test_attach_nic_to_an_unknown_port_group_is_431_naming_it(session, snapshots, report):
    made = clone(session, seed(session, snapshots, snapshots.s1), new_id())
    with pytest.raises(InvalidRequest, match="pg-nowhere") as refused:
        ops.attach_nic(
            session, made.vm_ref, nic_id=new_id(), network="pg-nowhere", report=report, timeout=TIMEOUT
        )
    assert refused.value.code == 431 and report.outcomes == []


def test_an_expired_session_is_renewed(sim, session, snapshots, report):
    made = clone(session, seed(session, snapshots, snapshots.s1), new_id())
    assert sim.control("expire-sessions")["expired"] >= 1

    host = ops.power_on(session, made.vm_ref, report=report, timeout=TIMEOUT)

    assert host is not None and report.names == ["PowerOnVM_Task"]
    ops.power_off(session, made.vm_ref, report=report, timeout=TIMEOUT)


def test_twin_clones_of_one_vm_make_one_vm(sim, session, snapshots):
    """Two deliveries of the same CloneFromSnapshot at once: the name is the lock."""
    template = seed(session, snapshots, snapshots.s1)
    vm_id = new_id()
    sim.slow("CloneVM_Task", 300)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: clone(session, template, vm_id), range(2)))

    assert results[0] == results[1]
    assert vm_names(session).count(f"i-{vm_id}") == 1


def test_threads_renew_an_expired_session_once(sim, session, snapshots):
    generation = session._generation
    sim.control("expire-sessions")
    vm = inventory.vm_by_ref(session, snapshots.vm_ref)

    with ThreadPoolExecutor(8) as pool:
        shapes = list(
            pool.map(lambda _: inventory.require_vm(session, vm, ["config.hardware.numCPU"]), range(8))
        )

    assert len({str(shape) for shape in shapes}) == 1
    assert session._generation == generation + 1, "one login for all threads"


def test_a_vm_snapshots_configuration_is_read_once(sim, session, snapshots):
    first = ops.get_snapshot_config(session, snapshots.vm_ref, snapshots.s1)
    before = sum(sim.control("state")["requests"].values())
    again = ops.get_snapshot_config(session, snapshots.vm_ref, snapshots.s1)
    assert again == first
    assert sum(sim.control("state")["requests"].values()) == before, "no vCenter call the second time"


# -- reporting -------------------------------------------------------------------------------------


def test_every_task_of_a_deployment_is_reported_with_its_duration(sim, session, snapshots, report):
    sim.slow("CloneVM_Task", 300)
    template = seed(session, snapshots, snapshots.s2, report)
    made = clone(session, template, new_id(), report)
    ops.reconfigure_vm(
        session, made.vm_ref, num_cpus=4, cores_per_socket=2, memory_mb=4096, report=report, timeout=TIMEOUT
    )
    ops.attach_nic(session, made.vm_ref, nic_id=new_id(), network="pg-db", report=report, timeout=TIMEOUT)
    ops.power_on(session, made.vm_ref, report=report, timeout=TIMEOUT)

    assert report.names == [
        "CopyVirtualDisk_Task",
        "CreateVM_Task",
        "CreateSnapshot_Task",
        "CloneVM_Task",
        "ReconfigVM_Task",
        "ReconfigVM_Task",
        "PowerOnVM_Task",
    ]
    for outcome in report.outcomes:
        assert outcome.state == "success" and outcome.fault is None
        assert outcome.duration_ms is not None and outcome.duration_ms >= 0
        assert (
            outcome.started_at.utcoffset().total_seconds() == 0 and outcome.completed_at >= outcome.started_at
        )
    cloned = report.outcomes[3]
    assert cloned.duration_ms >= 250 and cloned.entity == template.template_ref
    assert report.outcomes[-1].entity == made.vm_ref and report.outcomes[-1].entity_name == made.vm_name
    ops.power_off(session, made.vm_ref, report=report, timeout=TIMEOUT)
