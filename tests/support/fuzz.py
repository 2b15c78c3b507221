"""Messages fuzzed from the contracts: every command and query type, drawn with Hypothesis.

Nothing here is written per message type. The targets are every command and query of the
catalogue (``contracts.catalogue.CATALOGUE``); a payload starts from a value its model's JSON
schema allows (``model_json_schema``) and gets one defect of a kind (``KINDS``): a value out of
its bounds (integers past their range, bad UUIDs, values outside an enum, strings past their
length or pattern), a value of another JSON type, a required field taken out, a field the model
does not have, a huge or a unicode string, a schema version no service reads, a body that is not
an envelope at all (bytes, JSON that is not an object, an object that is no envelope), or a
routing key that is not the message's.

``expect`` says what the contracts and the topology make of each message where it lands (no
service code is asked): the queue it reaches, whether its model accepts it, and so which reply
it must get. A defect that leaves the message valid after all (lax parsing turns ``"7"`` into 7,
a unicode name within bounds is a name) makes it *valid but refused*: it is sent by a broker user
the services do not know, so it is refused before any handler runs.

The draws are Hypothesis's (``generate``): seeded, so ``FUZZ_SEED`` replays a run exactly.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import re
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import ValidationError

from contracts.base import AgentCommand, Command, snake
from contracts.catalogue import CATALOGUE, MessageSpec
from contracts.envelope import Envelope
from contracts.identity import producers_may_send
from contracts.topology import COMMANDS, QUERIES, TOPOLOGY, QueueSpec, agent_commands_queue

KINDS = (
    "bad_value",
    "wrong_type",
    "missing_field",
    "extra_field",
    "huge_string",
    "unicode_string",
    "schema_version",
    "non_envelope",
    "wrong_routing_key",
)
HUGE = 4_097  # characters: past every string bound of the contracts (the longest is 4,096)
PLACEHOLDER_ID = "f0220000-0000-4000-8000-000000000000"  # the message id, until each message has its own
SENT_AT = "2026-01-01T00:00:00+00:00"  # one instant for every message: a replay sends the same bytes
RUN_IDS = uuid.UUID("f0220000-0000-4000-8000-000000000001")
PRODUCER_COMMAND_KEYS = re.compile(r"^(planner|storage)\.")  # what a producer's topic permissions allow
PRODUCER_QUERY_KEYS = re.compile(r"^(planner|storage|audit)\.")


def targets() -> list[MessageSpec]:
    """Every command and query type the contracts define."""
    return [spec for spec in CATALOGUE if spec.kind in ("command", "query")]


# -- values from a JSON schema ----------------------------------------------------------------------

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
UNICODE = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=80
) | st.sampled_from(["ünïcødé ✓", "🚀" * 40, "名前", "\u202eevil", "Ω≈ç√∫", "\ufeffbom", "a\u0301" * 30])
CONTROL = st.sampled_from(["\x00", "\x01", "\x1f", "\x7f", "\n", "\t", "\r"])
BAD_UUIDS = st.sampled_from(
    ["", "0", "not-a-uuid", "00000000-0000-0000-0000-00000000000", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
     "{}", "12345678-1234-5678-1234-5678123456789", "\x00" * 36]
) | st.text(max_size=40).filter(lambda s: not _is_uuid(s))  # fmt: skip


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


@functools.cache
def schema_of(model) -> Schema:
    return Schema(model)


class Schema:
    """One model's JSON schema, and strategies for values it allows and values it refuses."""

    def __init__(self, model):
        self.root = model.model_json_schema()
        self.defs = self.root.get("$defs", {})
        self._objects: dict[int, st.SearchStrategy] = {}

    def resolve(self, node: dict) -> dict:
        while "$ref" in node:
            node = self.defs[node["$ref"].rsplit("/", 1)[-1]]
        return node

    def options(self, node: dict) -> list[dict]:
        """The alternatives of a node (``X | None`` is two), resolved."""
        node = self.resolve(node)
        if "anyOf" in node:
            return [o for sub in node["anyOf"] for o in self.options(sub)]
        return [node]

    def valid(self, node: dict) -> st.SearchStrategy:
        return st.one_of([self._valid(o) for o in self.options(node)])

    def _valid(self, node: dict) -> st.SearchStrategy:
        if "const" in node:
            return st.just(node["const"])
        if "enum" in node:
            return st.sampled_from(node["enum"])
        kind = node.get("type")
        if kind == "null":
            return st.none()
        if kind == "boolean":
            return st.booleans()
        if kind == "integer":
            return st.integers(node.get("minimum"), node.get("maximum"))
        if kind == "number":
            return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False)
        if kind == "string":
            low, high = node.get("minLength", 0), min(node.get("maxLength", 40), 40)
            if node.get("format") == "uuid":
                return st.uuids().map(str)
            if node.get("format") == "date-time":
                return st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat)
            if "pattern" in node:
                return st.from_regex(node["pattern"], fullmatch=True).filter(lambda s: low <= len(s) <= high)
            return st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=low,
                           max_size=max(low, high))  # fmt: skip
        if kind == "array":
            items = self.valid(node.get("items", {}))
            return st.lists(items, min_size=node.get("minItems", 0), max_size=min(node.get("maxItems", 3), 3))
        if kind == "object" or "properties" in node:
            return self.object(node)
        return ANY_JSON

    def object(self, node: dict) -> st.SearchStrategy:
        key = id(node)
        if key not in self._objects:
            self._objects[key] = self._object(node)
        return self._objects[key]

    def _object(self, node: dict) -> st.SearchStrategy:
        node = self.resolve(node)
        properties = node.get("properties", {})
        required = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {name: self.valid(sub) for name, sub in properties.items() if name in required},
            optional={name: self.valid(sub) for name, sub in properties.items() if name not in required},
        )

    def out_of_bounds(self, node: dict) -> st.SearchStrategy:
        """Values of the node's JSON type that break one of its bounds (or, without bounds, junk)."""
        bad = []
        for o in self.options(node):
            kind = o.get("type")
            if "enum" in o or "const" in o:
                allowed = o.get("enum", [o.get("const")])
                bad.append(st.text(max_size=20).filter(lambda s, allowed=allowed: s not in allowed))
            elif kind == "integer":
                low, high = o.get("minimum"), o.get("maximum")
                edges = [2**63, -(2**63) - 1, 10**20]
                edges += [low - 1, low - 2**31] if low is not None else []
                edges += [high + 1, high * 2 + 1] if high is not None else []
                bad.append(st.sampled_from(edges))
            elif kind == "string" and o.get("format") == "uuid":
                bad.append(BAD_UUIDS)
            elif kind == "string" and o.get("format") == "date-time":
                bad.append(st.sampled_from(["yesterday", "2026-13-45T00:00:00Z", "", "T", "9" * 30]))
            elif kind == "string":
                high, low = o.get("maxLength"), o.get("minLength", 0)
                if high is not None:
                    bad.append(st.integers(high + 1, high + 64).map(lambda n: "x" * n))
                if low > 0:
                    bad.append(st.just(""))
                if "pattern" in o:
                    bad.append(st.sampled_from(["a.b", "a*", "#", " ", "a b", "ä", "..", "a\x00"]))
                bad.append(st.tuples(st.text(max_size=8), CONTROL).map("".join))
            elif kind == "array":
                items = self.valid(o.get("items", {}))
                top = o.get("maxItems", 10)
                bad.append(st.lists(items, min_size=top + 1, max_size=top + 2))
                bad.append(st.lists(self.out_of_bounds(o.get("items", {})), min_size=1, max_size=2))
            elif kind == "object" or "properties" in o:
                bad.append(self.object(o).flatmap(lambda value, o=o: self.mutated(o, value)))
        return st.one_of(bad) if bad else ANY_JSON

    def wrong_type(self, node: dict) -> st.SearchStrategy:
        kinds = sorted({str(o.get("type")) for o in self.options(node)})  # in an order a replay keeps
        candidates = {
            "string": st.integers() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False),
            "integer": st.text(max_size=10)
            | st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
            "boolean": st.text(max_size=10) | st.integers(min_value=2) | st.lists(st.booleans(), max_size=2),
            "array": st.text(max_size=10)
            | st.integers()
            | st.dictionaries(st.text(max_size=4), JSON_SCALARS),
            "object": st.text(max_size=10) | st.integers() | st.lists(JSON_SCALARS, max_size=2),
            "null": st.text(max_size=10) | st.integers(),
        }
        pools = [candidates[k] for k in kinds if k in candidates]
        return st.one_of(pools) if pools else st.lists(JSON_SCALARS, max_size=2)

    def mutated(self, node: dict, value: dict, kind: str = "bad_value") -> st.SearchStrategy:
        """``value`` (an object valid for ``node``) with one field given a defect of ``kind``."""
        node = self.resolve(node)
        properties = node.get("properties", {})
        required = list(node.get("required", ()))
        if kind == "missing_field" and required:
            return st.sampled_from(required).map(lambda name: {k: v for k, v in value.items() if k != name})
        if kind == "extra_field" or not properties:
            names = st.text(min_size=1, max_size=12).filter(lambda n: n not in properties) | st.just(
                "payload"
            )
            return st.tuples(names, ANY_JSON).map(lambda kv: {**value, kv[0]: kv[1]})
        strings = [
            n for n, sub in properties.items() if any(o.get("type") == "string" for o in self.options(sub))
        ]
        if kind in ("huge_string", "unicode_string") and strings:
            texts = st.integers(HUGE, 20 * HUGE).map(lambda n: "Ω" * n) if kind == "huge_string" else UNICODE
            return st.tuples(st.sampled_from(strings), texts).map(lambda nt: {**value, nt[0]: nt[1]})
        bad = self.wrong_type if kind == "wrong_type" else self.out_of_bounds
        return st.sampled_from(sorted(properties)).flatmap(
            lambda name: bad(properties[name]).map(lambda v, name=name: {**value, name: v})
        )


