"""Bus producers, end to end: identity from the broker, queries within the caller's account, bounded inputs.

Every service runs as its own RabbitMQ user; each producer is a user with the script's producer
permissions, mapped to an account by the planner's ``RegisterBusPrincipal``.
"""

from __future__ import annotations

import uuid

import aio_pika
import pytest

from contracts import audit, planner, storage
from contracts.envelope import Actor, Envelope
from contracts.planner import RemoveBusPrincipal
from shared.messaging import command_out
from snapdeploy.local.producer import Producer, register
from tests.e2e.cloud import ACCOUNT, offering, prepare, snapshot
from tests.support.stack import ZONE, Stack

pytestmark = pytest.mark.e2e
OTHER = uuid.UUID("00000000-0000-4000-8000-00000000b002")


def deploy(snapshot_id: uuid.UUID, offering_id: uuid.UUID, **kw) -> planner.DeployVirtualMachine:
    return planner.DeployVirtualMachine(
        vm_id=uuid.uuid4(), vm_snapshot_id=snapshot_id, service_offering_id=offering_id, **kw
    )


async def test_a_producer_claiming_another_account_or_role_gets_531_and_nothing_is_created(
    service_env, vhost
):
    async with Stack(service_env, storage=1, planner=1, audit=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        async with Producer(await vhost.producer()) as stranger:
            await register(cloud, stranger, OTHER)
            claims = [
                Actor(account_id=ACCOUNT, role="admin"),  # the snapshot owner's account, as admin
                Actor(account_id=ACCOUNT, role="user"),
                Actor(account_id=OTHER, role="admin"),  # its own account, a role it does not have
                Actor(account_id=uuid.uuid4(), role="service"),
            ]
            requests = []
            for claim in claims:
                request = deploy(s1, small)
                requests.append(request)
                failed = await stranger.refused(request, actor=claim)
                assert (failed["error_code"], failed["retryable"]) == (531, False), failed
                assert f"broker user {stranger.user} acts for account {OTHER} as user" in failed["error_text"]
            # stating nothing, it acts as its principal: the planner's own rule refuses the snapshot
            request = deploy(s1, small)
            requests.append(request)
            failed = await stranger.refused(request)
            assert failed["error_code"] == 531 and "may not use VM snapshot S1" in failed["error_text"]
            # commands only services send, whatever they say
            record = storage.RecordVirtualMachine(
                vm_id=uuid.uuid4(), account_id=OTHER, zone_id=ZONE, vm_ref="vm-1", name="mine", volumes=[]
            )
            failed = await stranger.refused(record)
            assert "RecordVirtualMachine is sent only by snapdeploy's services" in failed["error_text"]
            # the owner's volumes and snapshots are not the stranger's to touch
            [data] = [v for v in (await cloud.ask(storage.ListVolumes(vm_id=source.vm_id))).volumes
                      if v.type == "DATADISK"]  # fmt: skip
            for command in [
                storage.DeleteVolume(volume_id=data.id),
                storage.DetachVolume(volume_id=data.id),
                storage.ResizeVolume(volume_id=data.id, size_bytes=data.size_bytes * 2),
                storage.CreateVolumeFromVmSnapshot(
                    new_volume_id=uuid.uuid4(), vm_snapshot_id=s1, volume_id=data.id, name="copy"
                ),
            ]:
                failed = await stranger.refused(command)
                assert failed["error_code"] == 531 and "may not use" in failed["error_text"], failed
            [still] = [v for v in (await cloud.ask(storage.ListVolumes(id=data.id))).volumes]
            assert (still.state, still.vm_id, still.size_bytes) == ("Ready", source.vm_id, data.size_bytes)

        for request in requests:
            assert (await cloud.ask(planner.ListVirtualMachines(id=request.vm_id))).vms == []
        assert (await cloud.ask(storage.ListSeeds())).seeds == [], "nothing seeded"
        assert {h.cpu_mhz_used for h in (await cloud.ask(planner.ListHosts())).hosts} == {0}
        assert (await cloud.ask(storage.ListVolumes(vm_id=record.vm_id))).volumes == []


async def test_each_query_lists_only_the_callers_account_and_an_admin_sees_all(service_env, vhost):
    async with Stack(service_env, storage=1, planner=1, audit=1) as cloud:
        source = await prepare(cloud)
        s1 = await snapshot(cloud, source.vm_id, "S1")
        small = await offering(cloud)
        async with (
            Producer(await vhost.producer()) as owner,
            Producer(await vhost.producer()) as stranger,
            Producer(await vhost.producer()) as operator,
        ):
            await register(cloud, owner, ACCOUNT)
            await register(cloud, stranger, OTHER)
            await register(cloud, operator, OTHER, role="admin")
            request = deploy(s1, small, name="web-1")
            await owner.call(request)
            vm, job = request.vm_id, owner.job
            await settled(cloud, job)

            queries = [
                (planner.ListVirtualMachines(), lambda a: {v.id for v in a.vms}),
                (planner.ListVirtualMachines(id=vm), lambda a: {v.id for v in a.vms}),
                (planner.ListVirtualMachines(account_id=ACCOUNT), lambda a: {v.id for v in a.vms}),
                (planner.ListVmSnapshots(), lambda a: {s.id for s in a.snapshots}),
                (planner.ListVmSnapshots(vm_id=source.vm_id), lambda a: {s.id for s in a.snapshots}),
                (storage.ListVolumes(), lambda a: {v.vm_id for v in a.volumes}),
                (storage.ListVolumes(vm_id=vm), lambda a: {v.vm_id for v in a.volumes}),
                (audit.ListEvents(correlation_id=job), lambda a: a.total),
                (audit.GetDeploymentTrail(correlation_id=job), lambda a: (a.status, len(a.entries))),
            ]
            for query, seen in queries:
                mine, theirs, everyone = [seen(await p.ask(query)) for p in (owner, stranger, operator)]
                nothing = seen(await stranger.ask(query.model_copy(update=_unknown(query))))
                assert theirs == nothing, f"another account's {query} looks exactly like nothing"
                assert mine and mine == everyone, query
            assert vm in seen_vms(await owner.ask(planner.ListVirtualMachines()))
            assert s1 in {s.id for s in (await owner.ask(planner.ListVmSnapshots())).snapshots}
            # the operator's inventory is for admins only
            for query, items in [
                (planner.ListHosts(), "hosts"),
                (storage.ListStoragePools(), "pools"),
                (storage.ListSeeds(), "seeds"),
            ]:
                assert getattr(await owner.ask(query), items) == [], query
                assert getattr(await operator.ask(query), items) != [], query

            # once removed, the producer acts for no one
            await cloud.call(RemoveBusPrincipal(broker_user=stranger.user))
            failed = await stranger.refused(planner.StartVirtualMachine(vm_id=vm))
            assert failed["error_code"] == 531 and "acts for no account" in failed["error_text"]


async def settled(cloud: Stack, job: uuid.UUID) -> None:
    """The audit has every message of the job that the harness saw on the exchanges (its reply included)."""
    await cloud.events.wait_for(
        lambda e: e.correlation_id == job and e.type == "DeployVirtualMachineSucceeded"
    )
    sent = {e.message_id for e in cloud.events.matching(lambda e: e.correlation_id == job)}
    await cloud.until(
        audit.ListEvents(correlation_id=job), lambda a: a.total >= len(sent), what="the job in the audit"
    )


def seen_vms(answer) -> set[uuid.UUID]:
    return {v.id for v in answer.vms}


def _unknown(query) -> dict:
    """The same query about ids that exist nowhere: what "nothing" looks like for it."""
    return {
        name: uuid.uuid4()
        for name in ("id", "vm_id", "account_id", "correlation_id")
        if getattr(query, name, None) is not None
    }


BAD_OFFERINGS = [
    ({"cpu_number": 10**20}, "cpu_number must be at most 768"),
    ({"memory_mb": 2**63}, "memory_mb must be at most"),
    ({"name": "small\x00"}, "name must not contain control characters"),
    ({"name": "x" * 1_000_000}, "name must be at most 255 characters"),
]


async def test_each_bad_input_is_a_431_at_once_never_retried_and_nothing_is_stored(service_env):
    async with Stack(service_env, planner=1, audit=1) as cloud:
        for bad, reason in BAD_OFFERINGS:
            fields = {"offering_id": uuid.uuid4(), "name": "small", "cpu_number": 2, "cpu_speed_mhz": 100,
                      "memory_mb": 128, **bad}  # fmt: skip
            command = planner.CreateServiceOffering.model_construct(**fields)  # what no client of ours sends
            envelope = Envelope.wrap(command, source="test", correlation_id=cloud.job)
            await cloud.bus.publish_until_confirmed(command_out(envelope, command))
            reply = await cloud.reply(envelope)
            assert reply.type == "CreateServiceOfferingFailed"
            assert (reply.payload["error_code"], reply.payload["retryable"]) == (431, False)
            assert reply.payload["error_text"].startswith(f"invalid CreateServiceOffering: {reason}")
            assert "Value error" not in reply.payload["error_text"] and len(reply.payload["error_text"]) < 300

        assert (await cloud.ask(planner.ListServiceOfferings())).offerings == []
        assert await dead_letters(cloud, "planner.commands.dlq") == len(BAD_OFFERINGS), "each rejected once"
        [planner_process] = [p for p in cloud.processes if p.module == "services.planner"]
        assert not [
            line for line in planner_process.lines if line.get("event") == "transient failure, will retry"
        ]
        # the audit stored every one of them, the NUL included, as it was sent
        trail = await cloud.until(
            audit.ListEvents(correlation_id=cloud.job, type="CreateServiceOffering"),
            lambda a: a.total == len(BAD_OFFERINGS),
            what="the refused commands in the audit",
        )
        names = {item["payload"]["name"] for item in trail.items}
        assert "small\x00" in names and "x" * 1_000_000 in names


async def dead_letters(cloud: Stack, queue: str) -> int:
    connection = await aio_pika.connect(cloud.env["AMQP_URL"])
    try:
        channel = await connection.channel()
        return (await channel.declare_queue(queue, passive=True)).declaration_result.message_count
    finally:
        await connection.close()
