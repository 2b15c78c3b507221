"""A seeded chaos run: waves of deployments, volume creations and destroys while faults strike.

Each round picks one fault kind (a SIGKILLed service restarted, every broker connection of the
vhost dropped, a passing or a final vSphere fault, vSphere latency) and strikes at a random
moment of its wave. At the end the run waits for quiescence and counts, per fault kind, what
was requested, succeeded, failed with a reason, and what is bad: lost (no terminal reply),
duplicated vCenter VMs, records stuck in a transitional state, orphans in vCenter, host
capacity drift. The same seed replays the same choices.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from contracts import planner, storage
from contracts.envelope import Envelope
from tests.e2e.cloud import offering, prepare, snapshot
from tests.support.stack import Stack

SERVICES = {
    "planner": "services.planner",
    "storage": "services.storage",
    "agent": "services.hypervisor_agent",
    "audit": "services.audit",
}
KINDS = [f"kill-{s}" for s in SERVICES] + [
    "drop-connections",
    "vsphere-SystemError",
    "vsphere-final",
    "vsphere-latency",
]
PASSING_FAULT_METHODS = ["CloneVM_Task", "ReconfigVM_Task", "PowerOnVM_Task", "CopyVirtualDisk_Task"]
BAD = ("lost", "duplicated", "stuck", "orphans", "drift_mhz")
WAVE = 3
MAX_RUNNING = 6


@dataclass
class Figures:
    requested: int = 0
    succeeded: int = 0
    failed: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    orphans: int = 0
    drift_mhz: int = 0
    reasons: Counter = field(default_factory=Counter)


@dataclass
class Sent:
    envelope: Envelope
    kind: str


class Chaos:
    def __init__(self, cloud: Stack, *, seed: int, drop_connections: Callable[[], None]):
        self.cloud, self.rng = cloud, random.Random(seed)
        self.drop_connections = drop_connections
        self.sent: list[Sent] = []
        self.running: list[uuid.UUID] = []  # deployed VMs a later round may destroy

    async def setup(self) -> None:
        source = await prepare(self.cloud)
        self.snapshot = await snapshot(self.cloud, source.vm_id, "S1")
        self.offering = await offering(self.cloud)
        [self.data_disk] = [
            v
            for v in (await self.cloud.ask(storage.ListVolumes(vm_id=source.vm_id))).volumes
            if v.type == "DATADISK"
        ]
        await self.cloud.call(self._deploy("seeded"))  # the seed exists before the first fault

    def _deploy(self, name: str) -> planner.DeployVirtualMachine:
        return planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=self.snapshot, service_offering_id=self.offering, name=name
        )

    async def round(self, number: int) -> None:
        kind = self.rng.choice(KINDS)
        commands = [self._deploy(f"r{number}-{n}") for n in range(WAVE)]
        commands.append(
            storage.CreateVolumeFromVmSnapshot(
                new_volume_id=uuid.uuid4(), vm_snapshot_id=self.snapshot, volume_id=self.data_disk.id,
                name=f"r{number}-volume",
            )
        )  # fmt: skip
        # Destroys keep the hosts from filling up (a full zone fails every deployment, rightly).
        destroys = WAVE if len(self.running) > MAX_RUNNING else int(self.rng.random() < 0.5)
        for _ in range(min(destroys, len(self.running))):
            victim = self.running.pop(self.rng.randrange(len(self.running)))
            commands.append(planner.DestroyVirtualMachine(vm_id=victim, expunge=True))
        if kind == "vsphere-latency":
            self.cloud.sim.slow(self.rng.choice(PASSING_FAULT_METHODS), self.rng.randrange(200, 2000))
        strike_after = self.rng.uniform(0, 1.5)
        wave = [Sent(await self.cloud.send(c), kind) for c in commands]
        self.sent += wave
        await asyncio.sleep(strike_after)  # a random moment of the wave
        await self.strike(kind)
        for item in wave:  # the wave settles before the next one: its figures are its fault's
            reply = await self._reply(item.envelope)
            if reply is not None and reply.type == "DeployVirtualMachineSucceeded":
                self.running.append(uuid.UUID(reply.payload["vm_id"]))
        self.cloud.sim.control("reset")

    async def strike(self, kind: str) -> None:
        if kind.startswith("kill-"):
            service = kind.removeprefix("kill-")
            [process] = [p for p in self.cloud.processes if p.name.startswith(service)]
            process.signal(signal.SIGKILL)
            await asyncio.to_thread(process.wait, 10)
            self.cloud.processes.remove(process)
            await asyncio.to_thread(self.cloud.start(service, SERVICES[service]).wait_started)
        elif kind == "drop-connections":
            await asyncio.to_thread(self.drop_connections)
        elif kind == "vsphere-SystemError":
            self.cloud.sim.fail(self.rng.choice(PASSING_FAULT_METHODS), "SystemError", count=1)
        elif kind == "vsphere-final":
            self.cloud.sim.fail("CloneVM_Task", "NoDiskSpace", count=1)

    async def _reply(self, envelope: Envelope, timeout: float = 240) -> Envelope | None:
        try:
            return await self.cloud.reply(envelope, timeout=timeout)
        except (AssertionError, TimeoutError):
            return None

    async def figures(self) -> dict[str, Figures]:
        table: dict[str, Figures] = defaultdict(Figures)
        replies = {}
        for item in self.sent:
            row = table[item.kind]
            row.requested += 1
            reply = await self._reply(item.envelope, timeout=5)
            replies[item.envelope.message_id] = reply
            if reply is None:
                row.lost += 1
            elif reply.type.endswith("Succeeded"):
                row.succeeded += 1
            else:
                row.failed += 1
                text = re.sub(r"(deployment|volume) of \S+ ", r"\1 ", reply.payload["error_text"])
                row.reasons[reply.payload.get("fault") or text[:120]] += 1
        total = table["all"]
        vms, synced = await self.cloud.inventory()
        names = Counter(vm.name for vm in vms.values())
        total.duplicated = sum(n - 1 for n in names.values() if n > 1)
        records = {vm.id: vm for vm in (await self.cloud.ask(planner.ListVirtualMachines())).vms}
        total.stuck = sum(vm.state in ("Starting", "Stopping") for vm in records.values())
        live = {vm_id for vm_id, vm in records.items() if vm.state in ("Running", "Stopped")}
        seeds = {str(s.id) for s in (await self.cloud.ask(storage.ListSeeds())).seeds}
        volumes = {
            v.disk_path
            for v in (await self.cloud.ask(storage.ListVolumes())).volumes
            if v.state != "Expunged"
        }
        total.orphans = (
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
        used = sum(h.cpu_mhz_used for h in (await self.cloud.ask(planner.ListHosts())).hosts)
        expected = sum(
            (vm.cpu_number or 0) * (vm.cpu_speed_mhz or 0)
            for vm in records.values()
            if vm.state in ("Running", "Starting", "Stopping") and vm.service_offering_id
        )
        total.drift_mhz = abs(used - expected)
        return dict(table)


def render(table: dict[str, Figures], *, seed: int, rounds: int) -> str:
    columns = ("requested", "succeeded", "failed", "lost")
    lines = [
        f"chaos: {rounds} rounds, seed {seed}",
        f"{'fault kind':22}" + "".join(f"{c:>11}" for c in columns),
    ]
    for kind in sorted(k for k in table if k != "all"):
        row = table[kind]
        lines.append(f"{kind:22}" + "".join(f"{getattr(row, c):>11}" for c in columns))
    total = table.get("all", Figures())
    lines.append("whole run: " + ", ".join(f"{name} {getattr(total, name)}" for name in BAD[1:]))
    reasons = Counter()
    for row in table.values():
        reasons.update(row.reasons)
    if reasons:
        lines.append("failure reasons: " + ", ".join(f"{r} x{n}" for r, n in reasons.most_common()))
    return "\n".join(lines)


def bad_figures(table: dict[str, Figures]) -> dict[str, int]:
    found = {f"lost ({k})": row.lost for k, row in table.items() if row.lost}
    total = table.get("all", Figures())
    found.update({name: getattr(total, name) for name in BAD[1:] if getattr(total, name)})
    return found
