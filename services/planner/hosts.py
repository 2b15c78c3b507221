"""Host planning and capacity: every Up host that reaches the pool and has room, reserved atomically."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from contracts.errors import ErrorCode
from services.planner import domain
from services.planner.common import Planner
from shared.errors import DomainError


async def reserve(
    conn: asyncpg.Connection,
    planner: Planner,
    *,
    zone: str,
    pool: str,
    offering: dict[str, Any],
    host_id: uuid.UUID | None = None,
) -> asyncpg.Record:
    """Reserve the offering's CPU and memory on a host that reaches ``pool`` (``host_id`` if given).

    Candidates with the fewest deployments under way first (they are the host's queued and
    running vCenter work: a host's provisioning budget, not its memory, bounds how fast it
    clones), then the most free memory; each reservation is one conditional UPDATE, so two
    concurrent deployments never both take the last room on a host."""
    cpu = domain.cpu_needed(offering["cpu_number"], offering["cpu_speed_mhz"])
    memory = domain.memory_needed(offering["memory_mb"])
    candidates = await conn.fetch(
        """SELECT h.uuid FROM hosts h
           LEFT JOIN (SELECT host_uuid, count(*) AS n FROM instances WHERE state = 'Starting'
                      GROUP BY host_uuid) busy ON busy.host_uuid = h.uuid
           WHERE h.zone_id = $1 AND h.state = 'Up' AND $2 = ANY(h.pools) AND ($3::uuid IS NULL OR h.uuid = $3)
           ORDER BY coalesce(busy.n, 0),
                    floor(h.memory_bytes * $4::float8) - h.memory_used_bytes DESC, h.name""",
        zone,
        pool,
        host_id,
        planner.memory_overcommit,
    )
    for candidate in candidates:
        host = await conn.fetchrow(
            """UPDATE hosts SET cpu_mhz_used = cpu_mhz_used + $2, memory_used_bytes = memory_used_bytes + $3
               WHERE uuid = $1 AND cpu_mhz_used + $2 <= floor(cpu_mhz_total * $4::float8)
                 AND memory_used_bytes + $3 <= floor(memory_bytes * $5::float8)
               RETURNING *""",
            candidate["uuid"],
            cpu,
            memory,
            planner.cpu_overcommit,
            planner.memory_overcommit,
        )
        if host is not None:
            return host
    where = "the requested host" if host_id else f"any Up host that reaches storage pool {pool}"
    raise DomainError(
        ErrorCode.INSUFFICIENT_CAPACITY,
        f"no capacity on {where} for offering {offering['name']} ({cpu} MHz, {offering['memory_mb']} MB)",
    )


async def release_for(conn: asyncpg.Connection, vm_id: uuid.UUID) -> None:
    """Give back what the instance holds on its host (once: ``reserved`` is cleared in the same statement)."""
    instance = await conn.fetchrow(
        """UPDATE instances SET reserved = false WHERE uuid = $1 AND reserved
           RETURNING host_uuid, cpu_number, cpu_speed_mhz, memory_mb""",
        vm_id,
    )
    if instance is None or instance["host_uuid"] is None:
        return
    await conn.execute(
        """UPDATE hosts SET cpu_mhz_used = greatest(0, cpu_mhz_used - $2),
                            memory_used_bytes = greatest(0, memory_used_bytes - $3) WHERE uuid = $1""",
        instance["host_uuid"],
        domain.cpu_needed(instance["cpu_number"], instance["cpu_speed_mhz"]),
        domain.memory_needed(instance["memory_mb"]),
    )


async def reserve_again(conn: asyncpg.Connection, planner: Planner, vm_id: uuid.UUID) -> None:
    """Starting a stopped instance: its host must have room again."""
    instance = await conn.fetchrow("SELECT * FROM instances WHERE uuid = $1", vm_id)
    if instance["reserved"] or instance["host_uuid"] is None:
        return
    offering = {
        "name": str(instance["service_offering_id"]),
        "cpu_number": instance["cpu_number"],
        "cpu_speed_mhz": instance["cpu_speed_mhz"],
        "memory_mb": instance["memory_mb"],
    }
    await reserve(
        conn,
        planner,
        zone=instance["zone_id"],
        pool=instance["pool"],
        offering=offering,
        host_id=instance["host_uuid"],
    )
    await conn.execute("UPDATE instances SET reserved = true WHERE uuid = $1", vm_id)
