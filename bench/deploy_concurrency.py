"""N concurrent deployments from one seeded VM snapshot: snapdeploy against a plain pyvmomi script.

    python -m bench.deploy_concurrency [--n 1,10,50,100] [--idle-seconds 10]

Every service runs as a process (as tests/support/stack.py starts them) against the simulator
with vCenter's admission (16 units per host, 128 per datastore, 640 in all) and realistic task
times (linked CloneVM_Task 2 s, ReconfigVM_Task 0.5 s, PowerOnVM_Task 1 s, CopyVirtualDisk_Task
5 s). One deployment seeds the template first; then, for each N, N DeployVirtualMachine
commands at once through snapdeploy, and N threads of a plain pyvmomi script, one thread per
deployment, on the same simulator: once making the four tasks a hand-written script makes
(linked clone from the seed's base snapshot, reconfigure, add a NIC, power on), once making the
one snapdeploy makes while a host has units to spare (the clone with the shape, the NIC and
the power-on in its spec; the simulator gives such a clone the power-on's task time too, once
its provisioning units are free). It prints
makespan, median and p95 latency per N with the ratios against both, one deployment at a time
with zero task times (the median of 15, one each way in turn, and its SOAP requests: the n-th
deployment, nothing to seed) against the four-task script's, and the database commits per
second of the idle stack. Exits non-zero if any deployment failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import threading
import time
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import asyncpg
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from bench.support import scratch_vhost
from contracts import planner, storage
from services.hypervisor_agent.vsphere.tasks import wait_for_task
from shared import logging as snap_logging
from shared.settings import ServiceSettings
from tests.e2e.cloud import networks, offering, prepare, snapshot
from tests.support.stack import Stack

TASK_TIMES_MS = {
    "CloneVM_Task": 2000,
    "ReconfigVM_Task": 500,
    "PowerOnVM_Task": 1000,
    "CopyVirtualDisk_Task": 5000,
}
NO_TASK_TIMES = dict.fromkeys(TASK_TIMES_MS, 0)
NETWORK = "pg-web"
SINGLES = 15  # zero-latency single deployments, each way, in turn: their median is reported
TARGETS = {"makespan": 1.2, "median": 1.5, "single_zero_latency": 3.0}


@dataclass
class Round:
    n: int
    latencies: list[float] = field(default_factory=list)
    makespan: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p95(self) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# -- through snapdeploy ------------------------------------------------------------------------------


@dataclass
class Fixture:
    snapshot_id: uuid.UUID
    offering_id: uuid.UUID
    network_ids: list[uuid.UUID]


async def snapdeploy_round(cloud: Stack, fx: Fixture, n: int) -> Round:
    result = Round(n)
    started = time.perf_counter()

    async def one() -> None:
        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=fx.snapshot_id, service_offering_id=fx.offering_id,
            network_ids=fx.network_ids,
        )  # fmt: skip
        sent = await cloud.send(request)
        reply = await cloud.reply(sent, timeout=900)
        result.latencies.append(time.perf_counter() - started)
        if not reply.type.endswith("Succeeded"):
            result.failures.append(f"{request.vm_id}: {reply.payload.get('error_text')}")

    await asyncio.gather(*(one() for _ in range(n)))
    result.makespan = time.perf_counter() - started
    return result


def median_round(rounds: list[Round]) -> Round:
    return sorted(rounds, key=lambda r: r.makespan)[len(rounds) // 2]


# -- the plain pyvmomi script ---------------------------------------------------------------------------


@dataclass
class Target:
    """What the script needs, looked up once before it runs (a script would hard-code it)."""

    template: vim.VirtualMachine
    base_snapshot: vim.vm.Snapshot
    folder: vim.Folder
    datastore: vim.Datastore
    hosts: list[tuple[vim.HostSystem, vim.ResourcePool]]


def connect(url: str) -> vim.ServiceInstance:
    parts = urllib.parse.urlsplit(url)
    return SmartConnect(
        host=parts.hostname, port=parts.port, user=parts.username, pwd=parts.password,
        disableSslCertValidation=True, connectionPoolTimeout=-1,
    )  # fmt: skip


def find_target(si: vim.ServiceInstance, seed: storage.Seed) -> Target:
    content = si.RetrieveContent()
    template = vim.VirtualMachine(seed.template_ref, si._stub)
    base = vim.vm.Snapshot(seed.base_snapshot_ref, si._stub)
    [datacenter] = content.rootFolder.childEntity
    datastore = next(ds for ds in datacenter.datastore if ds.name == "ds1")
    hosts = [(mount.key, mount.key.parent.resourcePool) for mount in datastore.host]
    return Target(template, base, datacenter.vmFolder, datastore, hosts)


def script_deploy(si: vim.ServiceInstance, target: Target, index: int, *, in_clone: bool = False) -> None:
    """One deployment as a hand-written script makes it: four tasks, each waited for (clone,
    reconfigure, add a NIC, power on); ``in_clone``: one, the shape, the NIC and the power-on in
    the clone's spec (the calls snapdeploy makes)."""
    content = si.content
    host, pool = target.hosts[index % len(target.hosts)]
    name = f"script-{uuid.uuid4().hex[:8]}"

    def run(task: vim.Task) -> object:
        outcome = wait_for_task(si, task, timeout=900, content=content)
        if outcome.state != "success":
            raise RuntimeError(f"{name}: {outcome.name} failed: {outcome.fault} {outcome.fault_message}")
        return outcome.result

    shape = vim.vm.ConfigSpec(numCPUs=2, memoryMB=32)
    nic = vim.vm.device.VirtualVmxnet3(
        key=-1, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=NETWORK)
    )
    add = vim.vm.device.VirtualDeviceSpec(operation="add", device=nic)
    spec = vim.vm.CloneSpec(
        location=vim.vm.RelocateSpec(
            diskMoveType="createNewChildDiskBacking", host=host, datastore=target.datastore, pool=pool
        ),
        snapshot=target.base_snapshot,
        powerOn=False,
        template=False,
    )
    if in_clone:
        shape.deviceChange = [add]
        spec.config, spec.powerOn = shape, True
    vm = run(target.template.CloneVM_Task(folder=target.folder, name=name, spec=spec))
    if not in_clone:
        run(vm.ReconfigVM_Task(spec=shape))
        run(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[add])))
        run(vm.PowerOnVM_Task())


