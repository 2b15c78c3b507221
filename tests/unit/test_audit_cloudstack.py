"""The CloudStack form of an ActionEvent, checked against what CloudStack's own tests assert.

``server/src/test/java/com/cloud/event/ActionEventUtilsTest.java`` (entity = the resource type's
API name, entityuuid, status per phase, first-class entities by class name, a VM snapshot's
event under its VM), ``ActionEventInterceptor`` (the texts) and ``RabbitMQEventBus`` (the
routing key).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from contracts.envelope import Actor, Envelope
from contracts.events import ActionEvent, VcenterTask
from contracts.planner import CreateVmSnapshot, CreateVmSnapshotSucceeded, ImportVirtualMachineSucceeded
from contracts.topology import EVENTS
from services.audit.actions import phase_of, snapshots_started, vm_snapshots_named
from services.audit.cloudstack import (
    SYSTEM_ACCOUNT_ID,
    SYSTEM_USER_ID,
    Action,
    aborted,
    routing_key,
    to_cloudstack,
)
from services.audit.rows import to_row

USER = uuid.uuid4()
ACTOR = Actor(account_id=uuid.uuid4(), role="user", user_id=USER)
OWNER = uuid.uuid4()
WHEN = datetime(2026, 1, 15, 11, 30, 5, tzinfo=timezone(timedelta(hours=1)))


def action_row(
    event_type="VM.CREATE", state="Completed", resource_type="VirtualMachine", actor=ACTOR, **extra
):
    fields = {"resource_id": uuid.uuid4(), "description": "deploying VM web-1", **extra}
    action = ActionEvent(
        event_type=event_type, state=state, resource_type=resource_type, resource_name="web-1",
        account_id=OWNER, **fields,
    )  # fmt: skip
    envelope = Envelope.wrap(action, source="planner", actor=actor, correlation_id=uuid.uuid4())
    envelope = envelope.model_copy(update={"occurred_at": WHEN})
    return to_row(envelope, exchange=EVENTS.name, routing_key="planner.action_event.vm_create")


def one(action: Action) -> dict:
    [event] = to_cloudstack(action)
    return event.body


def test_vm_start_in_cloudstack_format():  # testPublishedEventResource
    row = action_row("VM.START", description="starting VM web-1")
    [event] = to_cloudstack(phase_of(row))
    vm = str(row.resource_id)
    assert event.routing_key == f"management-server.ActionEvent.VM-START.VirtualMachine.{vm}"
    assert event.body == {
        "user": str(USER),
        "account": str(OWNER),
        "event": "VM.START",
        "status": "Completed",
        "entity": "VirtualMachine",
        "entityuuid": vm,
        "VirtualMachine": vm,
        "description": "Successfully completed starting VM web-1",
        "eventDateTime": "2026-01-15 10:30:05 +0000",
    }
    assert json.loads(event.to_bytes()) == event.body
    assert event.message_id != row.message_id, "its own id, derived from the action's"
    assert to_cloudstack(phase_of(row))[0].message_id == event.message_id, "deterministic"


@pytest.mark.parametrize("state", ["Scheduled", "Started"])
def test_scheduled_and_started_keep_their_status(state):  # testScheduledEvent, testNestedEvent
    body = one(phase_of(action_row("VM.START", state, description="starting VM web-1")))
    assert body["status"] == state
    assert body["description"] == ("Starting VM web-1" if state == "Started" else "starting VM web-1")


def test_the_first_phase_of_a_create_is_preceded_by_created():  # testCreatedEvent
    first = Action(**{**phase_of(action_row(state="Scheduled")).__dict__, "creates": True})
    created, scheduled = to_cloudstack(first)
    assert (created.body["status"], scheduled.body["status"]) == ("Created", "Scheduled")
    assert created.body["description"] == "Successfully created entity for deploying VM web-1"
    assert created.routing_key == scheduled.routing_key
    assert created.message_id != scheduled.message_id


def test_later_phases_repeat_the_actions_description_with_their_own_as_details():
    completed = Action(
        **{
            **phase_of(action_row(description="web-1 created on esx-1")).__dict__,
            "description": "deploying web-1",
        }
    )
    assert one(completed)["description"] == "Successfully completed deploying web-1. web-1 created on esx-1"


def test_failed_action_is_completed_with_error_while_as_cloudstack_reports_it():
    failed = phase_of(action_row(state="Failed", level="ERROR", description="ds1 is full"))
    failed = Action(**{**failed.__dict__, "description": "deploying VM web-1"})
    body = one(failed)
    assert body["status"] == "Completed"
    assert body["description"] == "Error while deploying VM web-1. ds1 is full"


def test_an_action_its_failed_job_left_open_is_closed_with_error_while():
    volume = phase_of(action_row("VOLUME.CREATE", "Started", "Volume", description="root volume on ds1"))
    failure = phase_of(action_row(state="Failed", level="ERROR"))
    closing = aborted(Action(**{**volume.__dict__, "description": volume.text}), failure)
    assert closing.routing_key == f"management-server.ActionEvent.VOLUME-CREATE.Volume.{volume.resource_id}"
    assert (closing.body["status"], closing.body["description"]) == (
        "Completed",
        "Error while root volume on ds1",
    )
    assert closing.body["Volume"] == str(volume.resource_id)


@pytest.mark.parametrize(
    ("event_type", "resource_type", "entity", "key"),
    [
        ("VOLUME.CREATE", "Volume", "Volume", "Volume"),
        ("NIC.CREATE", "Nic", "Nic", "Nic"),
        ("TEMPLATE.CREATE", "Template", "Template", "VirtualMachineTemplate"),
        ("TEMPLATE.CREATE", "VirtualMachineTemplate", "Template", "VirtualMachineTemplate"),
        ("SNAPSHOT.CREATE", "Snapshot", "Snapshot", "Snapshot"),  # testSnapshotEventResource
        ("VM.IMPORT", "UserVm", "VirtualMachine", "VirtualMachine"),
        ("SEED.CREATE", "SeededTemplate", "SeededTemplate", "SeededTemplate"),
    ],
)
def test_entity_is_the_resource_types_api_name(event_type, resource_type, entity, key):
    row = action_row(event_type, "Completed", resource_type)
    [event] = to_cloudstack(phase_of(row))
    assert (event.body["entity"], event.body["entityuuid"]) == (entity, str(row.resource_id))
    assert event.body[key] == str(row.resource_id)
    assert event.routing_key.endswith(f".{entity}.{row.resource_id}")


def test_a_vm_snapshot_event_is_filed_under_its_vm():  # testVmSnapshotEventResource
    row = action_row("VMSNAPSHOT.CREATE", "Completed", "VMSnapshot", description="snapshot of web-1")
    vm = uuid.uuid4()
    [event] = to_cloudstack(Action(**{**phase_of(row).__dict__, "vm_id": vm}))
    assert event.routing_key == f"management-server.ActionEvent.VMSNAPSHOT-CREATE.VirtualMachine.{vm}"
    assert (event.body["entity"], event.body["entityuuid"]) == ("VirtualMachine", str(vm))
    assert (event.body["VirtualMachine"], event.body["VMSnapshot"]) == (str(vm), str(row.resource_id))
    unknown_vm = one(phase_of(row))  # CloudStack keeps the snapshot when its parent is not found
    assert (unknown_vm["entity"], unknown_vm["entityuuid"]) == ("VmSnapshot", str(row.resource_id))


def test_the_vms_of_vm_snapshots_are_learnt_from_the_planners_messages():
    vm, s1, s2, s3 = (uuid.uuid4() for _ in range(4))
    created = Envelope.wrap(CreateVmSnapshot(vm_snapshot_id=s1, vm_id=vm, name="S1"), source="api")
    done = created.caused(
        CreateVmSnapshotSucceeded(vm_snapshot_id=s1, vm_id=vm, parent_id=None), source="planner"
    )
    adopted = Envelope.wrap(
        ImportVirtualMachineSucceeded(vm_id=vm, vm_snapshot_ids=[s2, s3]), source="planner"
    )
    rows = [to_row(done, exchange=EVENTS.name, routing_key="planner.create_vm_snapshot_succeeded")]
    rows.append(to_row(adopted, exchange=EVENTS.name, routing_key="planner.import_virtual_machine_succeeded"))
    assert vm_snapshots_named(rows) == {s1: vm, s2: vm, s3: vm}


def test_a_command_alone_names_no_vm_for_a_snapshot_only_the_planners_start_of_it_does():
    """Regression (contract fuzz): a CreateVmSnapshot command that the planner refused (invalid, or
    not its sender's to send) wrote the audit's snapshot -> VM map, and could re-file an existing
    snapshot's CloudStack events under any VM it named."""
    vm, snapshot = uuid.uuid4(), uuid.uuid4()
    command = Envelope.wrap(CreateVmSnapshot(vm_snapshot_id=snapshot, vm_id=vm, name="S1"), source="api")
    forged = command.caused(CreateVmSnapshotSucceeded(vm_snapshot_id=snapshot, vm_id=vm, parent_id=None),
                            source="producer")  # fmt: skip
    rows = [
        to_row(command, exchange="snapdeploy.commands", routing_key="planner.create_vm_snapshot"),
        to_row(forged, exchange="snapdeploy.commands", routing_key="planner.create_vm_snapshot"),
    ]
    assert vm_snapshots_named(rows) == {} and snapshots_started(rows) == {}
    started = command.caused(
        ActionEvent(event_type="VMSNAPSHOT.CREATE", state="Started", level="INFO", resource_type="VMSnapshot",
                    resource_id=snapshot, resource_name="S1", description="snapshot of web-1"),
        source="planner",
    )  # fmt: skip
    rows.append(to_row(started, exchange=EVENTS.name, routing_key="planner.action_event.vmsnapshot_create"))
    assert snapshots_started(rows) == {command.message_id: snapshot}


def test_an_action_on_no_resource_is_keyed_with_wildcards():
    row = action_row("ZONE.SYNC", "Completed", None, resource_id=None, description="synced zone1")
    [event] = to_cloudstack(phase_of(row))
    assert event.routing_key == "management-server.ActionEvent.ZONE-SYNC.*.*"
    assert "entity" not in event.body and "entityuuid" not in event.body
    assert routing_key("VM.SNAPSHOT.REVERT", "Virtual.Machine", "") == (
        "management-server.ActionEvent.VM-SNAPSHOT-REVERT.Virtual-Machine.*"
    )


def test_user_is_the_calling_users_uuid_and_work_nobody_asked_for_is_the_systems():
    assert one(phase_of(action_row()))["user"] == str(USER)
    system = one(phase_of(action_row(actor=Actor())))
    assert system["user"] == str(SYSTEM_USER_ID)
    assert system["account"] == str(OWNER), "the owner of the resource, whoever asked"
    ownerless = phase_of(action_row(actor=Actor()))
    assert one(Action(**{**ownerless.__dict__, "account_id": None}))["account"] == str(SYSTEM_ACCOUNT_ID)


def test_only_action_events_are_republished():
    task = VcenterTask(
        zone_id="z", task_key="t", name="CloneVM_Task", state="success",
        started_at=None, completed_at=None, duration_ms=None,
    )  # fmt: skip
    envelope = Envelope.wrap(task, source="agent")
    row = to_row(envelope, exchange=EVENTS.name, routing_key="agent.vcenter_task.success")
    assert row.event_type is None, "republish reads only rows that parsed as ActionEvent"
    broken = envelope.model_copy(update={"type": "ActionEvent", "payload": {"event_type": "VM.CREATE"}})
    assert to_row(broken, exchange=EVENTS.name, routing_key="x").event_type is None
