"""The planner's handlers as histories, in memory: given these commands, when this reply arrives,
expect these commands, then this answer (cosmicpython's tests/unit/test_handlers.py).

Every step of the deployment succeeds or fails here, and each failure's compensation is the
undo of the steps completed before it, last first.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import structlog

from contracts import agent, storage
from contracts import planner as cmd
from contracts.catalogue import CATALOGUE, failed_reply
from contracts.envelope import Actor, Envelope
from contracts.vsphere import DiskConfig, VmSnapshotConfig
from services.planner import flows, steps
from services.planner import handlers as planner_handlers
from services.planner.common import Planner
from shared.messaging import call_handler
from tests.unit.planner_memory import MemoryPlanner

SAMPLES = Path(__file__).parents[2] / "contracts" / "samples"
ACCOUNT = uuid.UUID("00000000-0000-4000-8000-00000000a001")
SOURCE_VM, S1, SMALL, WEB, HOST = (uuid.uuid4() for _ in range(5))
ROOT = DiskConfig(
    key=2000, file="[ds1] src/src.vmdk", datastore="ds1", size_bytes=2**30, controller_key=1000,
    controller_type="scsi", unit_number=0,
)  # fmt: skip
CONFIG = VmSnapshotConfig(
    num_cpus=2, cores_per_socket=1, memory_mb=512, guest_id="otherGuest64", disks=[ROOT], nics=[],
    has_memory_dump=False,
)  # fmt: skip
PLANNER = Planner()


def sample(service: str, type_name: str, **update):
    """The golden sample of a reply, with the fields a test cares about."""
    spec = CATALOGUE.get(service, type_name)
    payload = json.loads((SAMPLES / service / f"{type_name}.json").read_text())["payload"]
    return spec.model.model_validate({**payload, **update})


class History:
    def __init__(self, memory: MemoryPlanner):
        self.memory = memory
        self.planner = Planner()  # its own: what one test's planner learns (seeds) stays there
        self.registry = planner_handlers.handlers(self.planner)

    async def command(self, command, actor: Actor | None = None):
        envelope = Envelope.wrap(
            command, source="test", correlation_id=uuid.uuid4(), actor=actor or Actor(role="admin")
        )
        ctx = self.memory.context(envelope)
        spec = CATALOGUE.get(command.service, command.type_name())
        await call_handler(self.registry[type(command)], spec, command, ctx)
        return ctx

    async def reply(self, reply) -> None:
        """The reply to the last command the planner sent."""
        envelope = self.memory.sent[-1].caused(reply, source="agent")
        await self.registry[type(reply)](
            reply,
            self.memory.context(envelope),
        )

    async def fail(
        self, command_type: type, text: str = "vCenter said no", fault: str | None = "SystemError"
    ):
        await self.reply(failed_reply(command_type)(error_code=530, error_text=text, fault=fault))

    def sent(self) -> list[str]:
        return [e.type for e in self.memory.sent]


@pytest.fixture(autouse=True)
def quiet_logs():
    """Handlers log refusals; captured here, whatever another test did to the log's stream."""
    with structlog.testing.capture_logs():
        yield


@pytest.fixture
def memory(monkeypatch) -> MemoryPlanner:
    memory = MemoryPlanner()
    memory.install(monkeypatch)
    memory.hosts[HOST] = {"uuid": HOST, "ref": "host-1", "name": "esx-1-1", "zone_id": "zone1",
                          "pools": ["ds1"], "memory_bytes": 2**32, "memory_used_bytes": 0}  # fmt: skip
    memory.offerings[SMALL] = {"uuid": SMALL, "name": "small", "cpu_number": 2, "cpu_speed_mhz": 100,
                               "memory_mb": 128}  # fmt: skip
    memory.networks[WEB] = {"uuid": WEB, "name": "pg-web", "zone_id": "zone1"}
    memory.instances[SOURCE_VM] = {"uuid": SOURCE_VM, "name": "src", "account_id": ACCOUNT,
                                   "zone_id": "zone1",
                                   "state": "Stopped", "vm_ref": "vm-1", "pool": "ds1", "host_uuid": HOST,
                                   "reserved": False, "memory_mb": 128}  # fmt: skip
    memory.snapshots[S1] = {"uuid": S1, "instance_uuid": SOURCE_VM, "name": "S1", "state": "Ready",
                            "snapshot_ref": "snap-1", "config": CONFIG.model_dump(mode="json"),
                            "parent_uuid": None, "current": True}  # fmt: skip
    return memory


