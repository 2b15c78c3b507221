"""The agent admits vCenter work the way vCenter counts it: no head-of-line blocking, no thread per task.

The agent runs as a process against the simulator (which models vCenter's admission too);
what is checked is order and state (who answered first, what ran at once), never time.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from contextlib import asynccontextmanager

import pytest

from contracts import agent as cmd
from snapdeploy.local.driver import watching
from tests.integration.test_agent import ZONE, Zone, host_on_ds1, source_with_snapshots
from tests.support.processes import ServiceProcess
from tests.support.vcsim import Simulator

pytestmark = pytest.mark.integration


@pytest.fixture
def sim():
    simulator = Simulator()
    yield simulator
    simulator.stop()


def start_agent(sim: Simulator, service_env: dict, **settings) -> ServiceProcess:
    env = {**service_env, "ZONE_ID": ZONE, "VCENTER_URL": sim.url, "VCENTER_INSECURE": "true"}
    env.update({k.upper(): str(v) for k, v in settings.items()})
    process = ServiceProcess("services.hypervisor_agent", env, name="agent").start()
    process.wait_started()
    return process


@asynccontextmanager
async def agent_zone(sim: Simulator, vhost, service_env: dict, **settings):
    process = start_agent(sim, service_env, **settings)
    client, events = await watching(vhost.url)
    zone = Zone(client, events, sim, process)
    try:
        yield zone
    finally:
        await client.close()
        zone.process.stop()  # the agent a test started again in place of the first, too


async def seeded(zone: Zone) -> tuple[dict, str]:
    """A seed of src-vm's S1 and a host that reaches its datastore; the simulator's figures reset."""
    src, s1, _, inventory = await source_with_snapshots(zone)
    seed = await zone.seed(src, s1["ref"])
    zone.sim.control("reset")
    return seed, host_on_ds1(inventory)


def peak(sim: Simulator, key: str) -> int:
    return sim.control("state")["admission"]["peak"].get(key, 0)


async def test_a_running_task_holds_no_thread(sim, vhost, service_env):
    async with agent_zone(sim, vhost, service_env, vcenter_threads=1) as zone:
        seed, host = await seeded(zone)
        sim.slow("CloneVM_Task", 1500)
        replies = await asyncio.gather(*(zone.call(zone.clone(seed, host)) for _ in range(5)))
        assert len({r["vm_ref"] for r in replies}) == 5
        assert peak(sim, f"host:{host}") == 5, "five clones ran in vCenter at once on one worker thread"


async def test_a_clone_powers_its_vm_on_itself_only_while_its_host_has_units_to_spare(
    sim, vhost, service_env
):
    async with agent_zone(sim, vhost, service_env, vcenter_units_per_host=2) as zone:
        seed, host = await seeded(zone)
        alone = await zone.call(zone.clone(seed, host).model_copy(update={"power_on": True}))
        assert alone["powered_on"] and alone["host_ref"] == host
        assert sim.control("state")["requests"].get("PowerOnVM_Task", 0) == 0, "one task: the clone"

        sim.slow("CloneVM_Task", 300)
        burst = [zone.clone(seed, host).model_copy(update={"power_on": True}) for _ in range(4)]
        replies = await asyncio.gather(*(zone.call(c) for c in burst))
        assert all(r["powered_on"] and r["host_ref"] == host for r in replies)
        # the host's two units were taken: the clones that found them so gave them back before
        # their power-on, a task of its own
        assert sim.control("state")["requests"].get("PowerOnVM_Task", 0) >= 2
        vms, _ = await zone.inventory()
        made = [vm for vm in vms.values() if vm.ref in {r["vm_ref"] for r in replies}]
        assert [vm.power_state for vm in made] == ["poweredOn"] * 4


async def test_clones_beyond_a_hosts_budget_wait_in_the_agent_not_in_vcenter(sim, vhost, service_env):
    async with agent_zone(sim, vhost, service_env, vcenter_units_per_host=2) as zone:
        seed, host = await seeded(zone)
        sim.slow("CloneVM_Task", 300)
        replies = await asyncio.gather(*(zone.call(zone.clone(seed, host)) for _ in range(6)))
        assert len({r["vm_ref"] for r in replies}) == 6
        assert peak(sim, f"host:{host}") == 2, "never more than the host's budget at once"


async def test_a_command_waiting_for_admission_does_not_hold_up_other_deployments(sim, vhost, service_env):
    # One unit per host and one thread: clones of the same host wait their turn; the power-on
    # of a VM that is already cloned must not wait behind them.
    async with agent_zone(sim, vhost, service_env, vcenter_units_per_host=1, vcenter_threads=1) as zone:
        seed, host = await seeded(zone)
        cloned = await zone.call(zone.clone(seed, host))
        sim.slow("CloneVM_Task", 1500)
        clones = [await zone.send(zone.clone(seed, host)) for _ in range(3)]
        power_on = await zone.send(cmd.PowerOnVm(zone_id=ZONE, vm_ref=cloned["vm_ref"]))
        replies = [await zone.reply(sent, timeout=120) for sent in [power_on, *clones]]
        assert all(r.type.endswith("Succeeded") for r in replies), [r.payload for r in replies]
        order = [e.causation_id for e in zone.events.seen if e.type.endswith("Succeeded")]
        assert order.index(power_on.message_id) < order.index(clones[1].message_id), (
            "the power-on answered before the clones queued behind the first one"
        )


async def test_an_agent_killed_while_clones_wait_for_admission_loses_none(sim, vhost, service_env):
    async with agent_zone(sim, vhost, service_env, vcenter_units_per_host=1) as zone:
        seed, host = await seeded(zone)
        sim.slow("CloneVM_Task", 1500)
        requests = [zone.clone(seed, host, vm_id=str(uuid.uuid4())) for _ in range(3)]
        sent = [await zone.send(r) for r in requests]
        await wait_until(lambda: sim.control("state")["admission"]["in_use"].get(f"host:{host}", 0) == 1)
        zone.process.signal(signal.SIGKILL)  # one clone running in vCenter, two waiting in the agent
        zone.process.wait()
        zone.process = start_agent(sim, service_env, vcenter_units_per_host=1)

        replies = [await zone.reply(s, timeout=120) for s in sent]
        assert all(r.type == "CloneFromSnapshotSucceeded" for r in replies), [r.payload for r in replies]
        vms, _ = await zone.inventory()
        assert {r.vm_name for r in requests} <= set(vms), "every clone exists"
        assert len({vms[r.vm_name].ref for r in requests}) == 3, "and exists once"


async def wait_until(condition, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition did not hold in time")
        await asyncio.sleep(0.05)
