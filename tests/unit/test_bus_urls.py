"""AMQP_URL may name every node of a cluster, comma-separated."""

from __future__ import annotations

import pytest

from shared.bus.failover import parse_urls


def test_a_comma_list_names_each_node_in_turn():
    assert parse_urls("amqp://u:p@h1:5672/v, amqp://u:p@h2:5672/v,") == [
        "amqp://u:p@h1:5672/v",
        "amqp://u:p@h2:5672/v",
    ]
    assert parse_urls("amqp://guest:guest@127.0.0.1:5672/") == ["amqp://guest:guest@127.0.0.1:5672/"]


def test_a_list_naming_no_broker_is_refused():
    with pytest.raises(ValueError, match="names no broker"):
        parse_urls(" , ")