# -- messages ------------------------------------------------------------------------------------------


@dataclass
class Fuzzed:
    """One message to publish, and what it is meant to be."""

    index: int
    target: MessageSpec  # the command or query it was drawn from
    kind: str
    exchange: str
    routing_key: str
    body: bytes
    message_id: str  # the AMQP message id, and the envelope's where there is one
    sender: str = "producer"  # producer (registered), stranger (unknown to the services), harness
    amqp_type: str | None = None  # the AMQP type property: the target's type unless the fuzz chose one
    foreign_reply_to: bool = False  # reply_to names a queue that is not the sender's own

    def __post_init__(self):
        if self.amqp_type is None:
            self.amqp_type = self.target.type


def routing_key(spec: MessageSpec, zone: str) -> str:
    if issubclass(spec.model, AgentCommand):
        return f"agent.{zone}.{snake(spec.type)}"
    return f"{spec.model.service}.{snake(spec.type)}"


def envelope_dict(spec: MessageSpec, payload: Any, message_id: str, *, schema_version: Any = None) -> dict:
    return {
        "message_id": message_id,
        "type": spec.type,
        "schema_version": spec.model.schema_version if schema_version is None else schema_version,
        "correlation_id": None,
        "occurred_at": SENT_AT,
        "source": "fuzz",
        "actor": {"role": "service"},
        "payload": payload,
    }


