"""The planner's persistence in memory, for unit tests of its handlers (no database, no broker).

``MemoryPlanner.install(monkeypatch)`` puts it in place of the planner's store, saga rows,
parked requests, awaited replies, host capacity and snapshot tree; the handlers run as they
do in the service. Saga state goes through ``model_dump``/``model_validate`` as it does in
PostgreSQL, so what a step knows must survive being stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from contracts.base import Command
from contracts.envelope import Envelope
from contracts.topology import PLANNER_REPLIES
from services.planner import hosts, saga, store, tree
from shared.db import pending
from shared.errors import DomainError
from shared.messaging import HandlerContext

ADMIN_JOB = uuid.UUID("00000000-0000-4000-8000-0000000000aa")


@dataclass
class MemoryPlanner:
    instances: dict[uuid.UUID, dict] = field(default_factory=dict)
    nics: dict[uuid.UUID, dict] = field(default_factory=dict)
    offerings: dict[uuid.UUID, dict] = field(default_factory=dict)
    networks: dict[uuid.UUID, dict] = field(default_factory=dict)
    hosts: dict[uuid.UUID, dict] = field(default_factory=dict)
    snapshots: dict[uuid.UUID, dict] = field(default_factory=dict)
    templates: dict[uuid.UUID, dict] = field(default_factory=dict)
    sagas: dict[tuple[str, uuid.UUID], dict] = field(default_factory=dict)
    awaited: dict[uuid.UUID, tuple[str, uuid.UUID]] = field(default_factory=dict)
    parked: list[tuple[str, str]] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    sent: list[Envelope] = field(default_factory=list)

    # -- what the handlers call, by module ------------------------------------------------------------

    def install(self, monkeypatch) -> None:
        for name in (
            "instance", "name_taken", "add_instance", "add_nics", "set_state", "state_of", "placed", "cloned",
            "root_volume_id", "nic_reserved", "release_nics", "offering", "network_in_zone", "host",
            "snapshot", "snapshot_to_deploy", "add_snapshot", "snapshot_taken", "snapshot_state",
            "snapshot_ready", "template",
        ):  # fmt: skip
            monkeypatch.setattr(store, name, getattr(self, name))
        for name in ("begin", "send", "finish", "running", "busy", "awaiting"):
            monkeypatch.setattr(saga, name, getattr(self, f"saga_{name}"))
        monkeypatch.setattr(pending, "park", self.park)
        monkeypatch.setattr(pending, "answer", self.answer)
        monkeypatch.setattr(hosts, "reserve", self.reserve)
        monkeypatch.setattr(hosts, "release_for", self.release_for)
        monkeypatch.setattr(tree, "snapshot_id", self.snapshot_id)
        monkeypatch.setattr(tree, "make_current", self.make_current)

    def context(self, envelope: Envelope) -> HandlerContext:
        return HandlerContext(envelope, "planner", conn=self, reply_to="test.replies")

    # -- store ---------------------------------------------------------------------------------------------

    async def instance(self, conn, vm_id):
        return self.instances.get(vm_id)

    async def name_taken(self, conn, name):
        return any(i["name"] == name for i in self.instances.values())

    async def add_instance(self, conn, **columns):
        self.instances[columns["uuid"]] = {"host_uuid": None, "vm_ref": None, "reserved": False, **columns}

    async def add_nics(self, conn, vm_id, nics):
        for order, (nic_id, network_id) in enumerate(nics):
            self.nics[nic_id] = {"instance_uuid": vm_id, "network_uuid": network_id, "order": order,
                                 "state": "Allocated", "mac": None}  # fmt: skip

    async def set_state(self, conn, vm_id, state, *, reason=None):
        row = self.instances[vm_id]
        row["state"] = state
        row["reason"] = reason or row.get("reason")
        return row

    async def state_of(self, conn, vm_id):
        return self.instances[vm_id]["state"]

    async def placed(self, conn, vm_id, host_id):
        self.instances[vm_id].update(host_uuid=host_id, reserved=True)

    async def cloned(self, conn, vm_id, vm_ref):
        self.instances[vm_id]["vm_ref"] = vm_ref

    async def root_volume_id(self, conn, vm_id):
        return self.instances[vm_id]["root_volume_id"]

    async def nic_reserved(self, conn, nic_id, mac):
        self.nics[nic_id].update(mac=mac, state="Reserved")

    async def release_nics(self, conn, vm_id):
        for nic in self.nics.values():
            if nic["instance_uuid"] == vm_id:
                nic["state"] = "Released"

    async def offering(self, conn, offering_id):
        return self.offerings.get(offering_id)

    async def network_in_zone(self, conn, network_id, zone):
        network = self.networks.get(network_id)
        return network if network and network["zone_id"] == zone else None

    async def host(self, conn, host_id):
        return self.hosts.get(host_id)

    async def template(self, conn, template_id):
        return self.templates.get(template_id)

    async def snapshot(self, conn, snapshot_id, *, lock=False):
        return self.snapshots.get(snapshot_id)

    async def snapshot_to_deploy(self, conn, snapshot_id):
        snapshot = self.snapshots.get(snapshot_id)
        if snapshot is None:
            return None
        instance = self.instances[snapshot["instance_uuid"]]
        return {**snapshot, "vm_ref": instance["vm_ref"], "zone_id": instance["zone_id"],
                "hypervisor": instance.get("hypervisor", "VMware"), "pool": instance["pool"],
                "vm_template_id": None, "disk_offering_id": None,
                "owner": instance["account_id"]}  # fmt: skip

    async def add_snapshot(self, conn, **columns):
        self.snapshots[columns["uuid"]] = {"state": "Creating", "current": False, "parent_uuid": None,
                                           "snapshot_ref": None, "config": None, **columns}  # fmt: skip

    async def snapshot_taken(self, conn, snapshot_id, ref, parent_id):
        self.snapshots[snapshot_id].update(snapshot_ref=ref, parent_uuid=parent_id)

    async def snapshot_state(self, conn, snapshot_id, state):
        self.snapshots[snapshot_id]["state"] = state

    async def snapshot_ready(self, conn, snapshot_id, config):
        self.snapshots[snapshot_id].update(state="Ready", config=config.model_dump(mode="json"))

    # -- the snapshot tree ----------------------------------------------------------------------------------

    async def snapshot_id(self, conn, vm_id, ref):
        return next(
            (
                k
                for k, s in self.snapshots.items()
                if s["instance_uuid"] == vm_id and s["snapshot_ref"] == ref
            ),
            None,
        )

    async def make_current(self, conn, vm_id, current):
        for key, snapshot in self.snapshots.items():
            if snapshot["instance_uuid"] == vm_id:
                snapshot["current"] = key == current

    # -- hosts ----------------------------------------------------------------------------------------------

    async def reserve(self, conn, planner, *, zone, pool, offering, host_id=None):
        memory = offering["memory_mb"] * 2**20
        for host in self.hosts.values():
            fits = host["memory_bytes"] - host["memory_used_bytes"] >= memory
            if host["zone_id"] == zone and pool in host["pools"] and host_id in (None, host["uuid"]) and fits:
                host["memory_used_bytes"] += memory
                return host
        raise DomainError(533, f"no capacity on any Up host that reaches storage pool {pool}")

    async def release_for(self, conn, vm_id):
        instance = self.instances[vm_id]
        if instance["reserved"]:
            instance["reserved"] = False
            self.hosts[instance["host_uuid"]]["memory_used_bytes"] -= instance["memory_mb"] * 2**20

    # -- saga rows, awaited replies, parked requests ----------------------------------------

    def _row(self, process: saga.Saga) -> dict:
        return {"kind": process.kind, "resource_id": process.resource_id, "step": process.step,
                "state": process.state, "data": process.data(), "job_id": process.job_id,
                "resends": 0}  # fmt: skip

    async def saga_begin(self, ctx, kind, resource_id, model):
        process = saga.Saga(kind, resource_id, step="start", model=model, job_id=ctx.envelope.correlation_id)
        self.sagas[(kind, resource_id)] = self._row(process)
        return process

    async def saga_send(self, ctx, process, step, command: Command, *, timeout):
        envelope = ctx.send(command, reply_to=PLANNER_REPLIES.name)
        self.sent.append(envelope)
        self.awaited = {k: v for k, v in self.awaited.items() if v != (process.kind, process.resource_id)}
        self.awaited[envelope.message_id] = (process.kind, process.resource_id)
        process.step = step
        self.sagas[(process.kind, process.resource_id)] = self._row(process)

    async def saga_finish(self, ctx, process, *, failed=False, code=None, text=None):
        process.state = "failed" if failed else "done"
        self.sagas[(process.kind, process.resource_id)] = self._row(process)

    async def saga_running(self, conn, kind, resource_id):
        row = self.sagas.get((kind, resource_id))
        return saga.Saga.of(row) if row and row["state"] in ("running", "compensating") else None

    async def saga_busy(self, conn, resource_id):
        return next(
            (
                k
                for (k, r), row in self.sagas.items()
                if r == resource_id and row["state"] in ("running", "compensating")
            ),
            None,
        )

    async def saga_awaiting(self, conn, message_id):
        call = self.awaited.pop(message_id, None)
        return await self.saga_running(conn, *call) if call else None

    async def park(self, ctx, resource_id, operation):
        self.parked.append((str(resource_id), operation))

    async def answer(self, conn, resource_id, operation, reply, *, source):
        """Each request parked on (resource, operation) gets the reply; a request parked later, none."""
        waiting = [p for p in self.parked if p == (str(resource_id), operation)]
        self.parked = [p for p in self.parked if p != (str(resource_id), operation)]
        self.answers.extend(reply for _ in waiting)
        return []
