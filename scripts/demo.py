"""snapdeploy's main job, on one machine: `make demo` (checks, then stops) and `make up` (runs until Ctrl-C).

Starts the vCenter simulator and every service as its own process against the local RabbitMQ
and PostgreSQL (a vhost and a database of the demo's own), then, as an operator would over the
bus: syncs the zone, adopts the source VM, creates an offering, writes known bytes into the
source VM's root disk, takes S1 and S2 (child of S1), deploys one VM from S1 and two from S2,
and prints what each VM is, where its root disk hangs from, the pool's capacity before and
after, and the first deployment's audit trail; then a bus producer of the account (a RabbitMQ
user of its own, registered as the account's principal) lists its VMs and is refused when it
claims to be an admin. Every service connects as its own RabbitMQ user, with the permissions of
``snapdeploy/broker_users.py``; nobody connects as guest. Exits 0 only if every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
import uuid

import aio_pika
import asyncpg

from contracts import audit, planner, storage, vsphere
from contracts.agent import SyncInventory
from contracts.envelope import Actor
from contracts.events import InventorySynced
from contracts.vsphere import VmInfo
from shared.errors import DomainError
from snapdeploy import broker_users
from snapdeploy.client import BusClient, CommandRefused, Subscription
from snapdeploy.local.processes import ServiceProcess
from snapdeploy.local.simulator import Simulator, sha256
from snapdeploy.local.users import TEST_SERVICE_USERS, as_user, producer_user, snapdeploy_users, until_known

ZONE = "zone1"
ACCOUNT = uuid.UUID("00000000-0000-4000-8000-0000000000d0")
SERVICES = {"hypervisor_agent": 8083, "planner": 8081, "storage": 8082, "audit": 8084}
BYTES = {"S1": b"snapdeploy demo: root disk at S1\n" * 256, "S2": b"snapdeploy demo: root disk at S2\n" * 256}


class Checks:
    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, ok: bool, what: str) -> bool:
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
        if not ok:
            self.failed.append(what)
        return ok


def step(text: str) -> None:
    print(f"\n== {text}")


# -- a place of the demo's own on the broker and the database ------------------------------------------


PRODUCER = "demo-team"


def scratch_vhost(amqp_url: str, name: str) -> str:
    """A fresh vhost with snapdeploy's users and a producer (snapdeploy/broker_users.py's permissions)
    when rabbitmqctl is here (local broker); the operator console's URL in it. Else the URL as given,
    whose vhost must have those users already (``python -m snapdeploy.broker_users``)."""
    if not shutil.which("rabbitmqctl"):
        return amqp_url
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)
    users = {**snapdeploy_users(), **producer_user(PRODUCER)}
    broker_users.import_definitions(broker_users.definitions(name, users))
    parts = urllib.parse.urlsplit(amqp_url)
    url = urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(name, safe="")))
    return as_user(url, "snapdeploy-test")


async def usable(url: str) -> None:
    """The definitions import is asynchronous: wait until the console's user can open the vhost."""
    for _ in range(200):
        try:
            await (await aio_pika.connect(url)).close()
            return
        except (aio_pika.exceptions.AMQPError, ConnectionError, OSError):
            await asyncio.sleep(0.05)
    raise RuntimeError(f"cannot connect to {url.split('@')[-1]}")


