"""Fuzz generated from the contracts (tests/support/fuzz.py), against every service as a process.

``FUZZ_MESSAGES`` messages (1,000 in every test run; ``make fuzz`` sends 10,000) spread over every
command and query type, each with one defect, published by a registered producer (its principal
is a user of an account), by a broker user the services do not know (what is valid but not
theirs to send), and by the harness (a service user) where a producer's permissions stop
(agent commands, keys no producer may publish on). ``FUZZ_SEED`` replays a run.

What must hold, each waited for with a deadline, never a sleep:
- every service process is up at the end, and answered every message;
- each invalid command gets one ``<Command>Failed`` with 431 (not retryable) at once, and each
  invalid query a ``QueryFailed`` 431, and is dead-lettered once, never redelivered; a message
  that names no command or query of the queue it reached is dead-lettered once; a valid message
  from a sender that may not send it gets a 531 refusal, and is not dead-lettered;
- no reply goes to a queue that is not the sender's own;
- no service logs a retry, no reply succeeds, no answer is other than 431 or 531;
- nothing changes in the database (every table of every service schema) nor in vCenter.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import multiprocessing
import os
import random
import time
import uuid
from collections import Counter, defaultdict

import aio_pika
import asyncpg
import pytest

from contracts.envelope import Envelope
from snapdeploy.local.producer import Producer, register
from tests.e2e.cloud import ACCOUNT, offering, prepare, snapshot
from tests.support import fuzz
from tests.support.stack import ZONE, Stack

COUNT = int(os.environ.get("FUZZ_MESSAGES", "1000"))
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300 + COUNT // 10)]  # 10,000 messages: ~4 minutes

# Tables whose rows a refused message adds by design, and why they are left out of "nothing changed":
# - <schema>.outbox: the 431/531 replies on their way (the transactional outbox of DESIGN 4);
#   what they carry is checked as replies here.
# - audit.events, audit.cloudstack_events: the audit trail stores every message on the bus, the
#   refused ones included, as they were sent (its purpose); audit.ingest's own checks cover them.
APPEND_ONLY = {"outbox", "events", "cloudstack_events"}
PUBLISH_CONCURRENCY = 64
# Before the fuzz: no periodic inventory sync (it writes sightings and would be "a change" the
# fuzz did not cause); the watchdog stays as it is.
QUIET = {"reconcile_interval": 0}


async def test_fuzzed_messages_get_431_or_their_dlq_and_change_nothing(service_env, broker, vhost):
    count = COUNT
    seed = int(os.environ.get("FUZZ_SEED") or random.randrange(2**32))
    print(f"\ncontract fuzz seed {seed} (replay: make fuzz FUZZ_MESSAGES={count} FUZZ_SEED={seed})")
    started = time.monotonic()
    # Drawn in a process of its own while the stack starts (Hypothesis is CPU-bound, and would
    # share this process's interpreter lock with the event loop).
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    drawing = asyncio.get_running_loop().run_in_executor(pool, fuzz.generate, count, seed, ZONE)
    async with Stack(service_env, storage=1, planner=1, audit=1, **QUIET) as cloud:
        source = await prepare(cloud)  # records and vCenter objects the fuzz could touch, and must not
        await snapshot(cloud, source.vm_id, "S1")
        await offering(cloud)
        messages = await drawing
        pool.shutdown()
        generated = time.monotonic() - started
        async with Producer(await vhost.producer()) as producer, Producer(await vhost.producer()) as stranger:
            await register(cloud, producer, ACCOUNT)
            trap = await Trap.open(cloud.env["AMQP_URL"])  # a queue no producer owns
            await quiescent(broker, vhost.name)
            rows_before = await database_rows(service_env["DATABASE_URL"])
            vcenter_before = await asyncio.to_thread(fuzz.vcenter_inventory, cloud.sim.url)
            tasks_before = vcenter_tasks(cloud.sim)

            senders = {"producer": producer, "stranger": stranger, "harness": cloud}
            sent_at = time.monotonic()
            await publish_all(messages, senders, trap.name)
            published = time.monotonic() - sent_at

            expected = {m.message_id: fuzz.expect(m, ZONE) for m in messages}
            await quiescent(broker, vhost.name, timeout=120 + count / 20)
            dead = await dead_letters(cloud.env["AMQP_URL"])
            replies = await replies_to(messages, expected, cloud, [producer, stranger])
            handled = time.monotonic() - sent_at

            rows_after = await database_rows(service_env["DATABASE_URL"])
            tasks_after = vcenter_tasks(cloud.sim)  # before the inventory below, which runs searches
            vcenter_after = await asyncio.to_thread(fuzz.vcenter_inventory, cloud.sim.url)
            trapped = await trap.close()

        alive = [p.name for p in cloud.processes if p.proc.poll() is None]
        retries = [
            (p.name, line.get("error"))
            for p in cloud.processes
            for line in p.lines
            if line.get("event")
            in ("transient failure, will retry", "delivery limit reached, dead-lettering")
        ]
        problems = check(messages, expected, replies, dead)
        changed_rows = {
            table: {"gone": sorted(set(rows_before.get(table, [])) - set(rows_after.get(table, [])))[:3],
                    "new": sorted(set(rows_after.get(table, [])) - set(rows_before.get(table, [])))[:3]}
            for table in rows_before.keys() | rows_after.keys()
            if rows_before.get(table) != rows_after.get(table)
        }  # fmt: skip
        changed_vcenter = diff(vcenter_before, vcenter_after)
        new_tasks = {
            m: n - tasks_before.get(m, 0) for m, n in tasks_after.items() if n != tasks_before.get(m, 0)
        }

        figures = render(messages, expected, replies, dead, problems, alive, cloud.processes, retries,
                         changed_rows, changed_vcenter, new_tasks, trapped,
                         timing=(generated, published, handled), seed=seed)  # fmt: skip
        print(figures)
        assert len(alive) == len(cloud.processes), figures
        assert not problems, "\n".join(problems[:40])
        assert not retries, retries[:10]
        assert not trapped, f"replies sent to a queue that is not the sender's: {trapped[:5]}"
        assert not changed_rows, changed_rows
        assert not changed_vcenter and not new_tasks, (changed_vcenter, new_tasks)


# -- publishing ------------------------------------------------------------------------------------


async def publish_all(messages: list[fuzz.Fuzzed], senders: dict, trap: str) -> None:
    limit = asyncio.Semaphore(PUBLISH_CONCURRENCY)

    async def one(message: fuzz.Fuzzed) -> None:
        sender = senders[message.sender]
        reply_to = sender.reply_to or sender.client.inbox
        if message.foreign_reply_to:
            reply_to = trap  # a producer asking for its answer in a queue not its own
        async with limit:
            await sender.bus.publish_raw(
                message.exchange,
                message.routing_key,
                message.body,
                message_id=message.message_id,
                type=message.amqp_type or None,
                correlation_id=message.message_id,
                reply_to=reply_to,
            )

    await asyncio.gather(*(one(m) for m in messages))


class Trap:
    """A queue named like a service's, where no reply to a producer may ever arrive."""

    def __init__(self, connection, queue, name: str):
        self.connection, self.queue, self.name = connection, queue, name

    @classmethod
    async def open(cls, url: str) -> Trap:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        name = f"storage.fuzz-trap-{uuid.uuid4().hex[:8]}"
        queue = await channel.declare_queue(name, arguments={"x-queue-type": "quorum"}, durable=True)
        return cls(connection, queue, name)

    async def close(self) -> list[str]:
        caught = []
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            caught.append(f"{message.type} from {message.user_id}")
        await self.queue.delete(if_unused=False, if_empty=False)
        await self.connection.close()
        return caught