def script_round(si: vim.ServiceInstance, target: Target, n: int, *, in_clone: bool = False) -> Round:
    result = Round(n)
    lock = threading.Lock()
    started = time.perf_counter()

    def one(index: int) -> None:
        try:
            script_deploy(si, target, index, in_clone=in_clone)
        except Exception as error:  # a failed deployment is counted, not raised
            with lock:
                result.failures.append(repr(error))
        with lock:
            result.latencies.append(time.perf_counter() - started)

    with ThreadPoolExecutor(max_workers=n) as threads:
        list(threads.map(one, range(n)))
    result.makespan = time.perf_counter() - started
    return result


# -- measuring -------------------------------------------------------------------------------------------


def soap_requests(cloud: Stack) -> int:
    return sum(cloud.sim.control("state")["requests"].values())


async def idle_commits_per_second(database_url: str, seconds: float) -> float:
    """Transactions committed in the stack's database while nothing happens (our two reads excluded)."""
    name = urllib.parse.urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(database_url)
    try:
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = $1"
        await asyncio.sleep(12)  # let what just ran settle: a backend may hold its statistics ~10 s
        before = await conn.fetchval(query, name)
        await asyncio.sleep(seconds)
        after = await conn.fetchval(query, name)
    finally:
        await conn.close()
    return max(0, after - before - 1) / seconds


