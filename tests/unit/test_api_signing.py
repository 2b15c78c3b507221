"""CloudStack signatures: the worked examples of CLOUDSTACK_API.md section 2, and what cs signs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cs.client import CloudStack

from services.api.params import Param, parse
from services.api.signing import canonical, expired, sign, signature_matches

KEY, SECRET = "demoKey-1234", "demoSecret-5678"
V3 = {
    "command": "listZones",
    "apiKey": KEY,
    "response": "json",
    "signatureVersion": "3",
    "expires": "2030-01-01T00:00:00+0000",
}


def test_worked_example_v3():
    assert canonical(V3) == (
        "apikey=demokey-1234&command=listzones&expires=2030-01-01t00%3a00%3a00%2b0000"
        "&response=json&signatureversion=3"
    )
    assert sign(V3, SECRET) == "BC8vDwk2vfKF70sCHL4+pOE7iaw="


def test_worked_example_unversioned_as_libcloud_sends():
    params = {"command": "listZones", "apiKey": KEY, "response": "json"}
    assert canonical(params) == "apikey=demokey-1234&command=listzones&response=json"
    assert sign(params, SECRET) == "FDa+ubQlLr/cNw3pxpaNfHZY4cs="


def test_a_space_is_percent_20_and_the_signature_parameter_is_left_out():
    params = {"command": "listZones", "apiKey": KEY, "response": "json", "name": "web 01"}
    assert "name=web%2001" in canonical(params)
    signed = {**params, "signature": sign(params, SECRET)}
    assert signature_matches(signed, SECRET, signed["signature"])
    assert not signature_matches({**signed, "name": "web 02"}, SECRET, signed["signature"])
    assert not signature_matches(signed, "another secret", signed["signature"])


def test_what_the_cs_client_signs_verifies():
    client = CloudStack(endpoint="http://x/client/api", key=KEY, secret=SECRET)
    params = {"command": "deployVirtualMachine", "response": "json", "apiKey": KEY, "name": "web 01*x"}
    client._sign(params)
    assert signature_matches(params, SECRET, params["signature"])


def test_only_signature_version_3_enforces_expires():
    now = datetime(2031, 1, 1, tzinfo=UTC)
    assert expired(V3, now)
    assert not expired(V3, datetime(2029, 1, 1, tzinfo=UTC))
    assert not expired({k: v for k, v in V3.items() if k != "signatureVersion"}, now)
    assert expired({**V3, "expires": "not a date"})
    assert expired({k: v for k, v in V3.items() if k != "expires"})
    assert not expired({**V3, "expires": "2030-01-01T00:00:00Z"}, datetime(2029, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "missing parameter id"),
        ({"id": "nope"}, "not a UUID"),
        ({"id": "3f0b8d2e-0000-4000-8000-000000000001", "size": "x"}, "not a whole number"),
        ({"id": "3f0b8d2e-0000-4000-8000-000000000001", "size": " 1"}, "not a whole number"),
        ({"id": "3f0b8d2e-0000-4000-8000-000000000001", "size": "1_000"}, "not a whole number"),
        ({"id": "3f0b8d2e-0000-4000-8000-000000000001", "name": "n" * 300}, "longer than"),
    ],
)
def test_parameter_checks_are_431_naming_the_parameter(params, fragment):
    declared = (Param("id", "uuid", required=True), Param("size", "long"), Param("name", "string"))
    with pytest.raises(Exception) as caught:
        parse("resizeVolume", declared, params)
    assert caught.value.code == 431 and fragment in caught.value.text


def test_a_map_index_past_a_java_int_is_malformed_430():
    declared = (Param("details", "map"),)
    assert parse("deployVirtualMachine", declared, {"details[2147483647].key": "v"}) == {
        "details": {2147483647: {"key": "v"}}
    }
    with pytest.raises(Exception) as caught:
        parse("deployVirtualMachine", declared, {"details[99999999999].key": "v"})
    assert caught.value.code == 430
