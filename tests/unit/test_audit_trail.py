"""Assembling a job's trail: causal order despite clock skew, durations, outcome."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from contracts.audit import AuditRecord
from services.audit.queries import build_trail, causal_order

T0 = datetime(2026, 1, 15, 10, 30, tzinfo=UTC)
JOB = uuid.uuid4()
_seq = itertools.count(1)


def rec(type_, kind, at_ms, *, cause=None, **fields) -> AuditRecord:
    base = dict.fromkeys(AuditRecord.model_fields)
    base.update(
        seq=next(_seq), message_id=uuid.uuid4(), kind=kind, type=type_, source="planner", routing_key="k",
        correlation_id=JOB, causation_id=cause.message_id if cause else None,
        occurred_at=T0 + timedelta(milliseconds=at_ms), recorded_at=T0, payload={},
    )  # fmt: skip
    base.update(fields)
    return AuditRecord(**base)


def test_a_message_never_comes_before_its_cause_even_when_its_clock_is_behind():
    deploy = rec("DeployVirtualMachine", "command", 100)
    clone = rec("CloneFromSnapshot", "command", 200, cause=deploy)
    reply = rec("CloneFromSnapshotSucceeded", "reply", 150, cause=clone)  # agent clock 50 ms behind
    later = rec("PowerOnVm", "command", 180, cause=deploy)
    ordered = causal_order([reply, later, clone, deploy])
    assert [r.type for r in ordered] == [
        "DeployVirtualMachine", "PowerOnVm", "CloneFromSnapshot", "CloneFromSnapshotSucceeded",
    ]  # fmt: skip


def test_durations_and_failure():
    vm = uuid.uuid4()
    deploy = rec("DeployVirtualMachine", "command", 0)
    scheduled = rec(
        "ActionEvent", "event", 10, cause=deploy, event_type="VM.CREATE", state="Scheduled", resource_id=vm
    )
    clone = rec("CloneFromSnapshot", "command", 20, cause=deploy)
    task = rec(
        "VcenterTask", "event", 900, cause=clone, task_name="CloneVM_Task", state="error", duration_ms=870
    )
    clone_failed = rec(
        "CloneFromSnapshotFailed", "reply", 1000, cause=clone, error_code=533, error_text="no space"
    )
    vm_failed = rec(
        "ActionEvent", "event", 1100, cause=deploy, event_type="VM.CREATE", state="Failed", resource_id=vm
    )
    failed = rec(
        "DeployVirtualMachineFailed", "reply", 1200, cause=deploy, error_code=533,
        error_text="CloneFromSnapshot failed: no space",
    )  # fmt: skip
    trail = build_trail(
        JOB, [failed, vm_failed, clone_failed, task, clone, scheduled, deploy], truncated=False
    )
    took = {e.type + (e.state or ""): e.duration_ms for e in trail.entries}
    assert took["DeployVirtualMachine"] == 1200
    assert took["CloneFromSnapshot"] == 980 and took["CloneFromSnapshotFailed"] == 980
    assert took["VcenterTaskerror"] == 870
    assert took["ActionEventFailed"] == 1090 and took["ActionEventScheduled"] is None
    assert trail.entries[-1].type == "DeployVirtualMachineFailed"
    assert (trail.status, trail.error_code, trail.error_text) == (
        "failed",
        533,
        "CloneFromSnapshot failed: no space",
    )
    assert (trail.started_at, trail.duration_ms) == (T0, 1200)


def test_unfinished_and_empty_trails():
    deploy = rec("DeployVirtualMachine", "command", 0)
    trail = build_trail(JOB, [deploy], truncated=False)
    assert (trail.status, trail.ended_at, trail.duration_ms) == ("in_progress", None, None)
    assert build_trail(JOB, [], truncated=False).status == "unknown"
