"""The CloudStack form of an ActionEvent: CloudStack's routing key and body fields."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

from contracts.envelope import Actor, Envelope
from contracts.events import ActionEvent, VcenterTask
from contracts.topology import EVENTS
from services.audit.cloudstack import entity_of, routing_key, to_cloudstack
from services.audit.rows import to_row

ACTOR = Actor(account_id=uuid.uuid4(), role="user")
OWNER = uuid.uuid4()


def action_row(event_type="VM.CREATE", state="Completed", resource_type="VirtualMachine", **extra):
    action = ActionEvent(
        event_type=event_type, state=state, resource_type=resource_type, resource_id=uuid.uuid4(),
        resource_name="web-1", account_id=OWNER, description="deploying VM web-1", **extra,
    )  # fmt: skip
    envelope = Envelope.wrap(action, source="planner", actor=ACTOR, correlation_id=uuid.uuid4())
    when = datetime(2026, 1, 15, 11, 30, 5, tzinfo=timezone(timedelta(hours=1)))
    envelope = envelope.model_copy(update={"occurred_at": when})
    return to_row(envelope, exchange=EVENTS.name, routing_key="planner.action_event.vm_create")


def test_vm_create_in_cloudstack_format():
    row = action_row()
    event = to_cloudstack(row)
    uuid_ = str(row.resource_id)
    assert event.routing_key == f"management-server.ActionEvent.VM-CREATE.VirtualMachine.{uuid_}"
    assert event.body == {
        "user": str(ACTOR.account_id),
        "account": str(OWNER),
        "event": "VM.CREATE",
        "status": "Completed",
        "entity": "com.cloud.vm.VirtualMachine",
        "entityuuid": uuid_,
        "VirtualMachine": uuid_,
        "description": "deploying VM web-1",
        "eventDateTime": "2026-01-15 10:30:05 +0000",
    }
    assert json.loads(event.to_bytes()) == event.body
    assert event.message_id != row.message_id, "its own id, derived from the action's"
    assert to_cloudstack(row).message_id == event.message_id, "deterministic"


def test_failed_action_is_completed_with_error_while_as_cloudstack_reports_it():
    event = to_cloudstack(action_row(state="Failed", level="ERROR"))
    assert event.body["status"] == "Completed"
    assert event.body["description"] == "Error while deploying VM web-1"


def test_entity_follows_the_event_type_like_cloudstack():
    assert entity_of("VOLUME.CREATE", "Volume") == ("Volume", "com.cloud.storage.Volume")
    assert entity_of("NIC.CREATE", "Nic") == ("Nic", "com.cloud.vm.Nic")
    assert entity_of("TEMPLATE.CREATE", "Template") == (
        "VirtualMachineTemplate", "com.cloud.template.VirtualMachineTemplate",
    )  # fmt: skip
    assert entity_of("VMSNAPSHOT.CREATE", "VMSnapshot") == ("VMSnapshot", "com.cloud.vm.snapshot.VMSnapshot")
    assert entity_of("SEED.CREATE", "SeededTemplate") == ("SeededTemplate", "SeededTemplate")
    event = to_cloudstack(action_row("TEMPLATE.CREATE", "Started", "Template"))
    assert ".TEMPLATE-CREATE.VirtualMachineTemplate." in event.routing_key
    assert event.body["status"] == "Started"


def test_routing_key_parts_never_carry_dots_and_empty_parts_are_wildcards():
    assert routing_key("VM.SNAPSHOT.REVERT", "Virtual.Machine", "") == (
        "management-server.ActionEvent.VM-SNAPSHOT-REVERT.Virtual-Machine.*"
    )


def test_only_valid_action_events_are_republished():
    task = VcenterTask(
        zone_id="z", task_key="t", name="CloneVM_Task", state="success",
        started_at=None, completed_at=None, duration_ms=None,
    )  # fmt: skip
    envelope = Envelope.wrap(task, source="agent")
    assert (
        to_cloudstack(to_row(envelope, exchange=EVENTS.name, routing_key="agent.vcenter_task.success"))
        is None
    )
    broken = envelope.model_copy(update={"type": "ActionEvent", "payload": {"event_type": "VM.CREATE"}})
    assert to_cloudstack(to_row(broken, exchange=EVENTS.name, routing_key="x")) is None