NON_ENVELOPES = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"null", b"[]", b"42", b'"text"', b"{", b'{"type": 1}', b"\xff\xfe\x00", b"true"]),
    ANY_JSON.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),
    st.integers(300, 3000).map(lambda depth: b"[" * depth + b"]" * depth),  # nesting past any parser's limit
)


def _other_keys(spec: MessageSpec, zone: str) -> st.SearchStrategy:
    """Routing keys that are not the message's: another type's, another service's, no queue's."""
    own = routing_key(spec, zone)
    keys = [routing_key(other, zone) for other in targets() if other.kind == spec.kind]
    service = own.split(".")[0]
    odd = [f"{own}.extra", own.rsplit(".", 1)[0], f"{service}.nothing_of_the_kind",
           "agent.zone-else.clone_from_snapshot", "nowhere.at_all", f"{service}.{spec.type}"]  # fmt: skip
    return st.sampled_from(sorted({*keys, *odd} - {own}))


@st.composite
def fuzzed(draw, index: int, spec: MessageSpec, kind: str, zone: str) -> Fuzzed:
    schema = schema_of(spec.model)
    payload = draw(schema.object(schema.root))
    exchange = QUERIES.name if spec.kind == "query" else COMMANDS.name
    key = routing_key(spec, zone)
    version, message_id = None, PLACEHOLDER_ID
    if kind == "missing_field" and (not schema.root.get("required") or draw(st.booleans())):
        # a field the envelope requires, or the payload itself
        envelope = envelope_dict(spec, payload, message_id)
        del envelope[draw(st.sampled_from(["type", "schema_version", "occurred_at", "source", "payload"]))]
        return Fuzzed(index, spec, kind, exchange, key, json.dumps(envelope).encode(), message_id)
    if kind == "non_envelope":
        body = draw(NON_ENVELOPES | ANY_JSON.map(lambda v: json.dumps({"payload": v}).encode()))
        # the AMQP type too, now and then: none, or one no catalogue has
        amqp_type = draw(
            st.sampled_from([spec.type, spec.type, "", "Nothing"]) | st.text(min_size=1, max_size=40)
        )
        return Fuzzed(index, spec, kind, exchange, key, body, message_id, amqp_type=amqp_type)
    if kind == "schema_version":
        version = draw(
            st.integers(spec.model.schema_version + 1, 2**31) | st.sampled_from([0, -1, "1", 1.5, None, [1]])
        )
    elif kind == "huge_string" and draw(st.integers(0, 3)) == 0:  # in the envelope, not the payload
        envelope = envelope_dict(spec, payload, message_id)
        envelope[draw(st.sampled_from(["type", "source"]))] = "Ω" * draw(st.integers(HUGE, 20 * HUGE))
        return Fuzzed(
            index, spec, kind, exchange, key, json.dumps(envelope, ensure_ascii=False).encode(), message_id
        )
    elif kind == "wrong_routing_key":
        key = draw(_other_keys(spec, zone))
        if draw(st.booleans()):  # half the time the payload is broken too
            payload = draw(schema.mutated(schema.root, payload, draw(st.sampled_from(KINDS[:6]))))
    else:
        payload = draw(schema.mutated(schema.root, payload, kind))
    envelope = envelope_dict(spec, payload, message_id, schema_version=version)
    return Fuzzed(
        index, spec, kind, exchange, key, json.dumps(envelope, ensure_ascii=False).encode(), message_id
    )


