"""A seeded chaos run: waves of deployments, volume creations and destroys while faults strike.

Each round picks one fault kind (a SIGKILLed service restarted, the api among them; every broker
connection of the vhost dropped; RabbitMQ crashed and restarted; one node of a three-node cluster
killed and started again; PostgreSQL crashed and restarted; a passing or a final vSphere fault;
vSphere latency) and strikes at a random moment of its wave. Every wave deploys over the bus and
through the CloudStack API (an async job). At the end the run waits for quiescence and counts,
per fault kind, what was requested, succeeded, failed with a reason, and what is bad: lost (no
terminal reply, or a job that never ends), duplicated vCenter VMs, records stuck in a
transitional state, orphans in vCenter, audit rows missing or doubled, host capacity drift (MHz)
and pool allocation drift (bytes). The same seed replays the same choices.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cs import CloudStackApiException

from contracts import audit, planner, storage
from contracts.envelope import Envelope
from tests.e2e.api_support import Client, adopt, user
from tests.e2e.cloud import offering, snapshot
from tests.support.stack import ZONE, Stack

SERVICES = {
    "planner": "services.planner",
    "storage": "services.storage",
    "agent": "services.hypervisor_agent",
    "audit": "services.audit",
    "api": "services.api",
}
KINDS = [f"kill-{s}" for s in SERVICES] + [
    "drop-connections",
    "restart-rabbitmq",
    "restart-postgres",
    "vsphere-SystemError",
    "vsphere-final",
    "vsphere-latency",
]
CLUSTER_KINDS = ["kill-rabbit-node"]  # with a three-node cluster
# Every vCenter call of the agent's steps in a wave: deploy, seed, volume copy, destroy, disk delete.
PASSING_FAULT_METHODS = [
    "CloneVM_Task",
    "ReconfigVM_Task",
    "PowerOnVM_Task",
    "CopyVirtualDisk_Task",
    "CreateVirtualDisk_Task",
    "MakeDirectory",
    "PowerOffVM_Task",
    "Destroy_Task",
    "DeleteVirtualDisk_Task",
    "RetrievePropertiesEx",
]
# Faults no retry can pass, where the step that meets them creates something.
FINAL_FAULTS = [
    ("CloneVM_Task", "NoDiskSpace"),
    ("CopyVirtualDisk_Task", "NoDiskSpace"),
    ("CreateVirtualDisk_Task", "NoDiskSpace"),
    ("ReconfigVM_Task", "NoPermission"),
    ("PowerOnVM_Task", "InvalidPowerState"),
]
BAD = (
    "lost",
    "incomplete",
    "duplicated",
    "stuck",
    "orphans",
    "audit_missing",
    "audit_doubled",
    "drift_mhz",
    "drift_bytes",
)
LIVE_SEED_STATES = ("Allocated", "Creating", "Ready")
SETTLING_VOLUME_STATES = ("Allocated", "Creating", "Destroy", "Expunging", "Error")
WAVE = 3
MAX_RUNNING = 6
MAX_VOLUMES = 4
BLANK_BYTES = 64 * 2**20


@dataclass
class Figures:
    requested: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    incomplete: int = 0  # api jobs that succeeded without their result object
    duplicated: int = 0
    stuck: int = 0
    orphans: int = 0
    audit_missing: int = 0
    audit_doubled: int = 0
    drift_mhz: int = 0
    drift_bytes: int = 0
    reconciled: int = 0  # objects reconciliation removed or repaired at the end (not a bad figure)
    reasons: Counter = field(default_factory=Counter)


@dataclass
class Sent:
    kind: str
    envelope: Envelope | None = None  # a command on the bus
    job: str | None = None  # or an async job of the api
    outcome: Envelope | dict | None = None


@dataclass
class Infra:
    """What the run may break besides the services: each a blocking call that returns once the
    fault is over (the broker or the database is back)."""

    drop_connections: Callable[[], None]
    restart_broker: Callable[[], None]
    restart_database: Callable[[], None]
    kill_node: Callable[[int], None] | None = None  # a cluster node, down until start_node
    start_node: Callable[[int], None] | None = None
    nodes: int = 1


class Chaos:
    def __init__(
        self, cloud: Stack, *, seed: int, infra: Infra, kinds: list[str] | None = None, grace: float = 2.0
    ):
        """``grace``: the stack's RECONCILE_GRACE, waited for by the final reconciliation."""
        self.cloud, self.rng, self.infra, self.grace = cloud, random.Random(seed), infra, grace
        available = KINDS + (CLUSTER_KINDS if infra.nodes > 1 else [])
        unknown = set(kinds or []) - set(available)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known here: {available}")
        self.kinds = kinds or available
        self.sent: list[Sent] = []
        self.running: list[uuid.UUID] = []  # deployed VMs a later round may destroy
        self.volumes: list[uuid.UUID] = []  # data volumes made, which a later round may delete
        self.struck: dict[str, Counter] = {}  # per fault kind: the bad figures its rounds added
        self.last: dict[str, int] = {}  # the bad figures after the last round

    async def setup(self) -> None:
        self.user = await user(self.cloud, "chaos")  # the account the api's deployments run for
        adopted = await adopt(self.cloud, "chaos")
        source = uuid.UUID(adopted["id"])
        self.snapshot = await snapshot(self.cloud, source, "S1")
        self.offering = await offering(self.cloud)
        [self.data_disk] = [
            v
            for v in (await self.cloud.ask(storage.ListVolumes(vm_id=source))).volumes
            if v.type == "DATADISK"
        ]
        await self.cloud.call(self._deploy("seeded"))  # the seed exists before the first fault

    @property
    def api(self) -> Client:
        keys = self.user.client.cs
        return Client(self.cloud.api_url, keys.key, keys.secret)

    def _deploy(self, name: str) -> planner.DeployVirtualMachine:
        return planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=self.snapshot, service_offering_id=self.offering, name=name
        )

    async def round(self, number: int) -> None:
        kind = self.rng.choice(self.kinds)
        commands = [self._deploy(f"r{number}-{n}") for n in range(WAVE)]
        commands.append(
            storage.CreateVolumeFromVmSnapshot(
                new_volume_id=uuid.uuid4(), vm_snapshot_id=self.snapshot, volume_id=self.data_disk.id,
                name=f"r{number}-volume",
            )
        )  # fmt: skip
        commands.append(
            storage.CreateVolume(
                new_volume_id=uuid.uuid4(), name=f"r{number}-blank", zone_id=ZONE, size_bytes=BLANK_BYTES
            )
        )
        while len(self.volumes) > MAX_VOLUMES:  # deleted volumes keep the pools from filling up
            commands.append(
                storage.DeleteVolume(volume_id=self.volumes.pop(self.rng.randrange(len(self.volumes))))
            )
        # Destroys keep the hosts from filling up (a full zone fails every deployment, rightly).
        # A wave deploys WAVE VMs over the bus and one through the api: past MAX_RUNNING, as many go.
        destroys = max(len(self.running) + WAVE + 1 - MAX_RUNNING, int(self.rng.random() < 0.5))
        for _ in range(min(destroys, len(self.running))):
            victim = self.running.pop(self.rng.randrange(len(self.running)))
            commands.append(planner.DestroyVirtualMachine(vm_id=victim, expunge=True))
        if kind == "vsphere-latency":
            self.cloud.sim.slow(self.rng.choice(PASSING_FAULT_METHODS), self.rng.randrange(200, 2000))
        strike_after = self.rng.uniform(0, 1.5)
        # A vCenter fault waits, armed, for the first call it matches: armed before the wave, it
        # meets that call whenever the wave makes it (a wave can be over in less than a second).
        armed = kind in ("vsphere-SystemError", "vsphere-final")
        if armed:
            await self.strike(kind)
        wave = [Sent(kind, envelope=await self.cloud.send(c)) for c in commands]
        started = await self.api.deployVirtualMachine(
            vmsnapshotid=str(self.snapshot), serviceofferingid=str(self.offering), name=f"r{number}-api"
        )
        wave.append(Sent(kind, job=started["jobid"]))
        self.sent += wave
        if not armed:
            await asyncio.sleep(strike_after)  # a random moment of the wave
            await self.strike(kind)
        for item in wave:  # the wave settles before the next one: its figures are its fault's
            await self._settle(item)
            if (
                item.envelope is not None
                and item.outcome
                and item.outcome.type == "DeployVirtualMachineSucceeded"
            ):
                self.running.append(uuid.UUID(item.outcome.payload["vm_id"]))
            elif (
                item.envelope is not None
                and item.outcome
                and item.outcome.type in ("CreateVolumeSucceeded", "CreateVolumeFromVmSnapshotSucceeded")
            ):
                self.volumes.append(uuid.UUID(item.outcome.payload["volume_id"]))
            elif (
                item.job is not None
                and item.outcome
                and "virtualmachine" in item.outcome.get("jobresult", {})
            ):
                self.running.append(uuid.UUID(item.outcome["jobresult"]["virtualmachine"]["id"]))
        self.cloud.sim.control("reset")
        await self._charge(kind)

    async def _settle(self, item: Sent, timeout: float = 240) -> None:
        if item.outcome is not None:
            return
        if item.envelope is not None:
            item.outcome = await self._reply(item.envelope, timeout)
        else:
            item.outcome = await self._job(item.job, timeout)

    async def _job(self, job: str, timeout: float) -> dict | None:
        """The job's result once it is no longer pending; None if it still is at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                answer = await self.api.queryAsyncJobResult(jobid=job)
            except (CloudStackApiException, OSError) as error:  # an api restarting, the database away
                answer = {"jobstatus": 0, "error": str(error)}
            if answer["jobstatus"] != 0:
                return answer
            await asyncio.sleep(0.2)
        return None

    async def strike(self, kind: str) -> None:
        if kind == "kill-rabbit-node":
            node = self.rng.randrange(1, self.infra.nodes + 1)
            await asyncio.to_thread(self.infra.kill_node, node)
            await asyncio.sleep(self.rng.uniform(0.5, 3))  # the cluster runs on two nodes meanwhile
            await asyncio.to_thread(self.infra.start_node, node)
        elif kind.startswith("kill-"):
            service = kind.removeprefix("kill-")
            [process] = [p for p in self.cloud.processes if p.name.startswith(service)]
            process.signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 10)
            self.cloud.processes.remove(process)
            if service == "api":  # a new replica, on a new port: the clients follow it
                self.cloud.api_processes.remove(process)
                self.cloud.api_urls.clear()
                await asyncio.to_thread(self.cloud.start_api)
            else:
                await asyncio.to_thread(self.cloud.start(service, SERVICES[service]).wait_started)
        elif kind == "drop-connections":
            await asyncio.to_thread(self.infra.drop_connections)
        elif kind == "restart-rabbitmq":
            await asyncio.to_thread(self.infra.restart_broker)
        elif kind == "restart-postgres":
            await asyncio.to_thread(self.infra.restart_database)
        elif kind == "vsphere-SystemError":
            self.cloud.sim.fail(self.rng.choice(PASSING_FAULT_METHODS), "SystemError", count=1)
        elif kind == "vsphere-final":
            self.cloud.sim.fail(*self.rng.choice(FINAL_FAULTS), count=1)

    async def _reply(self, envelope: Envelope, timeout: float = 240) -> Envelope | None:
        try:
            return await self.cloud.reply(envelope, timeout=timeout)
        except (AssertionError, TimeoutError):
            return None

    async def figures(self) -> dict[str, Figures]:
        table: dict[str, Figures] = defaultdict(Figures)
        for item in self.sent:
            row = table[item.kind]
            row.requested += 1
            await self._settle(item, timeout=5)
            outcome = item.outcome
            if outcome is None:
                row.lost += 1
            elif isinstance(outcome, dict):  # an api job: 1 succeeded, 2 failed
                if outcome["jobstatus"] == 1:
                    row.succeeded += 1
                    # What a client reads of a deployment job: the VM. Done, and not saying so, is a bug.
                    row.incomplete += "virtualmachine" not in outcome.get("jobresult", {})
                else:
                    row.failed += 1
                    result = outcome.get("jobresult", {})
                    text = re.sub(r"(deployment|volume) of \S+ ", r"\1 ", str(result.get("errortext")))
                    row.reasons[f"api {result.get('errorcode')}: {text[:100]}"] += 1
            elif outcome.type.endswith("Succeeded"):
                row.succeeded += 1
            else:
                row.failed += 1
                text = re.sub(r"(deployment|volume) of \S+ ", r"\1 ", outcome.payload["error_text"])
                row.reasons[outcome.payload.get("fault") or text[:120]] += 1
        for kind, found in self.struck.items():  # what each round's checks charged to its fault
            for name, value in found.items():
                setattr(table[kind], name, getattr(table[kind], name) + value)
        total = table["all"]
        await self._settle_storage()
        total.reconciled = await self._reconcile()
        for name, value in (await self._bad_settled()).items():
            setattr(total, name, value)
        return dict(table)

    async def _bad_now(self) -> dict[str, int]:
        """The run's bad figures as the stack stands now (call it with no work in flight)."""
        # The audit is held to what was on the bus before this check: the check's own syncs are
        # still being ingested as it reads the trail, and are held to it by the next check.
        before = {e.message_id for e in list(self.cloud.events.seen)}
        vms, _ = await self.cloud.inventory()
        names = Counter(vm.name for vm in vms.values())
        records = {vm.id: vm for vm in (await self.cloud.ask(planner.ListVirtualMachines())).vms}
        used = sum(h.cpu_mhz_used for h in (await self.cloud.ask(planner.ListHosts())).hosts)
        expected = sum(
            (vm.cpu_number or 0) * (vm.cpu_speed_mhz or 0)
            for vm in records.values()
            if vm.state in ("Running", "Starting", "Stopping") and vm.service_offering_id
        )
        missing, doubled = await self._audit_figures(before)
        return {
            "duplicated": sum(n - 1 for n in names.values() if n > 1),
            "stuck": sum(vm.state in ("Starting", "Stopping") for vm in records.values())
            + sum(
                v.state in SETTLING_VOLUME_STATES
                for v in (await self.cloud.ask(storage.ListVolumes())).volumes
            ),
            "orphans": await self._orphans(),
            "audit_missing": missing,
            "audit_doubled": doubled,
            "drift_mhz": abs(used - expected),
            "drift_bytes": await self._pool_drift(),
        }

    async def _bad_settled(self, timeout: float = 30) -> dict[str, int]:
        """The bad figures once the audit has recorded what the bus carried (it ingests behind the
        bus, and a restarted audit catches up on its queue), or as they are at the deadline."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            now = await self._bad_now()
            if not now["audit_missing"] or loop.time() > deadline:
                return now
            await asyncio.sleep(0.5)

    async def _charge(self, kind: str) -> None:
        """After a wave has settled: what went bad since the last wave is its fault kind's."""
        await self._settle_storage(timeout=30)
        now = await self._bad_settled()
        charged = self.struck.setdefault(kind, Counter())
        for name, value in now.items():
            charged[name] += max(0, value - self.last.get(name, 0))
        self.last = now

    async def _orphans(self) -> int:
        """vCenter VMs, seeds and volume disks with a snapdeploy id that no live record owns."""
        vms, synced = await self.cloud.inventory()
        records = (await self.cloud.ask(planner.ListVirtualMachines())).vms
        live = {vm.id for vm in records if vm.state in ("Running", "Stopped")}
        seeds = {str(s.id) for s in (await self.cloud.ask(storage.ListSeeds())).seeds}
        volumes = {
            v.disk_path
            for v in (await self.cloud.ask(storage.ListVolumes())).volumes
            if v.state != "Expunged"
        }
        return (
            sum(
                1
                for vm in vms.values()
                if vm.snapdeploy_id
                and not vm.template
                and vm.name != "src-vm"
                and uuid.UUID(vm.snapdeploy_id) not in live
            )
            + sum(
                1 for vm in vms.values() if vm.template and vm.snapdeploy_id and vm.snapdeploy_id not in seeds
            )
            + sum(1 for path in synced.get("volume_disks", []) if path not in volumes)
        )

    async def _reconcile(self, timeout: float = 120) -> int:
        """Reconciliation after quiescence: every sync is a pass, acting on what stayed past the grace
        period. Until nothing is left (or the deadline); how many objects it removed or repaired."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.cloud.inventory()  # the first sightings
        await asyncio.sleep(self.grace + 0.5)  # the grace period is what a removal waits for
        while loop.time() < deadline:
            if not await self._orphans():  # itself a sync, so a pass
                break
            await asyncio.sleep(0.5)
        return len(
            {
                e.payload["resource_id"]
                for e in list(self.cloud.events.seen)
                if e.type == "ActionEvent" and "reconciliation" in (e.payload.get("description") or "")
            }
        )

    async def _settle_storage(self, timeout: float = 120) -> None:
        """Until the scavenger has collected what was destroyed or failed: pools are then exact."""
        with contextlib.suppress(TimeoutError):  # if not: the volumes left count as drift
            await self.cloud.until(
                storage.ListVolumes(),
                lambda a: not any(v.state in SETTLING_VOLUME_STATES for v in a.volumes),
                timeout=timeout,
                what="every volume Ready or Expunged",
            )

    async def _pool_drift(self) -> int:
        """Bytes by which the pools' allocation differs from what their volumes and seeds hold."""
        volumes = (await self.cloud.ask(storage.ListVolumes())).volumes
        seeds = (await self.cloud.ask(storage.ListSeeds())).seeds
        expected: Counter = Counter()
        for volume in volumes:
            if volume.state not in ("Expunged", "Error"):
                expected[volume.pool_id] += volume.size_bytes
        for seed in seeds:
            if seed.state in LIVE_SEED_STATES:
                expected[seed.pool_id] += seed.template_size
        pools = (await self.cloud.ask(storage.ListStoragePools())).pools
        return sum(abs(pool.allocated_bytes - expected[pool.id]) for pool in pools)

    async def _audit_figures(self, seen: set[uuid.UUID]) -> tuple[int, int]:
        """(messages of ``seen`` the audit has no row of, facts it recorded more than once).

        A fact is an action event's (type, state, resource) within its job, or a vCenter task's
        (key, state): each happens once, however often its message was delivered."""
        records: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = await self.cloud.ask(audit.ListEvents(page=page, page_size=1000), timeout=30)
            records += answer.items
            if len(records) >= answer.total or not answer.items:
                break
            page += 1
        recorded = Counter(r["message_id"] for r in records)
        missing = len({str(m) for m in seen} - set(recorded))
        facts = Counter()
        for r in records:
            if r["type"] == "ActionEvent":
                facts[("action", r["event_type"], r["state"], r["resource_id"], r["correlation_id"])] += 1
            elif r["type"] == "VcenterTask" and r["task_key"]:
                facts[("task", r["task_key"], r["state"])] += 1
        doubled = sum(n - 1 for n in recorded.values() if n > 1) + sum(n - 1 for n in facts.values() if n > 1)
        return missing, doubled