def deploy_request(**kw) -> cmd.DeployVirtualMachine:
    return cmd.DeployVirtualMachine(
        vm_id=uuid.uuid4(),
        vm_snapshot_id=S1,
        service_offering_id=SMALL,
        network_ids=[WEB],
        name="web-1",
        **kw,
    )


def cloned(sent: Envelope, mac: str = "00:50:56:00:00:01"):
    """The clone's reply: the VM, its root disk on the seed's, the NICs it was asked for, and
    powered on when asked."""
    nics = [
        {"nic_id": n["nic_id"], "device_key": 4000 + i, "mac": mac}
        for i, n in enumerate(sent.payload["nics"])
    ]
    return sample("agent", "CloneFromSnapshotSucceeded", vm_ref="vm-99",
                  root_disk=ROOT.model_copy(update={"parent_file": "[ds]"}), nics=nics,
                  powered_on=sent.payload["power_on"], host_ref="host-1")  # fmt: skip


# The deployment's replies, step by step, each with the command it answers (and given it).
HAPPY = [
    (agent.GetVmSnapshotConfigs, lambda _: sample("agent", "GetVmSnapshotConfigsSucceeded", config=CONFIG)),
    (storage.SeedTemplateFromVmSnapshot, lambda _: sample("storage", "SeedTemplateFromVmSnapshotSucceeded")),
    (agent.CloneFromSnapshot, cloned),
    (storage.RecordVirtualMachine, lambda _: sample("storage", "RecordVirtualMachineSucceeded")),
]  # fmt: skip


async def deploy_until(history: History, request, steps_that_succeed: int) -> None:
    await history.command(request)
    for command_type, reply in HAPPY[:steps_that_succeed]:
        assert history.sent()[-1] == command_type.type_name()
        await history.reply(reply(history.memory.sent[-1]))


async def test_given_a_deployment_when_every_step_succeeds_the_vm_runs_and_the_request_is_answered(memory):
    history, request = History(memory), deploy_request()
    await deploy_until(history, request, len(HAPPY))

    assert history.sent() == [c.type_name() for c, _ in HAPPY], (
        "shaped, with its NICs, powered on: no Reconfigure, AttachNic or PowerOnVm"
    )
    [clone] = [m for m in memory.sent if m.type == "CloneFromSnapshot"]
    assert clone.payload["shape"] == {"num_cpus": 2, "cores_per_socket": 1, "memory_mb": 128, "cpu_mhz": 100}
    assert [n["network"] for n in clone.payload["nics"]] == ["pg-web"]
    assert clone.payload["power_on"] is True
    [answer] = memory.answers
    assert isinstance(answer, cmd.DeployVirtualMachineSucceeded) and answer.host_id == HOST
    vm = memory.instances[request.vm_id]
    assert (vm["state"], vm["vm_ref"], vm["reserved"]) == ("Running", "vm-99", True)
    assert [n["mac"] for n in memory.nics.values()] == ["00:50:56:00:00:01"]
    assert memory.hosts[HOST]["memory_used_bytes"] == 128 * 2**20


