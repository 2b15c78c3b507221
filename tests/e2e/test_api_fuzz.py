"""A few thousand malformed requests to the api: every answer a CloudStack error, nothing created.

Each request starts from a well-formed one (ten commands, the admin's key) and gets exactly one
fatal defect: a bad, missing, foreign or tampered signature, an unknown key, an expired or
unreadable v3 ``expires``, a missing required parameter, a value of the wrong type, a control
character, a broken ``name[i].field`` bracket, an unknown or missing command, a body that is not
a form; plus up to two harmless-looking extras (unicode, huge values, duplicate parameters, odd
names). Half go as GET, half as POST. Every answer must be CloudStack's error shape: one
top-level key (``<command>response``, or ``errorresponse`` for an unknown command), an
``errorcode`` equal to the HTTP status and among the codes the defect calls for, an ``errortext``,
a JSON content type. The api must not crash (no 500, no 530, no traceback, still serving) and
nothing may exist afterwards that did not before, nor any command reach the bus.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import urllib.parse
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
import yarl
from cs import CloudStack
from cs.client import transform

from tests.e2e.api_cloud import caller
from tests.support.stack import Stack

pytestmark = pytest.mark.e2e

REQUESTS = 3000
CONCURRENCY = 16
UUID = "uuid"
TEMPLATES = {  # command: (parameters of a well-formed request, required ones)
    "listVirtualMachines": ({"id": UUID}, ()),
    "listZones": ({}, ()),
    "listVMSnapshot": ({"virtualmachineid": UUID}, ()),
    "deployVirtualMachine": (
        {"vmsnapshotid": UUID, "serviceofferingid": UUID, "name": "fz-1"},
        ("serviceofferingid",),
    ),
    "createServiceOffering": (
        {"name": "fz", "displaytext": "fz", "cpunumber": "1", "cpuspeed": "100", "memory": "128"},
        ("name", "cpunumber", "cpuspeed", "memory"),
    ),
    "createAccount": (
        {
            "accounttype": "0",
            "account": "fz",
            "username": "fz",
            "password": "pw",
            "email": "fz@example.org",
            "firstname": "F",
            "lastname": "Z",
        },
        ("username", "password"),  # CloudStack also requires email, firstname, lastname
    ),
    "createVMSnapshot": ({"virtualmachineid": UUID}, ("virtualmachineid",)),
    "registerUserKeys": ({"id": UUID}, ("id",)),
    "queryAsyncJobResult": ({"jobid": UUID}, ("jobid",)),
    "destroyVirtualMachine": ({"id": UUID}, ("id",)),
}
CONTROL = [chr(c) for c in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]]
WEIRD = ["ünïcødé ✓", "🚀" * 8, "'; DROP TABLE accounts; --", "%00", "a&b=c", "x" * 300, "\u202e", "名前"]
BROKEN_BRACKETS = [
    "details[0.key", "details]0[.key", "details[x].key", "details[0]", "details[0].", "details[[0]].key",
    "details[99999999999].key",
]  # fmt: skip
AUTH, PARAM, BRACKET, UNKNOWN, BODY = {401}, {431}, {430, 431}, {401, 432}, {401}


class Fuzzer:
    def __init__(self, endpoint: str, key: str, secret: str, seed: int):
        self.endpoint, self.key, self.secret = endpoint, key, secret
        self.rng = random.Random(seed)

    def signed(
        self, command: str | None, params: dict[str, str], *, secret: str | None = None,
        key: str | None = None, expires: str | None = "", version: str | None = "3",
    ) -> dict[str, str]:  # fmt: skip
        """Signed as cs signs; v3 with an expiry 10 minutes ahead unless told otherwise."""
        client = CloudStack(
            endpoint=self.endpoint, key=key or self.key, secret=secret or self.secret, expiration=-1
        )
        _, query = client._prepare_request(command or "x", **params)
        if command is None:
            query.pop("command")
        if version:
            query["signatureVersion"] = version
        if expires == "":
            expires = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S%z")
        if expires is not None:
            query["expires"] = expires
        transform(query)
        client._sign(query)
        return query

    def request(self) -> tuple[str, str, bytes | None, dict[str, str], set[int], set[str]]:
        """(method, query string, body, headers, allowed codes, allowed top-level keys)."""
        rng = self.rng
        command = rng.choice(list(TEMPLATES))
        template, required = TEMPLATES[command]
        params = {k: str(uuid.uuid4()) if v == UUID else v for k, v in template.items()}
        extra: list[tuple[str, str]] = []  # appended after signing (duplicates)
        for _ in range(rng.randint(0, 2)):
            noise = rng.choice(["unicode", "huge", "duplicate", "name"])
            if noise == "unicode":
                params["fuzzcomment"] = rng.choice(WEIRD)
            elif noise == "huge":  # a GET stays under the 8 KiB request line that servers take
                params["fuzzpadding"] = "".join(rng.choices(string.ascii_letters, k=rng.randint(1000, 3000)))
                if rng.random() < 0.5:
                    params["fuzzpadding"] *= 40  # up to 120 kB: only a POST body carries that
            elif noise == "duplicate" and params:
                extra.append((rng.choice(list(params)), rng.choice(WEIRD)))
            elif noise == "name":
                params[rng.choice(["FuzzName", "fuzz_ñame", "fuzz.name", "fuzz-name"])] = "1"
        codes, keys = AUTH, {f"{command.lower()}response", "errorresponse"}
        defect = rng.choice(
            ["no-signature", "bad-signature", "wrong-secret", "unknown-key", "no-apikey", "tampered",
             "expired", "bad-expires", "v3-no-expires", "odd-signature", "missing", "bad-uuid",
             "bad-integer", "control", "bracket", "unknown-command", "no-command", "json-body", "junk-body"]
        )  # fmt: skip
        query: dict[str, str] = {}
        uuids = [k for k, v in template.items() if v == UUID]
        listing = command.startswith("list")
        if (
            (defect == "missing" and not required)
            or (defect == "bad-uuid" and not uuids)
            or (defect == "bad-integer" and not listing and command != "createServiceOffering")
        ):
            defect = "control"  # this command has no such parameter: a defect every command can have
        if defect in ("missing", "bad-uuid", "bad-integer", "control", "bracket"):
            codes = BRACKET if defect == "bracket" else PARAM
            if extra:
                codes = codes | AUTH  # a duplicate may also change what was signed
            if defect == "missing":
                del params[rng.choice(required)]
            elif defect == "bad-uuid":
                params[rng.choice(uuids)] = rng.choice(["not-a-uuid", "1 OR 1=1", *WEIRD, "0" * 37])
            elif defect == "bad-integer" and not listing:
                params[rng.choice(["cpunumber", "cpuspeed", "memory"])] = rng.choice(
                    ["abc", "1.5", "0x10", "9" * 30, " 1", "1e3", "-"]
                )
            elif defect == "bad-integer":
                params[rng.choice(["page", "pagesize"])] = rng.choice(["abc", "-", "9" * 30, "1.0"])
            elif defect == "control":
                target = rng.choice(list(template) or ["keyword"]) if not listing else "keyword"
                params[target] = "a" + rng.choice(CONTROL) + "b"
            else:  # bracket, on a map parameter's name
                params[rng.choice(BROKEN_BRACKETS)] = "v"
            query = self.signed(command, params)
        elif defect in ("unknown-command", "no-command"):
            keys = {"errorresponse"}
            codes = UNKNOWN | {431}
            name = rng.choice(
                ["deployVirtualMachines", "DEPLOYVIRTUALMACHINE", "rm -rf /", "名前", "", "list"]
            )
            query = self.signed(None if defect == "no-command" else name, params)
        elif defect in ("json-body", "junk-body"):
            keys, codes = {"errorresponse"}, BODY
            signed = self.signed(command, params)
            body = (json.dumps(signed).encode() if defect == "json-body"
                    else bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))))  # fmt: skip
            ctype = "application/json" if defect == "json-body" else "application/octet-stream"
            return "POST", "", body, {"Content-Type": ctype}, codes, keys
        else:
            if defect == "wrong-secret":
                query = self.signed(command, params, secret="s" * 40)
            elif defect == "unknown-key":  # unversioned, as Libcloud signs
                query = self.signed(command, params, key=f"k-{uuid.uuid4()}", secret="s" * 40, version=None)
            elif defect == "expired":
                past = datetime.now(UTC) - timedelta(seconds=rng.randint(1, 10**6))
                query = self.signed(command, params, expires=past.strftime("%Y-%m-%dT%H:%M:%S%z"))
            elif defect == "bad-expires":
                unreadable = rng.choice(["tomorrow", "2030-13-45T99:99:99+0000", " ", "0", *WEIRD])
                query = self.signed(command, params, expires=unreadable)
            elif defect == "v3-no-expires":
                query = self.signed(command, params, expires=None)
            else:
                query = self.signed(command, params)
                if defect == "no-signature":
                    query.pop("signature")
                elif defect == "bad-signature":
                    sig = list(query["signature"])
                    i = rng.randrange(len(sig))
                    sig[i] = "A" if sig[i] != "A" else "B"
                    query["signature"] = "".join(sig)
                elif defect == "no-apikey":
                    query.pop("apiKey")
                elif defect == "tampered":
                    victim = rng.choice(
                        [k for k in query if k not in ("signature", "apiKey", "command", "response")]
                    )
                    query[victim] = query[victim] + "x"
                else:  # odd-signature (a control character may be refused as such: 431)
                    codes = AUTH | PARAM
                    query["signature"] = rng.choice(["", "=", "🚀", "A" * 5000, "%zz", *CONTROL[:3]])
        pairs = [*query.items(), *extra]
        encoded = "&".join(
            f"{urllib.parse.quote(k, safe='[]')}={urllib.parse.quote(v, safe='')}" for k, v in pairs
        )
        if rng.random() < 0.5 and len(encoded) < 7000:
            return "GET", encoded, None, {}, codes, keys
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return "POST", "", encoded.encode(), form, codes, keys


def shape_problem(status: int, content_type: str, raw: bytes, codes: set[int], keys: set[str]) -> str | None:
    """What is wrong with this answer as a CloudStack error, or None."""
    if not content_type.startswith("application/json"):
        return f"content type {content_type!r}"
    try:
        body = json.loads(raw)
    except ValueError:
        return "not JSON"
    if not isinstance(body, dict) or len(body) != 1:
        return f"not one top-level key: {list(body)[:3] if isinstance(body, dict) else type(body)}"
    [(key, inner)] = body.items()
    if key not in keys:
        return f"top-level key {key!r}, expected one of {sorted(keys)}"
    if not isinstance(inner, dict) or inner.get("errorcode") != status:
        return f"errorcode {inner.get('errorcode') if isinstance(inner, dict) else inner!r} != HTTP {status}"
    if status not in codes:
        return f"HTTP {status}, expected one of {sorted(codes)}"
    if not isinstance(inner.get("errortext"), str) or not inner["errortext"]:
        return "no errortext"
    return None


async def everything(admin) -> dict[str, list]:
    """What exists, as the admin sees it across every account."""
    lists = {
        "listAccounts": "account", "listVirtualMachines": "virtualmachine", "listVMSnapshot": "vmSnapshot",
        "listVolumes": "volume", "listServiceOfferings": "serviceoffering", "listAsyncJobs": "asyncjobs",
    }  # fmt: skip
    found = {}
    for command, key in lists.items():
        answer = await admin(command, listall="true")
        found[command] = sorted(item["id"] if "id" in item else item["jobid"] for item in answer.get(key, []))
    return found


async def test_malformed_requests_answer_cloudstack_errors_and_change_nothing(service_env):
    async with Stack(service_env, storage=1, planner=1, api=1) as cloud:
        admin = caller(CloudStack(endpoint=cloud.api_url, key=cloud.admin_key, secret=cloud.admin_secret))
        before = await everything(admin)
        mark = len(cloud.events.seen)
        fuzz = Fuzzer(cloud.api_url, cloud.admin_key, cloud.admin_secret, seed=11)
        statuses: Counter[int] = Counter()
        problems: list[str] = []
        todo = iter(range(REQUESTS))

        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                for _ in todo:
                    method, query, body, headers, codes, keys = fuzz.request()
                    url = yarl.URL(cloud.api_url + (f"?{query}" if query else ""), encoded=True)
                    async with session.request(method, url, data=body, headers=headers) as response:
                        raw = await response.read()
                        statuses[response.status] += 1
                        problem = shape_problem(
                            response.status, response.headers.get("Content-Type", ""), raw, codes, keys
                        )
                    if problem:
                        problems.append(
                            f"{problem}: {method} {query[:200]} {(body or b'')[:200]!r} -> {raw[:300]!r}"
                        )

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

        print(
            f"{REQUESTS} malformed requests: " + ", ".join(f"{n} x {c}" for c, n in sorted(statuses.items()))
        )
        assert sum(statuses.values()) == REQUESTS
        assert problems == [], f"{len(problems)} answers were not CloudStack errors, e.g.:\n" + "\n".join(
            problems[:15]
        )
        assert not statuses.keys() & {500, 530}, statuses

        # still serving, no crash logged, and nothing exists or reached the bus that did not before
        [api] = cloud.api_processes
        assert api.proc.poll() is None
        assert not [line for line in api.raw if "Traceback" in line]
        assert await everything(admin) == before
        made = await admin("createServiceOffering", name="fuzz-sentinel", displaytext="after the fuzz",
                           cpunumber=1, cpuspeed=100, memory=128)  # fmt: skip
        [sentinel] = await cloud.events.wait_for(
            lambda e: e.type == "CreateServiceOffering" and e.payload.get("name") == "fuzz-sentinel"
        )
        from_api = [e.type for e in list(cloud.events.seen)[mark:] if e.source == sentinel.source]
        assert from_api == ["CreateServiceOffering"], from_api
        assert made["serviceoffering"]["name"] == "fuzz-sentinel"