async def scratch_database(database_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(database_url)
    admin = await asyncpg.connect(urllib.parse.urlunsplit(parts._replace(path="/postgres")))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


# -- the stack -------------------------------------------------------------------------------------------


def start_stack(amqp_url: str, database_url: str, sim: Simulator, *, ports: bool) -> list[ServiceProcess]:
    processes = []
    for service, port in SERVICES.items():
        env = {
            "AMQP_URL": amqp_url, "BUS_SERVICE_USERS": TEST_SERVICE_USERS,  # each service as its own user
            "DATABASE_URL": database_url, "HTTP_PORT": str(port if ports else 0),
            "ZONE_ID": ZONE, "VCENTER_URL": sim.url, "VCENTER_INSECURE": "true",
            "SCAVENGER_INTERVAL": "5", "SCAVENGER_DELAY": "0",
        }  # fmt: skip
        processes.append(ServiceProcess(f"services.{service}", env, name=service).start())
    for process in processes:
        process.wait_started(timeout=60)
    return processes


def stop_stack(processes: list[ServiceProcess]) -> bool:
    codes = {p.name: p.stop() for p in processes}
    print("\nstopped: " + ", ".join(f"{name} (exit {code})" for name, code in codes.items()))
    return all(code == 0 for code in codes.values())


# -- the main job ------------------------------------------------------------------------------------------


def root_of(vm: VmInfo):
    return vsphere.root_disk(vm.disks)


async def pool_ds1(cloud: BusClient) -> storage.StoragePool:
    return {p.name: p for p in (await cloud.ask(storage.ListStoragePools(zone_id=ZONE))).pools}["ds1"]


async def inventory(cloud: BusClient) -> tuple[dict[str, VmInfo], InventorySynced]:
    """Sync the zone: its VMs by name as vCenter has them now, and everything found."""
    found = await cloud.call_caused(SyncInventory(zone_id=ZONE), InventorySynced)
    return {vm.name: vm for vm in found.vms}, found


async def main_job(cloud: BusClient, commands: Subscription, sim: Simulator, check: Checks) -> None:
    step("sync zone1 (vCenter datacenter DC0)")
    vms, found = await inventory(cloud)
    hosts = len(found.hosts)
    print(f"  {hosts} hosts, {len(found.datastores)} datastores, {len(found.networks)} port groups")
    await cloud.until(planner.ListHosts(zone_id=ZONE), lambda a: len(a.hosts) == hosts, what="hosts")
    await cloud.until(storage.ListStoragePools(zone_id=ZONE), lambda a: len(a.pools) == 2, what="pools")

    step("adopt src-vm into the demo account; create an offering")
    src = vms["src-vm"]
    adopted = await cloud.call(planner.ImportVirtualMachine(zone_id=ZONE, vm_ref=src.ref, account_id=ACCOUNT))
    source_id = adopted.vm_id
    offering_id = uuid.uuid4()
    await cloud.call(
        planner.CreateServiceOffering(
            offering_id=offering_id, name="demo.small", cpu_number=2, cpu_speed_mhz=500, memory_mb=512
        )
    )
    print(f"  src-vm -> {source_id}; offering demo.small: 2 vCPUs x 500 MHz, 512 MB")

    step("write known bytes, take S1, write again, take S2 (child of S1)")
    snapshots = {}
    for name, content in BYTES.items():
        vms, _ = await inventory(cloud)
        sim.write(root_of(vms["src-vm"]).file, content)
        snapshots[name] = uuid.uuid4()
        made = await cloud.call(
            planner.CreateVmSnapshot(vm_snapshot_id=snapshots[name], vm_id=source_id, name=name)
        )
        print(f"  {name}: {snapshots[name]} (parent {made.parent_id})")
    vms, _ = await inventory(cloud)
    sim.write(root_of(vms["src-vm"]).file, b"written after S2\n")
    check(made.parent_id == snapshots["S1"], "S2 is a child of S1")

    nets = {n.name: n.id for n in (await cloud.ask(planner.ListNetworks(zone_id=ZONE))).networks}
    pool_before = await pool_ds1(cloud)
    step("deploy vm-1 from S1, vm-2 and vm-3 from S2")
    plan = [
        ("vm-1", "S1", ["pg-web", "pg-db"]),
        ("vm-2", "S2", ["pg-web"]),
        ("vm-3", "S2", ["pg-db", "pg-mgmt"]),
    ]
    jobs = {}
    copies = []
    for name, source, networks in plan:
        request = planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=snapshots[source], service_offering_id=offering_id,
            network_ids=[nets[n] for n in networks], name=name,
        )  # fmt: skip
        sent = await cloud.send(request)  # each deployment is a job of its own
        reply = await cloud.reply(sent, timeout=300)
        jobs[name] = sent.correlation_id
        copies.append(len(commands.matching(lambda e: e.type == "SeedTemplate")))
        check(
            reply.type == "DeployVirtualMachineSucceeded",
            f"{name} deployed from {source}: {reply.payload.get('error_text', 'ok')}",
        )
    check(copies == [1, 2, 2], "one seed per snapshot: vm-3 (second from S2) copied no disk")

    step("the VMs")
    vms, _ = await inventory(cloud)
    seeds = {s.install_path: s for s in (await cloud.ask(storage.ListSeeds())).seeds}
    snapshot_names = {v: k for k, v in snapshots.items()}
    for name, source, networks in plan:
        [vm] = [v for v in (await cloud.ask(planner.ListVirtualMachines())).vms if v.name == name]
        [root] = (await cloud.ask(storage.ListVolumes(vm_id=vm.id))).volumes
        in_vcenter = vms[name]
        parent = root_of(in_vcenter).parent_file
        seed = seeds.get(parent)
        same = sha256(sim.read(root.disk_path)) == sha256(BYTES[source])
        print(f"  {name}: {vm.state} on {vm.host_name}, datastore {vm.pool}, "
              f"{in_vcenter.num_cpus} vCPUs, {in_vcenter.memory_mb} MB")  # fmt: skip
        print("      NICs: " + ", ".join(f"{n.device_order}:{n.network} {n.mac}" for n in vm.nics))
        print(f"      root disk {root.disk_path}")
        origin = snapshot_names.get(seed.vm_snapshot_id, "?") if seed else "?"
        print(f"        -> hangs from seed {parent} (seeded from {origin})")
        print(f"      root disk SHA-256 equals {source}'s: {same}")
        check(vm.state == "Running" and in_vcenter.power_state == "poweredOn", f"{name} is running")
        check(same, f"{name}'s root disk is {source}'s, byte for byte")
        check(
            seed is not None and snapshot_names.get(seed.vm_snapshot_id) == source,
            f"{name} is a linked clone of {source}'s seed",
        )
        check(
            [n.network for n in in_vcenter.nics] == networks,
            f"{name} has NICs on {', '.join(networks)} in order",
        )
        check(
            (in_vcenter.num_cpus, in_vcenter.memory_mb) == (2, 512),
            f"{name} has the offering's 2 vCPUs and 512 MB",
        )

    step("pool ds1, before and after")
    pool_after = await pool_ds1(cloud)
    root_size = root_of(src).size_bytes
    print(
        f"  capacity {pool_after.capacity_bytes} bytes, "
        f"allocation limit {pool_after.allocation_limit_bytes} (with over-provisioning)"
    )
    print(f"  allocated before {pool_before.allocated_bytes}, after {pool_after.allocated_bytes} "
          f"(+{pool_after.allocated_bytes - pool_before.allocated_bytes})")  # fmt: skip
    check(
        pool_after.allocated_bytes - pool_before.allocated_bytes == 2 * root_size + 3 * root_size,
        "allocation grew by 2 seeds (full size) + 3 root volumes (virtual size), to the byte",
    )

    step("audit trail of vm-1's deployment")
    trail = await cloud.until(
        audit.GetDeploymentTrail(correlation_id=jobs["vm-1"]),
        lambda t: t.status == "succeeded"
        and ("VM.START", "Completed") in {(e.event_type, e.state) for e in t.entries},
        what="the audit trail", timeout=60,
    )  # fmt: skip
    for entry in trail.entries:
        if entry.kind == "event" and entry.type not in ("ActionEvent", "VcenterTask"):
            continue
        took = f" ({entry.duration_ms} ms)" if entry.duration_ms is not None else ""
        print(f"  {entry.occurred_at:%H:%M:%S.%f}"[:-3] + f" {entry.source:8} {entry.summary}{took}")
    print(f"  deployment took {trail.duration_ms} ms")
    actions = [(e.event_type, e.state) for e in trail.entries if e.type == "ActionEvent"]
    tasks = {e.task_name for e in trail.entries if e.type == "VcenterTask"}
    check(
        ("TEMPLATE.CREATE", "Completed") in actions and ("VOLUME.CREATE", "Completed") in actions,
        "trail: template and root volume created",
    )
    check(
        actions.count(("NIC.CREATE", "Completed")) == 2 and ("VM.START", "Completed") in actions,
        "trail: two NICs, VM started",
    )
    check(
        {"CloneVM_Task", "ReconfigVM_Task", "PowerOnVM_Task"} <= tasks,
        "trail: clone, reconfigure and power-on vCenter tasks",
    )


