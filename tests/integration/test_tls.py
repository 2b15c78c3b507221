"""Certificates are checked unless the operator opts out: vCenter (the simulator over HTTPS), the broker."""

from __future__ import annotations

import ssl
import urllib.parse

import pytest

from shared.bus.bus import tls_context
from tests.support.processes import ServiceProcess
from tests.support.vcsim import Simulator

pytestmark = pytest.mark.integration


@pytest.fixture
def sim():
    simulator = Simulator()
    yield simulator
    simulator.stop()


def agent(service_env: dict, sim: Simulator, **settings: str) -> ServiceProcess:
    env = {**service_env, "ZONE_ID": "zone1", "VCENTER_URL": sim.url, **settings}
    return ServiceProcess("services.hypervisor_agent", env, name="agent").start()


def test_the_agent_refuses_a_vcenter_whose_certificate_it_cannot_verify(service_env, sim):
    process = agent(service_env, sim)  # VCENTER_INSECURE is false by default
    try:
        with pytest.raises(AssertionError, match="exited"):
            process.wait_started(120)
        assert "CERTIFICATE_VERIFY_FAILED" in process.output()
    finally:
        assert process.stop() != 0


def test_the_broker_is_verified_against_the_ca_file_hostname_included(sim, tmp_path):
    assert tls_context(None) is None, "amqps:// without a CA file: the system's CAs (aio-pika's default)"
    parts = urllib.parse.urlsplit(sim.url)
    ca = tmp_path / "broker-ca.pem"
    ca.write_text(ssl.get_server_certificate((parts.hostname, parts.port)))  # any CA certificate
    context = tls_context(str(ca))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