# -- what came of them -------------------------------------------------------------------------------


async def quiescent(broker, vhost: str, timeout: float = 60.0) -> None:
    """Every service queue empty, nothing unacked: each message was settled (deadline, not a sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        listing = await asyncio.to_thread(broker.ctl, "list_queues", "-p", vhost, "name", "messages",
                                          "--no-table-headers")  # fmt: skip
        busy = {
            name: int(n)
            for name, n in (line.split() for line in listing.splitlines() if line.strip())
            if name.split(".")[0] in ("planner", "storage", "agent", "audit") and not name.endswith(".dlq")
            and "fuzz-trap" not in name and int(n)
        }  # fmt: skip
        if not busy:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"queues still hold messages after {timeout}s: {busy}")
        await asyncio.sleep(0.2)


DLQS = (
    "planner.commands.dlq", "storage.commands.dlq", f"agent.{ZONE}.commands.dlq", "planner.queries.dlq",
    "storage.queries.dlq", "audit.queries.dlq", "planner.replies.dlq", "storage.replies.dlq",
    "audit.replies.dlq", "audit.ingest.dlq",
)  # fmt: skip


async def dead_letters(url: str) -> dict[str, list[dict]]:
    """Every dead letter by queue: its message id, the x-death records (reason, count), redelivered."""
    connection = await aio_pika.connect(url)
    out: dict[str, list[dict]] = {}
    try:
        channel = await connection.channel()
        for name in DLQS:
            queue = await channel.declare_queue(name, passive=True)
            letters = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                deaths = message.headers.get("x-death") or []
                letters.append({
                    "message_id": message.message_id,
                    "deaths": [(d.get("queue"), d.get("reason"), int(d.get("count", 0))) for d in deaths],
                    "delivery_count": int(message.headers.get("x-delivery-count") or 0),
                })  # fmt: skip
            out[name] = letters
    finally:
        await connection.close()
    return out


async def replies_to(messages, expected, cloud: Stack, producers) -> dict[str, list[Envelope]]:
    """The replies each message got: a command's from the events exchange, a query's from the queue
    of the producer that asked; waited for until every expected one has come."""
    ids = {m.message_id for m in messages}
    wanted = {i for i, e in expected.items() if e.code}
    subscriptions = [cloud.events, *(p.events for p in producers)]

    def seen() -> list[Envelope]:
        return [e for s in subscriptions for e in list(s.seen)]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while missing := wanted - {str(e.causation_id) for e in seen()}:
        if loop.time() > deadline:
            raise TimeoutError(f"{len(missing)} expected replies never came, e.g. {sorted(missing)[:3]}")
        await asyncio.sleep(0.1)
    out: dict[str, dict[uuid.UUID, Envelope]] = defaultdict(dict)
    for envelope in seen():
        cause = str(envelope.causation_id)
        if cause in ids and envelope.type.endswith(("Failed", "Succeeded")):
            out[cause][envelope.message_id] = envelope
    return {cause: list(found.values()) for cause, found in out.items()}


def check(messages, expected, replies, dead) -> list[str]:
    """What each message got against what it should have: a list of the differences."""
    problems = []
    letters = Counter((queue, letter["message_id"]) for queue, ls in dead.items() for letter in ls)
    for queue, ls in dead.items():
        for letter in ls:
            if letter["delivery_count"] or any(count != 1 or reason != "rejected"
                                               for _, reason, count in letter["deaths"]):  # fmt: skip
                problems.append(f"{letter['message_id']} in {queue} was redelivered: {letter}")
    for message in messages:
        want = expected[message.message_id]
        got = replies.get(message.message_id, [])
        what = f"#{message.index} {message.kind} {message.target.key} as {message.sender}"
        what += f" -> {message.routing_key}"
        if want.code is None and got:
            problems.append(f"{what}: expected no reply, got {[(r.type, r.payload) for r in got]}")
        if want.code is not None:
            if len(got) != 1:
                problems.append(f"{what}: expected one {want.code} reply, got {len(got)}")
            for reply in got:
                code = reply.payload.get("error_code")
                name = f"{want.reply.type_name()}Failed" if want.reply else "QueryFailed"
                if reply.type != name or code != want.code or reply.payload.get("retryable"):
                    problems.append(f"{what}: expected {name} {want.code}, got {reply.type} {reply.payload}")
                elif len(reply.payload.get("error_text", "")) > 1000:
                    problems.append(f"{what}: an error text of {len(reply.payload['error_text'])} characters")
        times = letters[(f"{want.queue}.dlq", message.message_id)] if want.queue else 0
        if times != int(want.dead_lettered):
            problems.append(
                f"{what}: dead-lettered {times} times in {want.queue}.dlq, expected {want.dead_lettered}"
            )
    return problems


async def database_rows(url: str) -> dict[str, list[str]]:
    """Every row of every table of every schema (sorted, as JSON), the append-only ones left out."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            """SELECT table_schema, table_name FROM information_schema.tables
               WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')"""
        )
        out = {}
        for t in tables:
            if t["table_name"] in APPEND_ONLY:
                continue
            name = f'"{t["table_schema"]}"."{t["table_name"]}"'
            out[name] = sorted(r[0] for r in await conn.fetch(f"SELECT to_jsonb(t)::text FROM {name} t"))
        return out
    finally:
        await conn.close()


