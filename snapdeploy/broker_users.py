"""RabbitMQ users of snapdeploy, least privilege: one per service, one per producer.

    python -m snapdeploy.broker_users --vhost snapdeploy --service-password-file secrets/ \\
        --producer team-a=$(cat team-a.pw) [--print | --rabbitmqctl "kubectl exec -i rabbit-0 -- rabbitmqctl"]

writes one definitions document (users, the vhost, permissions, topic permissions) and imports
it with ``rabbitmqctl import_definitions`` (on stdin) (idempotent: run it again after a change).

What each user may do in the vhost (configure / write / read are RabbitMQ's regexes; topic
permissions narrow the routing keys a user may publish on a topic exchange):

- a **service** (``snapdeploy-<service>``) declares the whole topology (every service does, so
  no command is published to nowhere), publishes on snapdeploy's exchanges and to reply
  queues, and consumes snapdeploy's queues and direct reply-to.
- a **producer** publishes commands for the planner and storage and queries for the planner,
  storage and audit, nothing else (no events, no agent commands, no default exchange); it
  declares and consumes only its own queues, ``producer.<user>.*`` (its reply queue is
  ``producer.<user>.replies``), and direct reply-to. Its principal (account and role) is
  registered with the planner's ``RegisterBusPrincipal``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from contracts.topology import producer_queue_prefix

SERVICES = ("planner", "storage", "agent", "audit", "api")
EXCHANGES = r"snapdeploy\.(commands|events|queries|dead-letter)|cloudstack-events"
SERVICE_QUEUES = r"(planner|storage|agent|audit|api)\..*"
REPLY_TO = r"amq\.rabbitmq\.reply-to.*"
PRODUCER_COMMANDS = r"^(planner|storage)\."
PRODUCER_QUERIES = r"^(planner|storage|audit)\."
_PRODUCER_NAME = re.compile(r"^[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,127}$")


def service_user(service: str) -> str:
    return f"snapdeploy-{service}"


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str
    topics: dict[str, tuple[str, str]] = field(default_factory=dict)  # exchange -> (write, read)


def service_permissions(service: str) -> Permissions:
    """The same for every service: each declares every service queue, and RabbitMQ asks for read
    on a queue to declare it with a dead-letter exchange (so services are trusted alike)."""
    return Permissions(
        configure=f"^({EXCHANGES}|{SERVICE_QUEUES})$",
        write=f"^({EXCHANGES}|{SERVICE_QUEUES}|amq\\.default)$",
        read=f"^({EXCHANGES}|{SERVICE_QUEUES}|{REPLY_TO})$",
    )


def producer_permissions(user: str) -> Permissions:
    if not _PRODUCER_NAME.match(user) or user.startswith("snapdeploy-") or user == "guest":
        raise ValueError(f"{user!r} cannot be a producer: letters, digits, '_.@-'; not snapdeploy-*")
    own = re.escape(producer_queue_prefix(user)) + ".*"
    return Permissions(
        configure=f"^{own}$",
        write=r"^snapdeploy\.(commands|queries)$",
        read=f"^({own}|{REPLY_TO})$",
        topics={
            "snapdeploy.commands": (PRODUCER_COMMANDS, "^$"),
            "snapdeploy.queries": (PRODUCER_QUERIES, "^$"),
        },
    )


def everything() -> Permissions:
    """The test harness's own observer user (reads every exchange, asserts on queues)."""
    return Permissions(".*", ".*", ".*")


def password_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's ``rabbit_password_hashing_sha256``: base64(salt + sha256(salt + password))."""
    salt = salt if salt is not None else os.urandom(4)
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def definitions(vhost: str, users: dict[str, tuple[str, Permissions]]) -> dict:
    """A definitions document: the vhost, each user (name -> password, permissions) and its rights.

    The salt is derived from the user and password, so importing the same users again changes
    nothing (parallel imports of one user agree)."""
    return {
        "vhosts": [{"name": vhost}],
        "users": [
            {
                "name": name,
                "password_hash": password_hash(
                    password, hashlib.sha256(f"{name}:{password}".encode()).digest()[:4]
                ),
                "hashing_algorithm": "rabbit_password_hashing_sha256",
                "tags": [],
            }
            for name, (password, _) in users.items()
        ],
        "permissions": [
            {"user": name, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read}
            for name, (_, p) in users.items()
        ],
        "topic_permissions": [
            {"user": name, "vhost": vhost, "exchange": exchange, "write": write, "read": read}
            for name, (_, p) in users.items()
            for exchange, (write, read) in p.topics.items()
        ],
    }


def import_definitions(document: dict, rabbitmqctl: str = "rabbitmqctl") -> None:
    subprocess.run(
        [*shlex.split(rabbitmqctl), "-q", "import_definitions"],  # the document on stdin,
        input=json.dumps(document),
        text=True,
        check=True,
        capture_output=True,
    )


def _password(directory: Path | None, user: str) -> str:
    if directory is None:
        raise SystemExit(f"no password for {user}: give --service-password-file DIR with a file {user}")
    return (directory / user).read_text().strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vhost", default="/")
    parser.add_argument(
        "--service-password-file",
        type=Path,
        metavar="DIR",
        help="directory with one file per service user (snapdeploy-planner, ...) holding its password",
    )
    parser.add_argument("--producer", action="append", default=[], metavar="USER=PASSWORD")
    parser.add_argument(
        "--services", default=",".join(SERVICES), help="which service users (comma-separated)"
    )
    parser.add_argument("--rabbitmqctl", default="rabbitmqctl", help="how to run rabbitmqctl")
    parser.add_argument("--print", action="store_true", help="print the definitions instead of importing")
    args = parser.parse_args(argv)

    users: dict[str, tuple[str, Permissions]] = {}
    for service in filter(None, args.services.split(",")):
        name = service_user(service)
        users[name] = (_password(args.service_password_file, name), service_permissions(service))
    for spec in args.producer:
        name, _, password = spec.partition("=")
        if not password:
            raise SystemExit(f"--producer {name}: give USER=PASSWORD")
        users[name] = (password, producer_permissions(name))
    document = definitions(args.vhost, users)
    if args.print:
        json.dump(document, sys.stdout, indent=2)
        print()
        return
    import_definitions(document, args.rabbitmqctl)
    print(f"{len(users)} users with their permissions in vhost {args.vhost}")


if __name__ == "__main__":
    main()
