"""The wire contract: golden samples both ways, the AsyncAPI document, routing keys."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest
import yaml
from pydantic import ValidationError

from contracts import agent, events, planner
from contracts.asyncapi import render
from contracts.base import snake
from contracts.catalogue import CATALOGUE, failed_reply
from contracts.envelope import Envelope
from contracts.samples import SAMPLES, sample_path
from contracts.topology import (
    AUDIT_INGEST,
    TOPOLOGY,
    agent_commands_queue,
    command_routing_key,
    event_routing_key,
)

SPECS = list(CATALOGUE)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_sample_reads_into_its_model_and_writes_back_unchanged(spec):
    sample = json.loads(sample_path(spec).read_text())
    envelope = Envelope.model_validate(sample)
    assert envelope.type == spec.type
    message = spec.model.model_validate(envelope.payload)
    assert message.model_dump(mode="json") == sample["payload"]
    assert json.loads(envelope.model_dump_json()) == sample


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_model_has_a_sample_naming_every_field_and_a_docstring(spec):
    sample = json.loads(sample_path(spec).read_text())
    assert set(sample["payload"]) == set(spec.model.model_fields), "sample and model fields differ"
    assert (spec.model.__doc__ or "").strip(), (
        f"{spec.key} needs a docstring (it becomes the AsyncAPI summary)"
    )


def test_every_sample_file_belongs_to_a_message_type():
    known = {sample_path(spec) for spec in SPECS}
    assert set(SAMPLES.rglob("*.json")) == known


def test_asyncapi_document_is_up_to_date():
    committed = (SAMPLES.parent / "asyncapi.yaml").read_text()
    assert committed == render(), "contracts/asyncapi.yaml is stale: run `make asyncapi`"


ASYNCAPI_CHECK = SAMPLES.parent.parent / "scripts" / "asyncapi"


def test_asyncapi_document_passes_the_official_asyncapi_parser():
    """@asyncapi/parser 3 (installed by `make test` from scripts/asyncapi/package-lock.json)."""
    if not (ASYNCAPI_CHECK / "node_modules" / "@asyncapi" / "parser").is_dir() or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("the AsyncAPI parser is not installed: run `make asyncapi-parser`")
        pytest.skip("the AsyncAPI parser is not installed: run `make asyncapi-parser`")
    checked = subprocess.run(
        ["node", str(ASYNCAPI_CHECK / "validate.mjs"), str(SAMPLES.parent / "asyncapi.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout[-4000:] + checked.stderr[-2000:]
    assert "0 errors, 0 warnings" in checked.stdout


def test_asyncapi_describes_each_message_as_it_travels_in_its_envelope():
    document = yaml.safe_load(render())
    schemas = document["components"]["schemas"]
    for spec in SPECS:
        envelope, body = document["components"]["messages"][spec.key]["payload"]["allOf"]
        assert envelope == {"$ref": "#/components/schemas/Envelope"}
        assert body["properties"]["type"] == {"const": spec.type}
        assert body["properties"]["payload"] == {"$ref": f"#/components/schemas/{spec.key}"}
    refs = set(re.findall(r"#/components/schemas/([\w.]+)", render()))
    assert refs <= set(schemas), f"dangling refs: {refs - set(schemas)}"


def test_every_command_has_one_succeeded_and_one_failed_reply():
    commands = [s for s in SPECS if s.kind == "command"]
    for command in commands:
        replies = {s.type for s in SPECS if s.command is command.model}
        assert replies == {f"{command.type}Succeeded", f"{command.type}Failed"}
    assert failed_reply(agent.CloneFromSnapshot) is failed_reply(agent.CloneFromSnapshot)


def test_same_type_name_may_live_in_two_namespaces_without_confusion():
    assert CATALOGUE.get("planner", "CreateVmSnapshot").model is planner.CreateVmSnapshot
    assert CATALOGUE.get("agent", "CreateVmSnapshot").model is agent.CreateVmSnapshot
    assert CATALOGUE.resolve("ActionEvent", source="planner").model is events.ActionEvent


def test_routing_keys():
    assert snake("CloneFromSnapshot") == "clone_from_snapshot"
    assert snake("GetVmSnapshotConfigs") == "get_vm_snapshot_configs"
    clone = agent.CloneFromSnapshot(
        zone_id="zone1",
        vm_id="v",
        vm_name="n",
        template_ref="t",
        base_snapshot_ref="s",
        host_ref="h",
        datastore="ds1",
    )
    assert command_routing_key(clone) == "agent.zone1.clone_from_snapshot"
    assert (
        command_routing_key(planner.StartVirtualMachine(vm_id=uuid.uuid4()))
        == "planner.start_virtual_machine"
    )
    action = events.ActionEvent(
        event_type="VM.CREATE",
        state="Completed",
        resource_type="VirtualMachine",
        resource_id=uuid.uuid4(),
        description="created",
    )
    assert event_routing_key("planner", action) == "planner.action_event.vm_create"


def test_queues_are_quorum_with_a_delivery_limit_and_their_own_dead_letter_key():
    for queue in (*TOPOLOGY.queues, agent_commands_queue("zone1")):
        args = queue.arguments()
        assert args["x-queue-type"] == "quorum"
        assert args["x-delivery-limit"] >= 1
        assert args["x-dead-letter-exchange"] == "snapdeploy.dead-letter"
        assert args["x-dead-letter-routing-key"] == queue.name
        assert queue.dlq == f"{queue.name}.dlq"
    assert {b.routing_key for b in AUDIT_INGEST.bindings} == {"#"}


def test_deploy_needs_exactly_one_source():
    with pytest.raises(ValidationError, match="exactly one of vm_snapshot_id and template_id"):
        planner.DeployVirtualMachine(vm_id=uuid.uuid4())
    with pytest.raises(ValidationError, match="exactly one"):
        planner.DeployVirtualMachine(
            vm_id=uuid.uuid4(), vm_snapshot_id=uuid.uuid4(), template_id=uuid.uuid4()
        )


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="extra"):
        planner.StartVirtualMachine.model_validate({"vm_id": str(uuid.uuid4()), "vmid": "typo"})