async def producer_job(cloud: BusClient, producer: BusClient, check: Checks) -> None:
    step(f"a bus producer: RabbitMQ user {PRODUCER}, the demo account's principal")
    await cloud.call(planner.RegisterBusPrincipal(broker_user=PRODUCER, account_id=ACCOUNT, role="user"))
    await until_known(producer)
    mine = (await producer.ask(planner.ListVirtualMachines())).vms
    print(f"  it lists {len(mine)} VMs of its account: " + ", ".join(sorted(v.name for v in mine)))
    check(
        len(mine) == 4 and all(v.account_id == ACCOUNT for v in mine), "the producer sees its account's VMs"
    )
    check((await producer.ask(planner.ListHosts())).hosts == [], "hosts are for admins only")
    claim = Actor(account_id=uuid.uuid4(), role="admin")
    try:
        await producer.call(planner.StartVirtualMachine(vm_id=mine[0].id), actor=claim)
        check(False, "a producer that claims another actor is refused")
    except CommandRefused as refused:
        print(f"  claiming to be an admin: {refused.code} {refused.text}")
        check(refused.code == 531, "a producer that claims another actor is refused (531)")
    try:
        await producer.ask(storage.ListStoragePools(), actor=claim)
        check(False, "a query claiming another actor is refused")
    except DomainError as error:
        check(error.code == 531, "a query claiming another actor is refused (531)")