async def test_once_a_snapshot_is_seeded_its_deployments_take_its_stored_configuration(memory):
    history = History(memory)
    await deploy_until(history, deploy_request(), len(HAPPY))
    before = len(memory.sent)
    second = deploy_request().model_copy(update={"vm_id": uuid.uuid4(), "name": "web-2"})
    await history.command(second)
    assert history.sent()[before:] == ["SeedTemplateFromVmSnapshot"], "no configuration read"
    root = memory.sent[-1].payload["root_volume"]
    assert (root["vm_id"], root["size_bytes"]) == (str(second.vm_id), ROOT.size_bytes)


@pytest.mark.parametrize(
    ("failing", "doing", "undone"),
    [
        (0, "reading the VM snapshot's configuration", []),
        # the root volume is allocated with the seeding request: undone even when the seeding fails
        (1, "seeding the template", ["DestroyVmVolumes"]),
        (2, "cloning", ["DestroyVmVolumes"]),
        (3, "recording the root volume", ["DestroyVm", "DestroyVmVolumes"]),
    ],
)
async def test_given_a_deployment_when_a_step_fails_what_was_made_is_undone_last_first(
    memory, failing, doing, undone
):
    history, request = History(memory), deploy_request()
    await deploy_until(history, request, failing)
    before = len(memory.sent)

    await history.fail(HAPPY[failing][0], text="NoDiskSpace: the datastore is full", fault="NoDiskSpace")
    for _ in undone:  # each undo's reply moves on to the next
        await history.reply(sample("agent", "DestroyVmSucceeded"))

    assert history.sent()[before:] == undone
    [answer] = memory.answers
    assert answer.type_name() == "DeployVirtualMachineFailed"
    assert (
        answer.error_text == f"deployment of web-1 failed while {doing}: NoDiskSpace: the datastore is full"
    )
    assert answer.fault == "NoDiskSpace"
    vm = memory.instances[request.vm_id]
    assert (vm["state"], vm["reason"]) == ("Error", answer.error_text)
    assert memory.hosts[HOST]["memory_used_bytes"] == 0, "the host's reservation is given back"
    assert {n["state"] for n in memory.nics.values()} == {"Released"}


async def test_a_failing_undo_does_not_stop_the_next_one(memory):
    history, request = History(memory), deploy_request()
    await deploy_until(history, request, 3)
    await history.fail(storage.RecordVirtualMachine)
    await history.fail(agent.DestroyVm, text="the VM is gone already")
    assert history.sent()[-2:] == ["DestroyVm", "DestroyVmVolumes"]
    await history.reply(sample("storage", "DestroyVmVolumesSucceeded"))
    assert memory.answers[-1].type_name() == "DeployVirtualMachineFailed"


async def test_a_host_without_room_fails_the_placement_step_not_the_configuration_read(memory):
    memory.hosts[HOST]["memory_bytes"] = 64 * 2**20
    history, request = History(memory), deploy_request()
    await deploy_until(history, request, 1)

    assert history.sent() == ["GetVmSnapshotConfigs"], "nothing is seeded, allocated or cloned"
    [answer] = memory.answers
    assert answer.error_code == 533
    assert answer.error_text.startswith("deployment of web-1 failed while reserving capacity on a host: ")


async def test_a_template_deployment_with_no_host_room_is_answered_at_once_naming_the_placement(memory):
    """From a template nothing is read or seeded first: placement is the first step, done at once."""
    memory.hosts[HOST]["memory_bytes"] = 64 * 2**20
    template_id = uuid.uuid4()
    memory.templates[template_id] = {"uuid": template_id, "name": "tpl", "zone_id": "zone1",
                                     "ref": "vm-t", "base_snapshot_ref": "snap-t", "pool": "ds1",
                                     "root_size": 2**30}  # fmt: skip
    history = History(memory)
    await history.command(
        cmd.DeployVirtualMachine(vm_id=uuid.uuid4(), template_id=template_id, service_offering_id=SMALL)
    )
    assert history.sent() == []
    [answer] = memory.answers
    assert answer.error_code == 533 and "failed while reserving capacity on a host" in answer.error_text


