"""The broker users script: what each kind of user is allowed, as regexes RabbitMQ will apply."""

from __future__ import annotations

import re

import pytest

from snapdeploy import broker_users as bu


def allowed(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None  # RabbitMQ matches permission regexes unanchored


def test_a_producer_reads_only_its_own_queues_and_writes_only_commands_and_queries():
    p = bu.producer_permissions("team-a")
    assert allowed(p.read, "producer.team-a.replies") and allowed(p.read, "amq.rabbitmq.reply-to")
    for queue in ("planner.commands", "audit.ingest", "producer.team-b.replies", "producer.team-a"):
        assert not allowed(p.read, queue), queue
    assert allowed(p.write, "snapdeploy.commands") and allowed(p.write, "snapdeploy.queries")
    for exchange in ("snapdeploy.events", "amq.default", "cloudstack-events", "snapdeploy.dead-letter"):
        assert not allowed(p.write, exchange), exchange
    commands, _ = p.topics["snapdeploy.commands"]
    assert allowed(commands, "planner.deploy_virtual_machine") and not allowed(
        commands, "agent.zone1.destroy_vm"
    )


@pytest.mark.parametrize("name", ["snapdeploy-planner", "guest", "a b", "x" * 200, "team.*", ""])
def test_a_producer_cannot_take_a_service_name_or_one_that_would_widen_its_patterns(name):
    with pytest.raises(ValueError):
        bu.producer_permissions(name)


def test_importing_the_same_users_again_changes_nothing():
    users = {"team-a": ("secret", bu.producer_permissions("team-a"))}
    assert bu.definitions("/", users) == bu.definitions("/", users)
    [user] = bu.definitions("/", users)["users"]
    assert "secret" not in user["password_hash"]
