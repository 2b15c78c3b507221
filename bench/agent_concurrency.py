"""Concurrent linked clones through the agent, against the same clones one at a time.

    python -m bench.agent_concurrency [--clones N] [--latency-ms MS]

Starts the simulator and the agent as processes (a vhost of its own), seeds a template,
sets the simulator's CloneVM_Task latency, then times N CloneFromSnapshot commands sent one
after another (baseline) and N sent at once. Prints both and the speed-up.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from bench.support import scratch_vhost
from contracts import agent as cmd
from contracts.events import InventorySynced
from shared import logging as snap_logging
from snapdeploy.client import BusClient
from snapdeploy.local.processes import ServiceProcess
from snapdeploy.local.simulator import Simulator

ZONE = "zone1"
DEADLINE = 300.0


def clone(seed: cmd.SeedTemplateSucceeded, host: str) -> cmd.CloneFromSnapshot:
    vm_id = str(uuid.uuid4())
    return cmd.CloneFromSnapshot(
        zone_id=ZONE, vm_id=vm_id, vm_name=f"i-{vm_id[:8]}", template_ref=seed.template_ref,
        base_snapshot_ref=seed.base_snapshot_ref, host_ref=host, datastore="ds1",
    )  # fmt: skip


async def main(url: str, clones: int, latency_ms: int) -> None:
    snap_logging.configure("bench", "WARNING")
    sim = Simulator()
    env = {
        "AMQP_URL": url,
        "HTTP_PORT": "0",
        "ZONE_ID": ZONE,
        "VCENTER_URL": sim.url,
        "VCENTER_INSECURE": "true",
    }
    agent = ServiceProcess("services.hypervisor_agent", env, name="agent").start()
    try:
        agent.wait_started()
        async with BusClient(url, name="bench") as bus:
            synced = await bus.call_caused(cmd.SyncInventory(zone_id=ZONE), InventorySynced)
            src = next(vm for vm in synced.vms if vm.name == "src-vm")
            host = next(d for d in synced.datastores if d.name == "ds1").hosts[0]
            snapshot = await bus.call(
                cmd.CreateVmSnapshot(zone_id=ZONE, vm_ref=src.ref, snapshot_id="bench", name="S1")
            )
            seed = await bus.call(
                cmd.SeedTemplate(
                    zone_id=ZONE,
                    seed_id="bench",
                    vm_ref=src.ref,
                    snapshot_ref=snapshot.snapshot.ref,
                    datastore="ds1",
                ),
                timeout=DEADLINE,
            )
            sim.slow("CloneVM_Task", latency_ms)

            started = time.perf_counter()
            for _ in range(clones):
                await bus.call(clone(seed, host), timeout=DEADLINE)
            serial = time.perf_counter() - started

            started = time.perf_counter()
            await asyncio.gather(*(bus.call(clone(seed, host), timeout=DEADLINE) for _ in range(clones)))
            concurrent = time.perf_counter() - started
    finally:
        agent.stop()
        sim.stop()

    print(f"{clones} CloneFromSnapshot, simulator CloneVM_Task latency {latency_ms} ms, agent as a process")
    print(f"{'one at a time (baseline)':28} {serial:8.2f} s")
    print(f"{'all at once':28} {concurrent:8.2f} s")
    print(f"{'speed-up':28} {serial / concurrent:8.1f} x   (ideal with {clones} slots: {clones} x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=int, default=20)
    parser.add_argument("--latency-ms", type=int, default=500)
    args = parser.parse_args()
    with scratch_vhost() as url:
        asyncio.run(main(url, args.clones, args.latency_ms))
