"""Reconciliation's grace period: a finding is acted on once it stayed for the grace, then waits again."""

from __future__ import annotations

import uuid

from shared.reconcile import Sightings, snapdeploy_uuid


class Passes:
    """Successive passes over one scope, as the table would carry them between passes."""

    def __init__(self, grace: float) -> None:
        self.sightings, self.known = Sightings(grace), {}

    def __call__(self, findings: set[str], now: float) -> set[str]:
        due, self.known = self.sightings.advance(self.known, findings, now)
        return due


def test_a_finding_is_due_only_after_the_grace_period_without_a_gap():
    passes = Passes(grace=10)

    assert passes({"vm-1"}, now=0) == set()
    assert passes({"vm-1"}, now=9) == set()
    assert passes({"vm-1"}, now=10) == {"vm-1"}


def test_a_finding_that_went_away_starts_its_grace_period_over():
    passes = Passes(grace=10)
    passes({"vm-1"}, now=0)

    passes(set(), now=5)  # adopted or gone in between

    assert passes({"vm-1"}, now=12) == set()
    assert passes({"vm-1"}, now=22) == {"vm-1"}


def test_an_acted_on_finding_waits_a_new_grace_period():
    passes = Passes(grace=10)
    passes({"vm-1"}, now=0)
    assert passes({"vm-1"}, now=10) == {"vm-1"}

    assert passes({"vm-1"}, now=15) == set(), "its removal may still be in flight"
    assert passes({"vm-1"}, now=20) == {"vm-1"}


def test_with_no_grace_a_finding_is_due_at_once():
    assert Passes(grace=0)({"vm-1"}, now=0) == {"vm-1"}


def test_only_a_uuid_is_a_snapdeploy_id():
    vm_id = uuid.uuid4()
    assert snapdeploy_uuid(str(vm_id)) == vm_id
    assert (
        snapdeploy_uuid("not-ours") is None and snapdeploy_uuid(None) is None and snapdeploy_uuid("") is None
    )