async def demo(args) -> int:
    amqp = scratch_vhost(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "snapdeploy-demo")
    await usable(amqp)
    database = await scratch_database(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/snapdeploy"), "snapdeploy_demo"
    )
    sim = Simulator()
    print(f"vCenter simulator: {sim.url}")
    processes = start_stack(amqp, database, sim, ports=args.up)
    check = Checks()
    try:
        if args.up:
            print(
                "\nthe stack is up: "
                + ", ".join(f"{s} http://127.0.0.1:{p}/readyz" for s, p in SERVICES.items())
            )
            print(f"broker {amqp.split('@')[-1]} (as snapdeploy-test)\ndatabase {database}\nCtrl-C stops it.")
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            return 0
        async with BusClient(amqp, name="demo") as cloud:
            commands = await cloud.subscribe(("snapdeploy.commands", "#"))
            await main_job(cloud, commands, sim, check)
            async with BusClient(as_user(amqp, PRODUCER), name="demo-team") as producer:
                await producer_job(cloud, producer, check)
    except Exception as error:
        check(False, f"the demo stopped: {error!r}")
        for process in processes:
            print(f"\n--- {process.name} (last lines) ---\n{process.output()[-3000:]}")
    finally:
        clean = stop_stack(processes)
        sim.stop()
    if not clean:
        check(False, "every service stopped cleanly")
    print(f"\n{'ALL CHECKS PASSED' if not check.failed else f'{len(check.failed)} CHECK(S) FAILED'}")
    return 0 if not check.failed else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up", action="store_true", help="run the stack until Ctrl-C instead of the demo")
    sys.exit(asyncio.run(demo(parser.parse_args())))
