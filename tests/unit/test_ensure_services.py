"""scripts/ensure-services on machines we cannot make here: what it would run, or what it tells you to run.

Each case runs the real script in dry-run mode with a PATH of its own (so RabbitMQ, PostgreSQL,
root and Docker are present or absent as the case says) against ports where nothing listens.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support.processes import ROOT

SCRIPT = ROOT / "scripts" / "ensure-services"
TOOLS = ["bash", "cat", "grep", "ls", "sed", "sleep", "sort", "tail"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{shutil.which('bash')}\n{body}\n")
    path.chmod(0o755)


def ensure(tmp_path: Path, *, root: bool, docker: bool = False, installed: tuple[str, ...] = ()):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    fake(bin_dir, "id", f"echo {0 if root else 1000}")
    if docker:
        fake(bin_dir, "docker", "exit 0")  # `docker info` answers: an engine is there
    for program in installed:  # only looked up in a dry run, never run
        fake(bin_dir, program, "exit 99")
    env = {
        "PATH": str(bin_dir),
        "ENSURE_SERVICES_DRY_RUN": "1",
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/snapdeploy",
    }
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(autouse=True)
def tools_present():
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {missing}")
    assert os.access(SCRIPT, os.X_OK), "scripts/ensure-services must be executable"


def test_as_root_on_a_fresh_machine_it_installs_both_from_debian_and_starts_them(tmp_path):
    code, out, _ = ensure(tmp_path, root=True)
    assert code == 0, out
    assert out.count("would run: apt-get update") == 1
    assert "apt-get install -y -qq rabbitmq-server" in out
    assert "apt-get install -y -qq postgresql\n" in out
    assert "would run: rabbitmq-server -detached" in out
    assert "pg_hba.conf" in out and "127.0.0.1/32 trust" in out
    assert "main start" in out
    assert out.index("rabbitmq-server -detached") > out.index("install -y -qq rabbitmq-server")
    assert out.index("main start") > out.index("install -y -qq postgresql")


def test_installed_but_down_they_are_started_not_installed(tmp_path):
    code, out, _ = ensure(tmp_path, root=True, installed=("rabbitmq-server", "pg_ctlcluster", "psql"))
    assert code == 0, out
    assert "apt-get" not in out
    assert "would run: rabbitmq-server -detached" in out
    if Path("/etc/postgresql").is_dir():  # a cluster exists on this machine: it is started
        assert "pg_ctlcluster --skip-systemctl-redirect" in out


def test_without_root_or_docker_it_says_exactly_what_to_run(tmp_path):
    code, out, err = ensure(tmp_path, root=False)
    assert code == 1
    assert "apt-get" not in out  # nothing attempted
    assert "RabbitMQ is not installed and this is not root" in err
    run = "sudo apt-get update && sudo apt-get install -y rabbitmq-server && sudo rabbitmq-server -detached"
    assert run in err


def test_without_root_postgresql_gets_its_own_instructions(tmp_path):
    code, _, err = ensure(tmp_path, root=False, installed=("rabbitmq-server",))
    assert code == 1
    assert "PostgreSQL is not installed and this is not root" in err
    assert "sudo apt-get update && sudo apt-get install -y postgresql" in err


def test_without_root_but_with_docker_they_run_as_containers(tmp_path):
    code, out, _ = ensure(tmp_path, root=False, docker=True)
    assert code == 0, out
    assert "docker run -d --name snapdeploy-rabbitmq" in out
    assert "docker run -d --name snapdeploy-postgres" in out and "POSTGRES_HOST_AUTH_METHOD=trust" in out
    assert "apt-get" not in out