def generate(count: int, seed: int, zone: str) -> list[Fuzzed]:
    """``count`` messages spread evenly over every target and kind, drawn by Hypothesis from ``seed``
    (one seeded run per target and kind), in a seeded random order."""
    cells = [(spec, kind) for kind in KINDS for spec in targets()]  # every type first, then every kind
    out: list[Fuzzed] = []
    with _no_local_constants():
        for number, (spec, kind) in enumerate(cells):
            quota = count // len(cells) + (number < count % len(cells))
            out += _draw(spec, kind, quota, zlib.crc32(f"{seed}:{spec.key}:{kind}".encode()), zone)
    assert len(out) == count, f"drew {len(out)} of {count}"
    random.Random(seed).shuffle(out)
    for index, message in enumerate(out):
        message.index = index
        message.message_id = str(uuid.uuid5(RUN_IDS, f"{seed}:{index}"))  # each its own, and replayable
        message.body = message.body.replace(PLACEHOLDER_ID.encode(), message.message_id.encode())
        settle_sender(message, zone)
    return out


@contextlib.contextmanager
def _no_local_constants():
    """Hypothesis also draws literals it finds in the project's modules that happen to be imported,
    so what a seed draws would depend on what else the process loaded (pytest's test modules, or
    not). Without them a seed draws the same messages wherever it runs."""
    from hypothesis.internal.conjecture import providers

    found = getattr(providers, "_get_local_constants", None)
    if found is None:  # a Hypothesis without the feature
        yield
        return
    providers._get_local_constants = providers.Constants  # an empty pool
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = found
        providers.CONSTANTS_CACHE.cache.clear()