async def test_an_offering_that_does_not_match_the_configuration_read_fails_that_step(memory):
    memory.snapshots[S1]["config"] = None  # not known before: checked once it is read
    history, request = History(memory), deploy_request()
    await history.command(request)
    await history.reply(
        sample("agent", "GetVmSnapshotConfigsSucceeded", config=CONFIG.model_copy(update={"num_cpus": 4}))
    )
    [answer] = memory.answers
    assert answer.error_code == 431
    assert (
        "failed while reading the VM snapshot's configuration: service offering small has 2 vCPUs"
        in answer.error_text
    )


async def test_a_step_whose_reply_never_comes_fails_by_name_and_is_compensated(memory):
    history, request = History(memory), deploy_request()
    await deploy_until(history, request, 2)  # the clone was sent
    flow, process = flows.load(await memory.saga_running(memory, "deploy", request.vm_id))
    ctx = memory.context(memory.sent[-1])
    await steps.timed_out(flow, process, ctx, PLANNER)
    assert history.sent()[-1] == "DestroyVmVolumes"
    await history.reply(sample("storage", "DestroyVmVolumesSucceeded"))
    assert "failed while cloning: no reply within the step's deadline" in memory.answers[-1].error_text


async def test_a_reply_of_another_type_than_the_step_awaits_moves_nothing(memory):
    history, request = History(memory), deploy_request()
    await history.command(request)
    await history.reply(sample("agent", "PowerOnVmSucceeded"))  # not the configuration
    assert memory.answers == [] and history.sent() == ["GetVmSnapshotConfigs"]


NIC = uuid.UUID("5f0c3a52-0000-4000-8000-000000000001")


async def test_a_deployment_stored_before_typed_state_carries_on(memory):
    """A row of the old flat shape, awaiting a clone sent without shape or NICs: the reply moves it
    to reconfigure, and each network gets its AttachNic after the root volume is recorded."""
    vm_id = uuid.uuid4()
    memory.instances[vm_id] = {"uuid": vm_id, "name": "old", "state": "Starting", "reserved": True,
                               "host_uuid": HOST, "root_volume_id": uuid.uuid4(),
                               "memory_mb": 128}  # fmt: skip
    legacy = {
        "source_vm_ref": "vm-1", "snapshot_ref": "snap-1", "snapshot_id": str(S1), "zone": "zone1",
        "name": "old", "account": str(ACCOUNT), "pool": "ds1",
        "offering": {"name": "small", "cpu_number": 2, "cpu_speed_mhz": 100, "memory_mb": 128},
        "networks": [{"nic_id": str(NIC), "network": "pg-web", "network_id": str(WEB)}],
        "host_id": None, "template_id": None, "disk_offering_id": None,
        "cores_per_socket": 1, "root_size": 2**30,
        "host": {"uuid": str(HOST), "ref": "host-1", "name": "esx-1-1"},
        "seed": {"id": str(uuid.uuid4()), "template_ref": "vm-7", "base": "snap-7"},
        "root_volume": str(memory.instances[vm_id]["root_volume_id"]), "root_allocated": True,
    }  # fmt: skip
    memory.sagas[("deploy", vm_id)] = {"kind": "deploy", "resource_id": vm_id, "step": "clone",
                                       "state": "running", "data": legacy, "job_id": None,
                                       "resends": 0}  # fmt: skip
    clone_sent = Envelope.wrap(agent.CloneFromSnapshot(
        zone_id="zone1", vm_id=str(vm_id), vm_name="old", template_ref="vm-7", base_snapshot_ref="snap-7",
        host_ref="host-1", datastore="ds1"), source="planner")  # fmt: skip
    memory.sent.append(clone_sent)
    memory.awaited[clone_sent.message_id] = ("deploy", vm_id)
    memory.nics[NIC] = {"instance_uuid": vm_id, "network_uuid": WEB, "order": 0, "state": "Allocated"}

    history = History(memory)
    await history.reply(
        sample("agent", "CloneFromSnapshotSucceeded", vm_ref="vm-42", root_disk=ROOT, nics=[],
               powered_on=False, host_ref=None)
    )  # fmt: skip
    assert history.sent()[-1] == "ReconfigureVm"
    assert memory.sent[-1].payload["vm_ref"] == "vm-42"
    row = memory.sagas[("deploy", vm_id)]
    assert row["data"]["v"] == 2 and row["data"]["completed"][-1] == "clone", "stored typed from now on"
    await history.reply(sample("agent", "ReconfigureVmSucceeded"))
    await history.reply(sample("storage", "RecordVirtualMachineSucceeded"))
    assert history.sent()[-1] == "AttachNic" and memory.sent[-1].payload["nic_id"] == str(NIC)
    await history.reply(sample("agent", "AttachNicSucceeded", mac="00:50:56:00:00:07"))
    assert history.sent()[-1] == "PowerOnVm"
    assert memory.nics[NIC]["mac"] == "00:50:56:00:00:07"


