"""snapdeploy's main job, on one machine: `make demo` (checks, then stops) and `make up` (runs until Ctrl-C).

Starts the vCenter simulator, every service and the CloudStack API as processes against the local
RabbitMQ and PostgreSQL (a vhost and a database of the demo's own). Through the API, with the
real `cs` CLI, an admin creates a demo user account and its API keys, an offering, and adopts the
simulator's src-vm into the account. `make up` then writes build/cloudstack.env and waits;
`make demo` goes on as the demo user: writes known bytes into the source VM's root disk, takes S1
and S2 (child of S1), deploys one VM from S1 and two from S2 (one with --async and
queryAsyncJobResult), and checks against vCenter what each VM is, where its root disk hangs from,
the pool's capacity before and after, and the first deployment's audit trail; then a bus
producer of the demo account (a RabbitMQ user of its own, registered as the account's principal)
lists its VMs and is refused when it claims to be an admin. Every service connects as its own
RabbitMQ user. Exits 0 only if every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import signal
import sys
import uuid
from pathlib import Path

from contracts import planner, storage, vsphere
from contracts.envelope import Actor
from scripts.cloudstack_setup import CsCli, User, adopt, create_offering, create_user_account, write_env_file
from scripts.demo_stack import PRODUCER, Stack, scratch_database, scratch_vhost, usable
from shared.errors import DomainError
from snapdeploy.client import BusClient, CommandRefused
from snapdeploy.local.simulator import Simulator, sha256
from snapdeploy.local.users import as_user, register_principal

ZONE = "zone1"
BYTES = {"S1": b"snapdeploy demo: root disk at S1\n" * 256, "S2": b"snapdeploy demo: root disk at S2\n" * 256}
ENV_FILE = Path(__file__).resolve().parents[1] / "build" / "cloudstack.env"


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


async def until(call: CsCli, command: str, check, *, what: str, timeout: float = 60, **params) -> dict:
    """Ask ``command`` (quietly) until ``check(answer)`` holds, up to ``timeout`` seconds."""
    quiet = call.quiet()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await quiet(command, **params)
        if check(answer):
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout}s; last answer: {answer}")
        await asyncio.sleep(0.2)


# -- what make up and make demo share ---------------------------------------------------------------


async def provision(stack: Stack, admin: CsCli) -> tuple[User, dict, dict]:
    """The zone synced, the demo user account, an offering, src-vm adopted: (user, offering, src-vm)."""
    step("sync zone1 (vCenter datacenter DC0)")
    _, found = await stack.inventory()
    print(
        f"  {len(found['hosts'])} hosts, {len(found['datastores'])} datastores, "
        f"{len(found['networks'])} port groups"
    )
    await until(admin, "listHosts", lambda a: a.get("count") == len(found["hosts"]), what="hosts known")
    await until(admin, "listStoragePools", lambda a: a.get("count") == 2, what="pools known")

    step("as admin: the demo account and its API keys, an offering, src-vm adopted into the account")
    await admin("listZones")
    user = await create_user_account(admin, "demo", password=secrets.token_urlsafe(12))
    offering = await create_offering(admin, "demo.small", cpus=2, mhz=500, memory_mb=512)
    source = await adopt(admin, "src-vm", user, offering["id"])
    return user, offering, source


def env_values(stack: Stack, user: User) -> dict[str, str]:
    return {
        "CLOUDSTACK_ENDPOINT": stack.api_url,
        "CLOUDSTACK_KEY": user.api_key,
        "CLOUDSTACK_SECRET": user.secret_key,
        "SNAPDEPLOY_ADMIN_KEY": stack.admin_key,
        "SNAPDEPLOY_ADMIN_SECRET": stack.admin_secret,
        "VCENTER_URL": stack.sim.url,
        "SNAPDEPLOY_CONSOLE_URL": stack.console_url,
        "SNAPDEPLOY_CONSOLE_USER": user.username,
        "SNAPDEPLOY_CONSOLE_PASSWORD": user.password,
    }


# -- the main job ------------------------------------------------------------------------------------------


async def main_job(
    stack: Stack, admin: CsCli, user: User, offering: dict, source: dict, check: Checks
) -> None:
    sim = stack.sim
    demo = CsCli(stack.api_url, user.api_key, user.secret_key, who="demo")
    print(f"\n  (the demo user's cs has CLOUDSTACK_ENDPOINT={stack.api_url}, _KEY and _SECRET)")
    root_size = vsphere.root_disk((await stack.inventory())[0]["src-vm"].disks).size_bytes

    step("as the demo user: write known bytes, take S1, write again, take S2 (child of S1)")
    snapshots = {}
    for name, content in BYTES.items():
        vms, _ = await stack.inventory()
        sim.write(vsphere.root_disk(vms["src-vm"].disks).file, content)
        made = await demo("createVMSnapshot", virtualmachineid=source["id"], name=name)
        snapshots[name] = made["vmsnapshot"]["id"]
    vms, _ = await stack.inventory()
    sim.write(vsphere.root_disk(vms["src-vm"].disks).file, b"written after S2\n")
    [s2] = (await demo("listVMSnapshot", vmsnapshotid=snapshots["S2"]))["vmSnapshot"]
    check(s2.get("parent") == snapshots["S1"], "S2 is a child of S1")

    nets = {n["name"]: n["id"] for n in (await demo("listNetworks"))["network"]}
    pool_before = await pool_ds1(admin)

    step("deploy vm-1 from S1, vm-2 (--async) and vm-3 from S2: no zoneid, no templateid")
    plan = [
        ("vm-1", "S1", ["pg-web", "pg-db"]),
        ("vm-2", "S2", ["pg-web"]),
        ("vm-3", "S2", ["pg-db", "pg-mgmt"]),
    ]
    deployed, seeds_after = {}, []
    for name, source_snapshot, networks in plan:
        params = dict(
            vmsnapshotid=snapshots[source_snapshot], serviceofferingid=offering["id"],
            networkids=[nets[n] for n in networks], name=name,
        )  # fmt: skip
        if name == "vm-2":
            started = await demo.run("deployVirtualMachine", "--async", **params)
            job = await poll_job(demo, started["jobid"])
            vm = job.get("jobresult", {}).get("virtualmachine", {})
            ok, why = job.get("jobstatus") == 1, job.get("jobresult", {}).get("errortext", "ok")
        else:
            try:
                vm = (await demo("deployVirtualMachine", **params))["virtualmachine"]
                ok, why = True, "ok"
            except Exception as error:
                vm, ok, why = {}, False, str(error)
        deployed[name] = vm
        seeds_after.append((await admin.quiet()("listSeededTemplates")).get("count", 0))
        check(ok and vm.get("state") == "Running", f"{name} deployed from {source_snapshot}: {why}")
    check(seeds_after == [1, 2, 2], "one seed per snapshot: vm-3 (second from S2) copied no disk")

    step("the VMs, as the API and vCenter show them")
    vms, _ = await stack.inventory()
    seeded = await admin("listSeededTemplates")
    seeds = {s["installpath"]: s for s in seeded.get("seededtemplate", [])}
    snapshot_names = {v: k for k, v in snapshots.items()}
    listed = {v["name"]: v for v in (await demo("listVirtualMachines")).get("virtualmachine", [])}
    for name, source_snapshot, networks in plan:
        vm, in_vcenter = listed.get(name, {}), vms.get(name)
        if not check(in_vcenter is not None and bool(vm), f"{name} is in vCenter and in listVirtualMachines"):
            continue
        root = vsphere.root_disk(in_vcenter.disks)
        seed = seeds.get(root.parent_file)
        same = sha256(sim.read(root.file)) == sha256(BYTES[source_snapshot])
        origin = snapshot_names.get(seed["vmsnapshotid"], "?") if seed else "?"
        print(f"  {name}: {vm['state']} on {vm.get('hostname')}, {in_vcenter.num_cpus} vCPUs, "
              f"{in_vcenter.memory_mb} MB")  # fmt: skip
        nics = ", ".join(f"{n['networkname']} {n.get('macaddress')}" for n in vm.get("nic", []))
        print(f"      NICs: {nics}\n      root disk {root.file}")
        print(f"        -> hangs from seed {root.parent_file} (seeded from {origin})")
        print(f"      root disk SHA-256 equals {source_snapshot}'s: {same}")
        check(vm["state"] == "Running" and in_vcenter.power_state == "poweredOn", f"{name} is running")
        check(same, f"{name}'s root disk is {source_snapshot}'s, byte for byte")
        check(origin == source_snapshot, f"{name} is a linked clone of {source_snapshot}'s seed")
        check(
            [n.network for n in in_vcenter.nics] == networks,
            f"{name} has NICs on {', '.join(networks)} in order",
        )
        check(
            (in_vcenter.num_cpus, in_vcenter.memory_mb) == (2, 512),
            f"{name} has the offering's 2 vCPUs and 512 MB",
        )

    step("pool ds1, before and after")
    pool_after = await pool_ds1(admin)
    before, after = pool_before["disksizeallocated"], pool_after["disksizeallocated"]
    grew = after - before
    factor = pool_after.get("overprovisionfactor")
    print(f"  capacity {pool_after['disksizetotal']} bytes, over-provisioning x{factor}")
    print(f"  allocated before {before}, after {after} (+{grew})")
    check(
        grew == 2 * root_size + 3 * root_size,
        "allocation grew by 2 seeds (full size) + 3 root volumes (virtual size), to the byte",
    )

    step("audit trail of vm-1's deployment")
    vm_1 = deployed["vm-1"].get("id")
    trail = (
        await until(
            demo,
            "getDeploymentTrail",
            virtualmachineid=vm_1,
            what="the audit trail",
            check=lambda a: ("VM.START", "Completed") in names_states(a),
        )
    )["trail"]
    print(f"  demo$ cs getDeploymentTrail virtualmachineid={vm_1}   (its entries, one a line:)")
    for entry in trail["entries"]:
        if entry.get("kind") == "event" and "." not in entry["name"]:
            continue  # state changes and job progress: the action events and vCenter tasks tell the story
        took = f" ({entry['durationms']} ms)" if entry.get("durationms") is not None else ""
        state = entry.get("state") or ""
        print(f"  {entry['at'][11:19]} {entry.get('service', ''):8} {entry['name']} {state}".rstrip() + took)
    actions = names_states({"trail": trail})
    tasks = {e["name"] for e in trail["entries"] if e.get("kind") == "task"}
    check(
        ("TEMPLATE.CREATE", "Completed") in actions and ("VOLUME.CREATE", "Completed") in actions,
        "trail: template and root volume created",
    )
    check(
        actions.count(("NIC.CREATE", "Completed")) == 2 and ("VM.START", "Completed") in actions,
        "trail: two NICs, VM started",
    )
    check(
        "CloneVM_Task" in tasks and not tasks & {"ReconfigVM_Task", "PowerOnVM_Task"},
        "trail: one clone, made in its shape, with its NICs and powered on (no reconfigure, no power-on)",
    )


def names_states(answer: dict) -> list[tuple[str, str]]:
    entries = answer.get("trail", {}).get("entries", [])
    return [(e["name"], e.get("state")) for e in entries if e.get("kind") == "event"]


async def pool_ds1(admin: CsCli) -> dict:
    [pool] = (await admin("listStoragePools", name="ds1"))["storagepool"]
    return pool


async def poll_job(user: CsCli, jobid: str, timeout: float = 300) -> dict:
    """queryAsyncJobResult until the job is done: the first and the last answers are shown."""
    first = await user("queryAsyncJobResult", jobid=jobid)
    if first["jobstatus"] != 0:
        return first
    print("    ... (again every 0.5 s while jobstatus is 0)")
    await until(user, "queryAsyncJobResult", lambda a: a["jobstatus"] != 0, what="the job", jobid=jobid,
                timeout=timeout)  # fmt: skip
    return await user("queryAsyncJobResult", jobid=jobid)


async def producer_job(stack: Stack, user: User, check: Checks) -> None:
    """A bus producer of the demo account sees that account's VMs only and cannot claim another actor."""
    account = uuid.UUID(user.account_id)
    async with BusClient(as_user(stack.amqp_url, PRODUCER), name="demo") as producer:
        step(f"a bus producer: RabbitMQ user {PRODUCER}, the demo account's principal")
        await register_principal(stack.bus, PRODUCER, producer, account)
        mine = (await producer.ask(planner.ListVirtualMachines())).vms
        print(f"  it lists {len(mine)} VMs of its account: " + ", ".join(sorted(v.name for v in mine)))
        check(
            len(mine) == 4 and all(v.account_id == account for v in mine),
            "the producer sees its account's VMs",
        )
        check((await producer.ask(planner.ListHosts())).hosts == [], "hosts are for admins only")
        claim = Actor(account_id=uuid.uuid4(), role="admin")
        try:
            await producer.call(planner.StartVirtualMachine(vm_id=mine[0].id), actor=claim)
            check(False, "a producer that claims another actor is refused (531)")
        except CommandRefused as refused:
            print(f"  claiming to be an admin: {refused.code} {refused.text}")
            check(refused.code == 531, "a producer that claims another actor is refused (531)")
        try:
            await producer.ask(storage.ListStoragePools(), actor=claim)
            check(False, "a query claiming another actor is refused")
        except DomainError as error:
            check(error.code == 531, "a query claiming another actor is refused (531)")