def _draw(spec: MessageSpec, kind: str, quota: int, seed: int, zone: str) -> list[Fuzzed]:
    drawn: list[Fuzzed] = []
    # Hypothesis stops early once it has seen every case of a small space (a query with no fields
    # has few): draw again with the next seed until the cell has its share.
    for attempt in range(quota + 2):
        if len(drawn) >= quota:
            break

        @settings(max_examples=quota - len(drawn), database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @hypothesis_seed(seed + attempt)
        @given(fuzzed(0, spec, kind, zone))
        def collect(message: Fuzzed) -> None:
            drawn.append(message)

        if quota - len(drawn) > 0:
            collect()
    return drawn[:quota]


# -- what each message must meet ---------------------------------------------------------------------


def _topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ's topic match for the patterns of service queues (``*`` is one word)."""
    words = [r"[^.]+" if w == "*" else (r".*" if w == "#" else re.escape(w)) for w in pattern.split(".")]
    return re.fullmatch(r"\.".join(words), key) is not None


def service_queue(exchange: str, key: str, zone: str) -> QueueSpec | None:
    """The service queue (commands or queries) a message reaches; the audit's copy aside."""
    for spec in (*TOPOLOGY.queues, agent_commands_queue(zone)):
        if not spec.name.endswith((".commands", ".queries")):
            continue
        if any(b.exchange.name == exchange and _topic_matches(b.routing_key, key) for b in spec.bindings):
            return spec
    return None


@dataclass(frozen=True)
class Expected:
    queue: str | None  # None: no service queue takes it (only the audit's copy)
    valid: bool  # the queue's service would handle it, were its sender allowed to
    reply: type[Command] | None  # the command whose <Command>Failed it must get
    code: int | None  # 431 invalid, 531 refused; None: no reply (dead-lettered or unroutable)
    dead_lettered: bool


def expect(message: Fuzzed, zone: str) -> Expected:
    queue = service_queue(message.exchange, message.routing_key, zone)
    if queue is None:
        return Expected(None, False, None, None, False)
    namespace = queue.name.split(".")[0]
    valid, model = _valid_at(message.body, namespace, message.routing_key)
    # a query's answer goes only to its reply-to, and only when that is the sender's own queue
    answered = not message.foreign_reply_to
    if valid:
        # valid, from a sender the services refuse: a command gets its 531, a query a QueryFailed
        if issubclass(model, Command):
            return Expected(queue.name, True, model, 531, False)
        return Expected(queue.name, True, None, 531 if answered else None, False)
    named = {message.amqp_type, message.routing_key.rsplit(".", 1)[-1]}
    meant = [s for s in CATALOGUE if s.namespace == namespace and s.kind in ("command", "query")]
    for kind in ("command", "query"):  # the dispatcher's order: a command it names first
        spec = next(
            (s for s in meant if s.kind == kind and (s.type in named or snake(s.type) in named)), None
        )
        if spec is not None and kind == "command":
            return Expected(queue.name, False, spec.model, 431, True)
        if spec is not None:
            return Expected(queue.name, False, None, 431 if answered else None, True)
    return Expected(queue.name, False, None, None, True)


def _valid_at(body: bytes, namespace: str, routing_key: str):
    """Whether the service of ``namespace`` would take ``body`` as one of its commands or queries
    (under ``routing_key``: a message under another key than its own is refused as invalid)."""
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError:
        return False, None
    spec = CATALOGUE.get(namespace, envelope.type)
    if (
        spec is None
        or spec.kind not in ("command", "query")
        or envelope.schema_version > spec.model.schema_version
    ):
        return False, None
    try:
        message = spec.model.model_validate(envelope.payload)
    except ValidationError:
        return False, None
    if routing_key != message.routing_key():
        return False, None
    return True, spec.model


def settle_sender(message: Fuzzed, zone: str) -> None:
    """Who sends it: a producer may publish only planner/storage commands and planner/storage/audit
    queries; anything else goes as the harness (a service user), and then it must not be valid,
    for a service user's valid command would run. A message valid where it lands goes as a stranger."""
    pattern = PRODUCER_QUERY_KEYS if message.exchange == QUERIES.name else PRODUCER_COMMAND_KEYS
    producer_may = bool(pattern.match(message.routing_key))
    valid = expect(message, zone).valid
    if producer_may:
        message.sender = "stranger" if valid or message.index % 10 == 0 else "producer"
        message.foreign_reply_to = message.sender == "producer" and message.index % 50 == 7
        return
    message.sender = "harness"
    if valid:  # make it invalid for sure: a field no model has (its kind stays the one drawn)
        envelope = json.loads(message.body)
        envelope["payload"]["fuzz_unknown_field"] = True
        message.body = json.dumps(envelope).encode()
    assert not expect(message, zone).valid


def producers_sendable(spec: MessageSpec) -> bool:
    return producers_may_send(spec.model)


def tally(messages: list[Fuzzed]) -> tuple[Counter, Counter]:
    return Counter(m.target.key for m in messages), Counter(m.kind for m in messages)


# -- vCenter, as it is ---------------------------------------------------------------------------------


def vcenter_inventory(url: str) -> dict[str, tuple]:
    """Every managed entity of the simulator by id: its kind, name, and for VMs what a command could
    change (power, snapshots, devices, extraConfig); every file of every datastore."""
    import ssl
    import urllib.parse

    from pyVim.connect import Disconnect, SmartConnect
    from pyVmomi import vim

    parts = urllib.parse.urlsplit(url)
    si = SmartConnect(host=parts.hostname, port=parts.port, user=urllib.parse.unquote(parts.username or ""),
                      pwd=urllib.parse.unquote(parts.password or ""),
                      sslContext=ssl._create_unverified_context())  # fmt: skip
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ManagedEntity], True)
        out: dict[str, tuple] = {}
        for entity in view.view:
            state: tuple = (type(entity).__name__, entity.name)
            if isinstance(entity, vim.VirtualMachine):
                snapshots = []
                stack = list(entity.snapshot.rootSnapshotList) if entity.snapshot else []
                while stack:
                    node = stack.pop()
                    snapshots.append(node.name)
                    stack += list(node.childSnapshotList)
                config = entity.config
                devices = sorted(
                    (d.key, type(d).__name__, getattr(getattr(d, "backing", None), "fileName", None),
                     getattr(d, "capacityInBytes", None))
                    for d in (config.hardware.device if config else [])
                )  # fmt: skip
                extra = sorted((o.key, str(o.value)) for o in (config.extraConfig if config else []))
                hardware = (config.hardware.numCPU, config.hardware.memoryMB) if config else None
                state += (str(entity.runtime.powerState), tuple(sorted(snapshots)), tuple(devices),
                          tuple(extra), hardware)  # fmt: skip
            if isinstance(entity, vim.Datastore):
                state += (tuple(_datastore_files(entity)),)
            out[entity._moId] = state
        view.Destroy()
        return out
    finally:
        Disconnect(si)


def _datastore_files(datastore) -> list[str]:
    from pyVmomi import vim

    task = datastore.browser.SearchDatastoreSubFolders_Task(
        f"[{datastore.name}]", vim.host.DatastoreBrowser.SearchSpec(matchPattern=["*"])
    )
    from pyVim.task import WaitForTask

    WaitForTask(task)
    return sorted(f"{r.folderPath}{f.path}" for r in task.info.result for f in r.file)