# -- lifecycle and snapshots -----------------------------------------------------------------------


def running_vm(memory) -> uuid.UUID:
    vm_id = uuid.uuid4()
    memory.instances[vm_id] = {"uuid": vm_id, "name": "web-2", "account_id": ACCOUNT, "zone_id": "zone1",
                               "state": "Running", "vm_ref": "vm-5", "pool": "ds1", "host_uuid": HOST,
                               "reserved": True, "memory_mb": 128}  # fmt: skip
    memory.hosts[HOST]["memory_used_bytes"] = 128 * 2**20
    return vm_id


async def test_a_reboot_powers_off_then_on_and_keeps_the_host(memory):
    history, vm_id = History(memory), running_vm(memory)
    await history.command(cmd.RebootVirtualMachine(vm_id=vm_id))
    await history.reply(sample("agent", "PowerOffVmSucceeded"))
    await history.reply(sample("agent", "PowerOnVmSucceeded"))
    assert history.sent() == ["PowerOffVm", "PowerOnVm"]
    assert memory.answers == [cmd.RebootVirtualMachineSucceeded(vm_id=vm_id)]
    assert (memory.instances[vm_id]["state"], memory.hosts[HOST]["memory_used_bytes"]) == (
        "Running",
        128 * 2**20,
    )


async def test_a_reboot_that_cannot_power_on_again_leaves_the_vm_stopped_and_its_host_free(memory):
    history, vm_id = History(memory), running_vm(memory)
    await history.command(cmd.RebootVirtualMachine(vm_id=vm_id))
    await history.reply(sample("agent", "PowerOffVmSucceeded"))
    await history.fail(agent.PowerOnVm, fault="InvalidPowerState")
    [answer] = memory.answers
    assert answer.error_text.startswith("reboot of web-2 failed while powering on")
    assert (memory.instances[vm_id]["state"], memory.hosts[HOST]["memory_used_bytes"]) == ("Stopped", 0)


async def test_a_snapshot_hangs_from_the_parent_vcenter_names(memory):
    s0 = uuid.uuid4()
    memory.snapshots[s0] = {**memory.snapshots[S1], "uuid": s0, "snapshot_ref": "snap-0", "current": False}
    history, s2 = History(memory), uuid.uuid4()
    await history.command(cmd.CreateVmSnapshot(vm_snapshot_id=s2, vm_id=SOURCE_VM, name="S2"))
    taken = sample("agent", "CreateVmSnapshotSucceeded")
    taken = taken.model_copy(
        update={"snapshot": taken.snapshot.model_copy(update={"ref": "snap-2", "parent_ref": "snap-0"})}
    )
    await history.reply(taken)
    await history.reply(sample("agent", "GetVmSnapshotConfigsSucceeded", config=CONFIG))
    await history.reply(sample("storage", "RecordVmSnapshotSucceeded"))
    assert memory.answers == [cmd.CreateVmSnapshotSucceeded(vm_snapshot_id=s2, vm_id=SOURCE_VM, parent_id=s0)]
    assert [k for k, s in memory.snapshots.items() if s["current"]] == [s2]