# -- the two modes -----------------------------------------------------------------------------------------


async def run_up(stack: Stack, admin: CsCli, check: Checks) -> None:
    user, _, _ = await provision(stack, admin)
    write_env_file(ENV_FILE, env_values(stack, user))
    print(f"\nwrote {ENV_FILE.relative_to(Path.cwd()) if ENV_FILE.is_relative_to(Path.cwd()) else ENV_FILE}:")
    print("  " + "\n  ".join(f"{k}={v if 'SECRET' not in k and 'PASSWORD' not in k else '...'}"
                             for k, v in env_values(stack, user).items()))  # fmt: skip
    print(f"\nready: the CloudStack API at {stack.api_url}, the console at {stack.console_url}")
    print(f"  try: set -a; . {ENV_FILE}; set +a; cs listVirtualMachines")
    print("Ctrl-C stops it.", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        ENV_FILE.unlink(missing_ok=True)  # its keys die with this stack


async def demo(args) -> int:
    amqp = scratch_vhost(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"), "snapdeploy-demo")
    await usable(amqp)
    database = await scratch_database(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/snapdeploy"), "snapdeploy_demo"
    )
    sim = Simulator()
    print(f"vCenter simulator: {sim.url}")
    admin_key, admin_secret = f"admin-{secrets.token_hex(8)}", secrets.token_urlsafe(32)
    stack = Stack(
        amqp, database, sim, fixed_ports=args.up, api_port=args.api_port,
        api_env={
            "API_ENCRYPTION_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "API_ADMIN_USERNAME": "admin", "API_ADMIN_PASSWORD": secrets.token_urlsafe(12),
            "API_ADMIN_APIKEY": admin_key, "API_ADMIN_SECRETKEY": admin_secret,
        },
    )  # fmt: skip
    check = Checks()
    try:
        await stack.start()
        print(f"CloudStack API: {stack.api_url}")
        admin = CsCli(stack.api_url, admin_key, admin_secret, who="admin")
        if args.up:
            await run_up(stack, admin, check)
            return 0
        user, offering, source = await provision(stack, admin)
        await main_job(stack, admin, user, offering, source, check)
        await producer_job(stack, user, check)
    except Exception as error:
        check(False, f"the demo stopped: {error!r}")
        stack.print_logs()
    finally:
        clean = await stack.stop()
        sim.stop()
    if not clean:
        check(False, "every service stopped cleanly")
    print(f"\n{'ALL CHECKS PASSED' if not check.failed else f'{len(check.failed)} CHECK(S) FAILED'}")
    return 0 if not check.failed else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--up", action="store_true", help="run the stack until Ctrl-C instead of the demo")
    parser.add_argument(
        "--api-port", type=int, default=int(os.environ.get("API_PORT", "8080")),
        help="the API's port with --up (default $API_PORT or 8080; the demo takes any free port)",
    )  # fmt: skip
    sys.exit(asyncio.run(demo(parser.parse_args())))
