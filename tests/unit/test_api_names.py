"""What the api keeps between requests: account names and service offerings (they never change once
made) and opened API secrets; each is read again only when something asked for is not known."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager

from contracts import planner
from services.api.accounts import Keyring
from services.api.commands.lookup import names
from services.api.context import ApiContext

ALICE, BOB, SMALL, LARGE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


class Accounts:
    """A pool whose one query is the accounts table."""

    def __init__(self, rows: dict[uuid.UUID, str]):
        self.rows, self.reads = rows, 0

    @asynccontextmanager
    async def acquire(self):
        yield self

    async def fetch(self, sql: str, *args):
        assert sql.startswith("SELECT uuid, name FROM accounts")
        self.reads += 1
        return [{"uuid": k, "name": v} for k, v in self.rows.items()]


class Offerings:
    """A planner answering ListServiceOfferings."""

    def __init__(self, *ids: uuid.UUID):
        self.ids, self.asked = list(ids), 0

    async def ask(self, query, *, timeout, actor):
        assert isinstance(query, planner.ListServiceOfferings)
        self.asked += 1
        return planner.ListServiceOfferingsResult(
            offerings=[
                planner.ServiceOffering(
                    id=i, name=f"o-{i.hex[:4]}", cpu_number=1, cpu_speed_mhz=100, memory_mb=128
                )
                for i in self.ids
            ]
        )


def context(accounts: Accounts, offerings: Offerings) -> ApiContext:
    return ApiContext(accounts, offerings, relay=None, keyring=Keyring("k"))


async def test_names_known_are_not_read_again_and_an_unknown_one_is():
    accounts, offerings = Accounts({ALICE: "alice"}), Offerings(SMALL)
    ctx = context(accounts, offerings)

    assert (await names(ctx, accounts=[], offerings=[])).accounts == {}
    assert (accounts.reads, offerings.asked) == (0, 0), "nothing named, nothing read"

    first = await names(ctx, accounts=[ALICE], offerings=[SMALL, None])
    again = await names(ctx, accounts=[ALICE, None], offerings=[SMALL])
    assert first.accounts == again.accounts == {ALICE: "alice"} and set(again.offerings) == {SMALL}
    assert (accounts.reads, offerings.asked) == (1, 1), "known names are kept"

    accounts.rows[BOB] = "bob"
    offerings.ids.append(LARGE)
    later = await names(ctx, accounts=[BOB], offerings=[LARGE])
    assert later.accounts[BOB] == "bob" and set(later.offerings) == {SMALL, LARGE}
    assert (accounts.reads, offerings.asked) == (2, 2), "a name not known yet is read"

    await names(ctx)  # every account, now
    assert accounts.reads == 3


def test_an_opened_secret_is_kept_by_its_sealed_form(monkeypatch):
    monkeypatch.setattr(Keyring, "OPENED_LIMIT", 8)
    keyring = Keyring("passphrase")
    sealed = keyring.seal("the secret")
    assert keyring.open(sealed) == keyring.open(memoryview(sealed)) == "the secret"
    assert list(keyring._opened.values()) == ["the secret"]
    assert keyring.open(b"not a token") is None and len(keyring._opened) == 1
    for i in range(20):
        assert keyring.open(keyring.seal(f"s{i}")) == f"s{i}"
    assert len(keyring._opened) <= 8, "bounded"