async def test_a_snapshot_storage_will_not_record_is_removed_from_vcenter(memory):
    history, s2 = History(memory), uuid.uuid4()
    await history.command(cmd.CreateVmSnapshot(vm_snapshot_id=s2, vm_id=SOURCE_VM, name="S2"))
    taken = sample("agent", "CreateVmSnapshotSucceeded")
    await history.reply(
        taken.model_copy(update={"snapshot": taken.snapshot.model_copy(update={"parent_ref": "snap-1"})})
    )
    await history.reply(sample("agent", "GetVmSnapshotConfigsSucceeded", config=CONFIG))
    await history.fail(storage.RecordVmSnapshot)
    assert history.sent()[-1] == "RemoveVmSnapshot"
    await history.reply(sample("agent", "RemoveVmSnapshotSucceeded"))
    assert memory.snapshots[s2]["state"] == "Error"
    assert [k for k, s in memory.snapshots.items() if s["current"]] == [S1], "its parent is current again"
    assert "failed while recording it with storage" in memory.answers[-1].error_text


async def test_a_revert_makes_the_snapshot_current_and_a_vm_left_off_stopped(memory):
    history, vm_id = History(memory), running_vm(memory)
    s = uuid.uuid4()
    memory.snapshots[s] = {
        **memory.snapshots[S1],
        "uuid": s,
        "instance_uuid": vm_id,
        "snapshot_ref": "snap-9",
    }
    await history.command(cmd.RevertToVmSnapshot(vm_snapshot_id=s))
    assert memory.sent[-1].payload["snapshot_ref"] == "snap-9"
    await history.reply(sample("agent", "RevertToVmSnapshotSucceeded", power_state="poweredOff"))
    assert memory.answers == [cmd.RevertToVmSnapshotSucceeded(vm_id=vm_id, vm_snapshot_id=s)]
    assert memory.snapshots[s]["current"] and memory.instances[vm_id]["state"] == "Stopped"
    assert memory.hosts[HOST]["memory_used_bytes"] == 0


async def test_a_revert_to_another_accounts_snapshot_is_531_and_to_an_unknown_one_431(memory):
    history = History(memory)
    stranger = Actor(account_id=uuid.uuid4(), role="user")
    ctx = await history.command(cmd.RevertToVmSnapshot(vm_snapshot_id=S1), actor=stranger)
    assert ctx.outgoing[0].envelope.payload["error_code"] == 531
    ctx = await history.command(cmd.RevertToVmSnapshot(vm_snapshot_id=uuid.uuid4()))
    assert ctx.outgoing[0].envelope.payload["error_code"] == 431
    assert history.sent() == []


@pytest.mark.parametrize("state", ["Running", "Error", "Destroyed"])
async def test_another_accounts_vm_cannot_be_destroyed_whatever_its_state(memory, state):
    history, vm_id = History(memory), running_vm(memory)
    memory.instances[vm_id]["state"] = state
    stranger = Actor(account_id=uuid.uuid4(), role="user")
    ctx = await history.command(cmd.DestroyVirtualMachine(vm_id=vm_id, expunge=True), actor=stranger)
    assert ctx.outgoing[0].envelope.payload["error_code"] == 531
    assert history.sent() == [] and memory.instances[vm_id]["state"] == state


def test_the_replies_the_planner_listens_to_are_those_its_steps_await():
    listened = {t.type_name() for t in steps.replies_of(flows.FLOWS.values())}
    assert {"CloneFromSnapshotFailed", "DestroyVmSucceeded", "RevertToVmSnapshotSucceeded"} <= listened
    assert "SeedTemplateSucceeded" not in listened, "storage's command to the agent, not the planner's"
