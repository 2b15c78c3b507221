"""Reconciliation's grace period: a finding is acted on once it stayed for the grace, then waits again."""

from __future__ import annotations

import uuid

from shared.reconcile import Sightings, snapdeploy_uuid


def test_a_finding_is_due_only_after_the_grace_period_without_a_gap():
    sightings = Sightings(grace=10)

    assert sightings.due("zone1", {"vm-1"}, now=0) == set()
    assert sightings.due("zone1", {"vm-1"}, now=9) == set()
    assert sightings.due("zone1", {"vm-1"}, now=10) == {"vm-1"}


def test_a_finding_that_went_away_starts_its_grace_period_over():
    sightings = Sightings(grace=10)
    sightings.due("zone1", {"vm-1"}, now=0)

    sightings.due("zone1", set(), now=5)  # adopted or gone in between

    assert sightings.due("zone1", {"vm-1"}, now=12) == set()
    assert sightings.due("zone1", {"vm-1"}, now=22) == {"vm-1"}


def test_an_acted_on_finding_waits_a_new_grace_period_and_scopes_do_not_mix():
    sightings = Sightings(grace=10)
    sightings.due("zone1", {"vm-1"}, now=0)
    assert sightings.due("zone1", {"vm-1"}, now=10) == {"vm-1"}

    assert sightings.due("zone2", {"vm-9"}, now=11) == set()
    assert sightings.due("zone1", {"vm-1"}, now=15) == set(), "its removal may still be in flight"
    assert sightings.due("zone1", {"vm-1"}, now=20) == {"vm-1"}


def test_only_a_uuid_is_a_snapdeploy_id():
    vm_id = uuid.uuid4()
    assert snapdeploy_uuid(str(vm_id)) == vm_id
    assert (
        snapdeploy_uuid("not-ours") is None and snapdeploy_uuid(None) is None and snapdeploy_uuid("") is None
    )
