"""The agent's admission: vCenter's per-operation costs against per-host, per-datastore and global budgets."""

from __future__ import annotations

import asyncio

from services.hypervisor_agent.admission import FULL_COPY, LINKED_CLONE, NOT_PROVISIONING, Admission


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def waiting(admission: Admission, *, cost, host=None, datastore=None) -> asyncio.Task:
    return asyncio.create_task(admission.admit(cost=cost, host=host, datastore=datastore))


async def test_linked_clones_beyond_a_hosts_budget_wait_and_go_in_arrival_order():
    admission = Admission(per_host=2)
    running = [await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1") for _ in range(2)]
    third = waiting(admission, cost=LINKED_CLONE, host="h1", datastore="ds1")
    fourth = waiting(admission, cost=LINKED_CLONE, host="h1", datastore="ds1")
    await settle()
    assert not third.done() and not fourth.done()
    assert admission.state()["host:h1"] == 2 and admission.state()["waiting"] == 2

    admission.release(running[0])
    await settle()
    assert third.done() and not fourth.done(), "the earlier waiter goes first"


async def test_a_full_host_does_not_hold_up_clones_on_other_hosts():
    admission = Admission(per_host=1)
    await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    blocked = waiting(admission, cost=LINKED_CLONE, host="h1", datastore="ds1")
    elsewhere = waiting(admission, cost=LINKED_CLONE, host="h2", datastore="ds1")
    await settle()
    assert elsewhere.done() and not blocked.done()


async def test_work_of_deployments_under_way_goes_before_new_clones():
    admission = Admission(total=2)
    first = await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    await admission.admit(cost=LINKED_CLONE, host="h2", datastore="ds1")
    new_clone = waiting(admission, cost=LINKED_CLONE, host="h3", datastore="ds1")
    await settle()
    power_on = waiting(admission, cost=NOT_PROVISIONING)
    await settle()
    assert not new_clone.done() and not power_on.done(), "vCenter's global limit is full"

    admission.release(first)
    await settle()
    assert power_on.done() and not new_clone.done(), "the later power-on of a started deployment goes first"


async def test_reconfigure_and_power_on_take_no_provisioning_units():
    admission = Admission(per_host=1)
    await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    reconfigure = waiting(admission, cost=NOT_PROVISIONING, host="h1", datastore="ds1")
    await settle()
    assert reconfigure.done()


async def test_a_full_copy_is_not_starved_by_a_stream_of_linked_clones():
    admission = Admission(per_host=4)
    clones = [await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1") for _ in range(3)]
    copy = waiting(admission, cost=FULL_COPY, host="h1", datastore="ds1")
    later_clone = waiting(admission, cost=LINKED_CLONE, host="h1", datastore="ds1")
    await settle()
    assert not copy.done() and not later_clone.done(), "one unit is free, but the copy came first"

    for claim in clones:
        admission.release(claim)
    await settle()
    assert copy.done() and not later_clone.done(), "the copy takes the host's four units"


async def test_a_waiter_that_gives_up_frees_its_place():
    admission = Admission(per_host=1)
    running = await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    gives_up = waiting(admission, cost=LINKED_CLONE, host="h1", datastore="ds1")
    behind = waiting(admission, cost=LINKED_CLONE, host="h1", datastore="ds1")
    await settle()
    gives_up.cancel()
    await settle()
    admission.release(running)
    await settle()
    assert behind.done()
    assert admission.state() == {"running": 1, "waiting": 0, "host:h1": 1, "datastore:ds1": 1}


async def test_a_host_has_units_to_spare_while_under_half_used_and_nothing_waits():
    admission = Admission(per_host=4)
    assert admission.spare("h1")
    first = await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    assert admission.spare("h1"), "one of four in use"
    second = await admission.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    assert not admission.spare("h1") and admission.spare("h2"), "half of h1 in use; h2 idle"
    admission.release(second)
    full = Admission(per_host=1)
    await full.admit(cost=LINKED_CLONE, host="h1", datastore="ds1")
    queued = waiting(full, cost=LINKED_CLONE, host="h1", datastore="ds1")
    await settle()
    assert not full.spare("h2"), "work is waiting: no host has units to spare"
    queued.cancel()
    admission.release(first)
    assert admission.spare("h1")