@contextlib.asynccontextmanager
async def scratch_database():
    url = ServiceSettings().database_url
    parts = urllib.parse.urlsplit(url)
    name = f"snapdeploy_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main(amqp_url: str, sizes: list[int], idle_seconds: float) -> int:
    snap_logging.configure("bench", "WARNING")
    env = {
        "AMQP_URL": amqp_url, "HTTP_PORT": "0",
        # capacity is not what this measures: room for every deployment of every round
        "CPU_OVERCOMMIT": "100", "MEMORY_OVERCOMMIT": "100", "STORAGE_OVERPROVISIONING": "1000",
    }  # fmt: skip
    async with scratch_database() as database_url:
        env["DATABASE_URL"] = database_url
        async with Stack(env, storage=1, planner=1, audit=1) as cloud:
            source = await prepare(cloud)
            fx = Fixture(
                snapshot_id=await snapshot(cloud, source.vm_id, "S1"),
                offering_id=await offering(cloud, cpus=2, mhz=10, memory_mb=32),
                network_ids=await networks(cloud, NETWORK),
            )
            cloud.sim.control("latency", methods=TASK_TIMES_MS)
            seeding = await snapdeploy_round(cloud, fx, 1)  # seeds the template: later ones copy nothing
            if seeding.failures:
                print(f"FAILED: the first deployment: {seeding.failures}")
                return 1
            [seed] = (await cloud.ask(storage.ListSeeds())).seeds
            # From here on the bench reads only its replies, as a client does: the harness's
            # subscription to every command and event would be one more quorum queue copy of
            # each message, and its decoding, charged to snapdeploy's makespan.
            await cloud.events.close()
            si = await asyncio.to_thread(connect, cloud.sim.url)
            target = await asyncio.to_thread(find_target, si, seed)

            rows = []
            for n in sizes:
                baseline = await asyncio.to_thread(script_round, si, target, n)
                same_calls = await asyncio.to_thread(script_round, si, target, n, in_clone=True)
                ours = await snapdeploy_round(cloud, fx, n)
                rows.append((baseline, same_calls, ours))

            # The n-th deployment's fixed cost: zero task times, one at a time, the median of a few
            # (a single one swings with whatever else the machine does).
            cloud.sim.control("latency", methods=NO_TASK_TIMES)
            # one of each in turn, so that both meet the same moments of the machine
            script_singles, ours_singles, script_soap, ours_soap = [], [], 0, 0
            for _ in range(SINGLES):
                before = soap_requests(cloud)
                script_singles.append(await asyncio.to_thread(script_round, si, target, 1))
                script_soap += soap_requests(cloud) - before
                before = soap_requests(cloud)
                ours_singles.append(await snapdeploy_round(cloud, fx, 1))
                ours_soap += soap_requests(cloud) - before
            script_soap, ours_soap = script_soap // SINGLES, ours_soap // SINGLES
            script_single, ours_single = median_round(script_singles), median_round(ours_singles)
            await asyncio.to_thread(Disconnect, si)

            commits = await idle_commits_per_second(database_url, idle_seconds)

    report(seeding, rows, script_single, ours_single, script_soap, ours_soap, commits)
    failures = [
        f
        for r in [seeding, *script_singles, *ours_singles, *(x for row in rows for x in row)]
        for f in r.failures
    ]
    for failure in failures[:20]:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def row(n: int, baseline: Round, ours: Round, *failed: int) -> str:
    cells = [
        n,
        f"{baseline.makespan:.2f} s",
        f"{ours.makespan:.2f} s",
        f"{ours.makespan / baseline.makespan:.2f}",
        f"{baseline.median:.2f} s",
        f"{ours.median:.2f} s",
        f"{ours.median / baseline.median:.2f}",
        f"{baseline.p95:.2f} s",
        f"{ours.p95:.2f} s",
        *failed,
    ]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def report(seeding, rows, script_single, ours_single, script_soap, ours_soap, commits) -> None:
    print("Deployments from one seeded VM snapshot; simulator with vCenter admission and task times")
    print("  " + ", ".join(f"{k} {v / 1000:g} s" for k, v in TASK_TIMES_MS.items()))
    print(f"  first (seeding) deployment: {seeding.makespan:.2f} s\n")
    print("Against the script of four tasks (clone, reconfigure, add a NIC, power on):\n")
    print(
        f"| N | script makespan | snapdeploy makespan | ratio (<= {TARGETS['makespan']}) | script median | "
        f"snapdeploy median | ratio (<= {TARGETS['median']}) | script p95 | snapdeploy p95 | failed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for baseline, same_calls, ours in rows:
        print(
            row(
                ours.n, baseline, ours, len(baseline.failures) + len(same_calls.failures) + len(ours.failures)
            )
        )
    print(
        "\nAgainst a script making one task each (the clone with the shape, the NIC and the power-on in "
        "its spec: snapdeploy's calls while a host has units to spare; under load it powers on apart):\n"
    )
    print("| N | script makespan | snapdeploy makespan | ratio | script median | snapdeploy median | ratio "
          "| script p95 | snapdeploy p95 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for _, same_calls, ours in rows:
        print(row(ours.n, same_calls, ours))
    scaling = {ours.n: ours.makespan for *_, ours in rows}
    if 1 in scaling:
        print(
            "\nsnapdeploy makespan / its N=1: "
            + ", ".join(f"N={n}: {m / scaling[1]:.2f}" for n, m in scaling.items())
        )
    print(
        f"\nzero task times, one deployment (median of {SINGLES}): script "
        f"{script_single.makespan * 1000:.0f} ms, snapdeploy "
        f"{ours_single.makespan * 1000:.0f} ms, ratio {ours_single.makespan / script_single.makespan:.2f} "
        f"(target <= {TARGETS['single_zero_latency']})"
    )
    print(
        f"SOAP requests of the n-th deployment: script {script_soap}, snapdeploy {ours_soap} "
        "(target <= script's)"
    )
    print(f"idle database commits per second: {commits:.2f} (target 0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="1,10,50,100", help="comma-separated concurrency levels")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    with scratch_vhost() as url:
        sys.exit(asyncio.run(main(url, [int(n) for n in args.n.split(",")], args.idle_seconds)))
