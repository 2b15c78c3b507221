"""Bounded inputs: each value PostgreSQL or vSphere would refuse fails its contract, in the domain's words."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from contracts import audit, planner, storage
from shared.bus.explain import explain


def refusal(model, **fields) -> str:
    with pytest.raises(ValidationError) as error:
        model.model_validate(fields)
    return explain(error.value)


def offering(**kw) -> dict:
    return {"offering_id": str(uuid.uuid4()), "name": "small", "cpu_number": 2, "cpu_speed_mhz": 100,
            "memory_mb": 512, **kw}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (offering(cpu_number=10**20), "cpu_number must be at most 768"),
        (offering(memory_mb=2**63), "memory_mb must be at most 25165824"),
        (offering(cpu_speed_mhz=0), "cpu_speed_mhz must be at least 1"),
        (offering(name="x" * 1_000_000), "name must be at most 255 characters"),
        (offering(name="web\x00"), "name must not contain control characters"),
        (offering(name=""), "name must not be empty"),
        (offering(offering_id="not-a-uuid"), "offering_id must be a UUID"),
        (offering(cpu_number="two"), "cpu_number must be a whole number"),
    ],
)
def test_an_offering_out_of_bounds_is_refused_naming_the_field(fields, reason):
    text = refusal(planner.CreateServiceOffering, **fields)
    assert text == reason
    assert "Value error" not in text and "Input should" not in text
    assert "x" * 300 not in text, "the refused value is never echoed"


def test_a_deployment_names_what_is_wrong_in_its_own_words():
    text = refusal(planner.DeployVirtualMachine, vm_id=str(uuid.uuid4()))
    assert text == "exactly one of vm_snapshot_id and template_id is required"
    text = refusal(
        planner.DeployVirtualMachine, vm_id=str(uuid.uuid4()), vm_snapshot_id=str(uuid.uuid4()),
        name="web\x00", zone_id="zone.1",
    )  # fmt: skip
    assert text == "zone_id has characters it may not have; name must not contain control characters"


def test_free_text_may_have_lines_but_no_nul():
    ok = {"vm_snapshot_id": str(uuid.uuid4()), "vm_id": str(uuid.uuid4()), "name": "S1"}
    planner.CreateVmSnapshot.model_validate({**ok, "description": "line 1\nline 2"})
    assert refusal(planner.CreateVmSnapshot, **ok, description="a\x00b") == (
        "description must not contain the NUL character (U+0000)"
    )


def test_sizes_and_pages_stay_within_what_postgresql_and_vsphere_take():
    assert refusal(storage.ResizeVolume, volume_id=str(uuid.uuid4()), size_bytes=2**64) == (
        "size_bytes must be at most 68169720922112"
    )
    assert refusal(audit.ListEvents, page=2**40) == "page must be at most 2147483647"
    assert refusal(audit.ListEvents, type="Action\x00Event") == "type has characters it may not have"