def vcenter_tasks(sim) -> dict[str, int]:
    """How many times each vCenter task method was called: a task is a change (reads are not)."""
    return {m: n for m, n in sim.control("state")["requests"].items() if m.endswith("_Task")}


def diff(before: dict, after: dict) -> dict:
    return {
        k: (before.get(k), after.get(k))
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k)
    }


def render(messages, expected, replies, dead, problems, alive, processes, retries, changed_rows,
           changed_vcenter, new_tasks, trapped, *, timing, seed) -> str:  # fmt: skip
    by_type, by_kind = fuzz.tally(messages)
    senders = Counter(m.sender for m in messages)
    codes = Counter(r.payload.get("error_code") for rs in replies.values() for r in rs)
    dlq = {q: len(ls) for q, ls in dead.items() if ls}
    redelivered = sum(1 for ls in dead.values() for x in ls if x["delivery_count"] or
                      any(c != 1 for _, _, c in x["deaths"]))  # fmt: skip
    outcome = Counter(
        "valid, refused" if e.valid else ("invalid" if e.queue else "no queue") for e in expected.values()
    )
    generated, published, handled = timing
    lines = [
        f"contract fuzz: {len(messages)} messages, seed {seed}",
        f"  generated in {generated:.1f}s, published in {published:.1f}s, "
        f"all settled {handled:.1f}s after the first",
        f"  types: {len(by_type)} of {len(fuzz.targets())} commands and queries, "
        f"{min(by_type.values())}-{max(by_type.values())} messages each",
        "  by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items())),
        "  by sender: " + ", ".join(f"{k} {n}" for k, n in sorted(senders.items())),
        "  where they land: " + ", ".join(f"{k} {n}" for k, n in sorted(outcome.items())),
        f"  replies: 431 {codes.get(431, 0)}, 531 {codes.get(531, 0)}, other "
        f"{sum(n for c, n in codes.items() if c not in (431, 531))}",
        f"  dead-lettered: {sum(dlq.values())} ({', '.join(f'{q} {n}' for q, n in sorted(dlq.items()))})",
        f"  redeliveries: {redelivered}, retries logged: {len(retries)}",
        f"  replies to a queue not the sender's: {len(trapped)}",
        f"  services alive: {len(alive)} of {len(processes)} "
        f"({', '.join(sorted(p.name for p in processes))})",
        f"  database tables changed: {len(changed_rows)}, vCenter objects changed: {len(changed_vcenter)}, "
        f"vCenter tasks run: {sum(new_tasks.values())}",
        f"  mismatches: {len(problems)}",
    ]
    return "\n".join(lines)
