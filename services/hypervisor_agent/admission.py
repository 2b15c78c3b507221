"""Admission of vCenter work the way vCenter counts it, so the agent never queues work inside vCenter.

vSphere gives each host 16 units for concurrent provisioning operations and each datastore 128;
a linked clone costs 1 host unit and 1 datastore unit, a full copy of a disk costs more (like a
Storage vMotion: 4 host units, 16 datastore units). Reconfiguring and powering on are not
provisioning operations: they take only a unit of vCenter's global limit (about 640 concurrent
operations). An operation waits here, on the event loop, until its units are free.

Order: work of deployments already under way (an operation that needs no provisioning units)
goes before new provisioning; otherwise first come, first served per host and per datastore:
a waiter never overtakes an earlier one that needs the same host or datastore (so a full copy
is not starved by a stream of linked clones), but one on other resources is not held up.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Cost:
    """Units one operation takes from its host's and its datastore's budgets."""

    host: int = 0
    datastore: int = 0

    @property
    def provisioning(self) -> bool:
        return bool(self.host or self.datastore)


LINKED_CLONE = Cost(host=1, datastore=1)
FULL_COPY = Cost(host=4, datastore=16)
NOT_PROVISIONING = Cost()


@dataclass
class Claim:
    host: str | None
    datastore: str | None
    cost: Cost
    order: tuple[int, int] = (0, 0)
    granted: asyncio.Future | None = field(default=None, repr=False)


class Admission:
    def __init__(self, *, per_host: int = 16, per_datastore: int = 128, total: int = 640) -> None:
        self.per_host, self.per_datastore, self.total = per_host, per_datastore, total
        self._hosts: dict[str, int] = {}
        self._datastores: dict[str, int] = {}
        self._running = 0
        self._waiting: list[Claim] = []
        self._arrivals = itertools.count()

    async def admit(self, *, cost: Cost, host: str | None = None, datastore: str | None = None) -> Claim:
        """Wait until the operation may run; ``release`` the claim when it has ended."""
        claim = Claim(host if cost.host else None, datastore if cost.datastore else None, cost)
        # deployments under way (no provisioning) first, then arrival order
        claim.order = (1 if cost.provisioning else 0, next(self._arrivals))
        claim.granted = asyncio.get_running_loop().create_future()
        self._waiting.append(claim)
        self._waiting.sort(key=lambda c: c.order)
        self._grant()
        try:
            await claim.granted
        except asyncio.CancelledError:
            if claim in self._waiting:
                self._waiting.remove(claim)
            elif claim.granted.done() and not claim.granted.cancelled():
                self.release(claim)  # granted just as it was cancelled
            raise
        return claim

    def release(self, claim: Claim) -> None:
        self._running -= 1
        if claim.host:
            self._hosts[claim.host] -= claim.cost.host
        if claim.datastore:
            self._datastores[claim.datastore] -= claim.cost.datastore
        self._grant()

    def spare(self, host: str) -> bool:
        """Nothing waits and the host has more than half its units free: an operation that would
        hold a host's units longer than it must (a clone that also powers its VM on) costs nothing."""
        return not self._waiting and self._hosts.get(host, 0) * 2 < self.per_host

    def state(self) -> dict[str, int]:
        """Units in use and operations waiting (for metrics and tests)."""
        return {
            "running": self._running,
            "waiting": len(self._waiting),
            **{f"host:{k}": v for k, v in self._hosts.items() if v},
            **{f"datastore:{k}": v for k, v in self._datastores.items() if v},
        }

    # -- internals ---------------------------------------------------------------------------------

    def _fits(self, claim: Claim) -> bool:
        return self._running < self.total and not self._lacking(claim)

    def _lacking(self, claim: Claim) -> set[str]:
        """The host and datastore whose budget cannot take the claim now."""
        # an operation bigger than a whole budget still runs, alone
        lacking = set()
        if claim.host and self._hosts.get(claim.host, 0) + claim.cost.host > max(
            self.per_host, claim.cost.host
        ):
            lacking.add(f"host:{claim.host}")
        if claim.datastore and self._datastores.get(claim.datastore, 0) + claim.cost.datastore > max(
            self.per_datastore, claim.cost.datastore
        ):
            lacking.add(f"datastore:{claim.datastore}")
        return lacking

    def _take(self, claim: Claim) -> None:
        self._running += 1
        if claim.host:
            self._hosts[claim.host] = self._hosts.get(claim.host, 0) + claim.cost.host
        if claim.datastore:
            used = self._datastores.get(claim.datastore, 0)
            self._datastores[claim.datastore] = used + claim.cost.datastore

    def _grant(self) -> None:
        # A waiter that cannot go reserves what it lacks: later ones that need it wait behind it
        # (no starving), later ones on other hosts and datastores go ahead (no head-of-line).
        reserved: set[str] = set()
        for claim in list(self._waiting):
            if self._running >= self.total:
                return
            needs = {
                f"host:{claim.host}" if claim.host else "",
                f"datastore:{claim.datastore}" if claim.datastore else "",
            }
            if needs & reserved:
                continue
            lacking = self._lacking(claim)
            if lacking:
                reserved |= lacking
                continue
            self._waiting.remove(claim)
            self._take(claim)
            if not claim.granted.done():
                claim.granted.set_result(None)