COLUMNS = ("requested", "succeeded", "failed", *BAD)


def render(table: dict[str, Figures], *, seed: int, rounds: int) -> str:
    """Every figure per fault kind (what its rounds added, checked after each wave settled), and
    the whole run's after the final reconciliation."""
    heads = [c.replace("_", "-") for c in COLUMNS]
    width = [max(len(h), 5) + 1 for h in heads]
    lines = [
        f"chaos: {rounds} rounds, seed {seed}",
        f"{'fault kind':22}" + "".join(f"{h:>{w}}" for h, w in zip(heads, width, strict=True)),
    ]
    kinds = sorted(k for k in table if k != "all")
    for kind in kinds:
        row = table[kind]
        lines.append(
            f"{kind:22}" + "".join(f"{getattr(row, c):>{w}}" for c, w in zip(COLUMNS, width, strict=True))
        )
    total = table.get("all", Figures())
    lines.append(
        "whole run, after reconciliation: "
        + ", ".join(f"{name} {getattr(total, name)}" for name in BAD if name not in ("lost", "incomplete"))
    )
    lines.append(f"reconciliation at the end removed or repaired {total.reconciled} object(s)")
    reasons = Counter()
    for row in table.values():
        reasons.update(row.reasons)
    if reasons:
        lines.append("failure reasons: " + ", ".join(f"{r} x{n}" for r, n in reasons.most_common()))
    return "\n".join(lines)


def bad_figures(table: dict[str, Figures]) -> dict[str, int]:
    """Every bad figure that is not 0, per fault kind and for the whole run."""
    return {
        f"{name} ({kind})": getattr(row, name)
        for kind, row in table.items()
        for name in BAD
        if getattr(row, name)
    }
