"""From an envelope to the audit's row: envelope fields always, typed columns for the types it reads."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from contracts.agent import CloneFromSnapshot
from contracts.catalogue import failed_reply
from contracts.envelope import Actor, Envelope
from contracts.events import ActionEvent, ResourceStateChanged, VcenterTask
from contracts.topology import COMMANDS, EVENTS
from services.audit.rows import COLUMNS, SQL_TYPES, to_row

JOB = uuid.uuid4()
OWNER = uuid.uuid4()
ACTOR = Actor(account_id=uuid.uuid4(), role="user")


def wrap(message, *, source="planner", **extra) -> Envelope:
    return Envelope.wrap(
        message, source=source, correlation_id=JOB, causation_id=uuid.uuid4(), actor=ACTOR, **extra
    )


def test_action_event_fills_the_cloudstack_columns_and_the_owner_account():
    vm = uuid.uuid4()
    action = ActionEvent(
        event_type="VM.CREATE", state="Completed", level="INFO", resource_type="VirtualMachine",
        resource_id=vm, resource_name="web-1", account_id=OWNER, description="deployed web-1",
    )  # fmt: skip
    envelope = wrap(action)
    row = to_row(envelope, exchange=EVENTS.name, routing_key="planner.action_event.vm_create")
    assert (row.kind, row.type, row.source) == ("event", "ActionEvent", "planner")
    assert (row.event_type, row.state, row.level) == ("VM.CREATE", "Completed", "INFO")
    assert (row.resource_type, row.resource_id, row.resource_name) == ("VirtualMachine", vm, "web-1")
    assert row.account_id == OWNER, "the resource's owner, not the actor"
    assert row.actor_account_id == ACTOR.account_id
    assert row.description == "deployed web-1"
    assert (row.message_id, row.correlation_id, row.causation_id) == (
        envelope.message_id, JOB, envelope.causation_id,
    )  # fmt: skip
    assert json.loads(row.payload) == envelope.payload
    assert row.task_key is None and row.error_code is None


def test_vcenter_task_fills_the_task_columns():
    started = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
    task = VcenterTask(
        zone_id="zone1", task_key="task-42", name="CloneVM_Task", entity="vm-7", entity_name="web-1",
        state="error", started_at=started, completed_at=started, duration_ms=1520,
        fault="InsufficientDiskSpace", fault_message="no space on ds1",
    )  # fmt: skip
    row = to_row(wrap(task, source="agent"), exchange=EVENTS.name, routing_key="agent.vcenter_task.error")
    assert (row.task_key, row.task_name, row.task_entity, row.resource_name) == (
        "task-42", "CloneVM_Task", "vm-7", "web-1",
    )  # fmt: skip
    assert (row.state, row.duration_ms, row.task_started_at) == ("error", 1520, started)
    assert (row.fault, row.error_text) == ("InsufficientDiskSpace", "no space on ds1")
    assert row.event_type is None


def test_commands_replies_and_failures():
    command = CloneFromSnapshot(
        zone_id="zone1", vm_id="v", vm_name="n", template_ref="t", base_snapshot_ref="s",
        host_ref="h", datastore="ds1",
    )  # fmt: skip
    sent = wrap(command)
    row = to_row(sent, exchange=COMMANDS.name, routing_key="agent.zone1.clone_from_snapshot")
    assert (row.kind, row.type, row.routing_key) == (
        "command",
        "CloneFromSnapshot",
        "agent.zone1.clone_from_snapshot",
    )
    assert row.account_id == ACTOR.account_id

    failed = sent.caused(
        failed_reply(CloneFromSnapshot)(error_code=533, error_text="no space", fault="InsufficientDiskSpace"),
        source="agent",
    )
    row = to_row(failed, exchange=EVENTS.name, routing_key="agent.clone_from_snapshot_failed")
    assert (row.kind, row.causation_id) == ("reply", sent.message_id)
    assert (row.error_code, row.error_text, row.fault) == (533, "no space", "InsufficientDiskSpace")


def test_other_events_naming_a_resource_are_findable_by_it():
    volume = uuid.uuid4()
    changed = ResourceStateChanged(
        resource_type="Volume", resource_id=volume, old_state="Allocated", new_state="Ready"
    )
    row = to_row(
        wrap(changed, source="storage"), exchange=EVENTS.name, routing_key="storage.resource_state_changed"
    )
    assert (row.kind, row.resource_type, row.resource_id) == ("event", "Volume", volume)


def test_unknown_types_and_invalid_payloads_keep_their_envelope_fields():
    future = Envelope(
        message_id=uuid.uuid4(), type="SomethingNew", schema_version=3, correlation_id=JOB,
        occurred_at=datetime.now(UTC), source="api", payload={"resource_id": "not-a-uuid", "x": [1]},
    )  # fmt: skip
    row = to_row(future, exchange=EVENTS.name, routing_key="api.something_new")
    assert (row.kind, row.type, row.schema_version, row.resource_id) == ("event", "SomethingNew", 3, None)
    assert json.loads(row.payload) == {"resource_id": "not-a-uuid", "x": [1]}

    broken = future.model_copy(update={"type": "ActionEvent", "payload": {"event_type": "VM.CREATE"}})
    row = to_row(broken, exchange=EVENTS.name, routing_key="planner.action_event.vm_create")
    assert (row.type, row.event_type, row.state) == ("ActionEvent", None, None)


def test_every_column_has_an_sql_type():
    assert set(SQL_TYPES) == set(COLUMNS)
    assert SQL_TYPES["payload"] == "text" and SQL_TYPES["occurred_at"] == "timestamptz"
