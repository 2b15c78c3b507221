"""The command table: what listApis says is what the dispatcher does; errors and jobs as CloudStack shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.api.accounts import Keyring, hash_password, password_matches
from services.api.auth import RateLimiter
from services.api.commands import TABLE
from services.api.errors import error_body
from services.api.jobs import job_response, step_words
from services.api.params import parse

# CLOUDSTACK_API.md sections 7 and 9, DESIGN section 9, the admin calls, INTERFACES extras.
EXPECTED = {
    "deployVirtualMachine", "seedTemplateFromVmSnapshot", "createVolumeFromVmSnapshot", "createVMSnapshot",
    "listVMSnapshot", "deleteVMSnapshot", "revertToVMSnapshot", "listVirtualMachines", "startVirtualMachine",
    "stopVirtualMachine", "rebootVirtualMachine", "destroyVirtualMachine", "listVolumes", "attachVolume",
    "detachVolume", "resizeVolume", "deleteVolume", "createVolume", "listStoragePools", "listHosts",
    "listNetworks", "listServiceOfferings", "createServiceOffering", "listTemplates", "listEvents",
    "queryAsyncJobResult", "listAsyncJobs", "listZones", "listApis", "listDiskOfferings", "listHypervisors",
    "listNics", "listPublicIpAddresses", "listPortForwardingRules", "listIpForwardingRules", "listTags",
    "listAccounts", "listDomains", "createAccount", "registerUserKeys", "getUser", "login", "logout",
    "listClusters", "listUnmanagedInstances", "importUnmanagedInstance", "getDeploymentTrail",
    "listSeededTemplates", "createDiskOffering", "listRoles",
}  # fmt: skip
ASYNC_CREATE = {"deployVirtualMachine", "createVMSnapshot", "createVolumeFromVmSnapshot", "createVolume"}


def test_every_command_of_the_contract_is_in_the_table():
    assert set(TABLE) == EXPECTED


@pytest.mark.parametrize("name", sorted(TABLE))
def test_list_apis_describes_what_the_dispatcher_parses(name):
    api = TABLE[name]
    described = api.describe()
    assert described["name"] == name and isinstance(described["isasync"], bool)
    for param in described["params"]:
        assert isinstance(param["length"], int) and isinstance(param["required"], bool)
        assert param["name"] == param["name"].lower(), "names are matched lowercased"
    required = {p["name"] for p in described["params"] if p["required"]}
    if required:
        with pytest.raises(Exception, match="missing parameter"):
            parse(name, api.all_params, {})
    else:
        assert parse(name, api.all_params, {}) == {}


def test_deploy_from_a_snapshot_needs_neither_zone_nor_template():
    params = {p["name"]: p for p in TABLE["deployVirtualMachine"].describe()["params"]}
    assert not params["zoneid"]["required"] and not params["templateid"]["required"]
    assert params["serviceofferingid"]["required"]
    assert {n for n, a in TABLE.items() if a.isasync} >= ASYNC_CREATE


def test_error_body_and_job_shapes():
    assert error_body(431, "bad") == {
        "uuidList": [],
        "errorcode": 431,
        "errortext": "bad",
        "cserrorcode": 4350,
    }
    assert "cserrorcode" not in error_body(401, "no")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = {
        "uuid": uuid.uuid4(), "account_uuid": uuid.uuid4(), "user_uuid": uuid.uuid4(),
        "cmd": "deployVirtualMachine",
        "status": 0, "procstatus": 3, "procstep": "cloning", "result_code": 0, "result": None,
        "instance_type": "VirtualMachine", "instance_id": uuid.uuid4(), "created": now, "completed": None,
    }  # fmt: skip
    pending = job_response(row, {})
    assert (pending["jobstatus"], pending["jobprocstatus"], pending["jobprocstep"]) == (0, 3, "cloning")
    assert "jobresult" not in pending and pending["created"] == "2026-01-02T03:04:05+0000"
    failed = job_response(
        {
            **row,
            "status": 2,
            "result_code": 533,
            "result": {"errorcode": 533, "errortext": "full"},
            "completed": now,
        },
        {},
    )
    assert (failed["jobresultcode"], failed["jobresult"]["errorcode"], failed["jobresulttype"]) == (
        533,
        533,
        "object",
    )
    assert "jobprocstep" not in failed
    assert step_words("CloneFromSnapshot") == "cloning"


def test_secrets_at_rest():
    keyring = Keyring("any passphrase")
    sealed = keyring.seal("the secret")
    assert b"the secret" not in sealed and keyring.open(sealed) == "the secret"
    assert Keyring("another key").open(sealed) is None
    password = "correct horse battery staple"
    stored = hash_password(password)
    assert stored.startswith("scrypt$") and password not in stored and stored != hash_password(password)
    assert password_matches(password, stored) and not password_matches(password.upper(), stored)
    with pytest.raises(ValueError):
        Keyring("")


async def test_the_rate_limit_is_off_by_default_and_then_asks_nothing_of_the_database():
    limiter = RateLimiter(0, 1)
    assert all([await limiter.allow(None, "k") for _ in range(1000)])  # no connection touched
