"""The vCenter simulator (tests/vcsim) as a process: its URL, control endpoint and datastore files."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

from snapdeploy.local.processes import ROOT

BINARY = ROOT / "build" / "vcsim"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Simulator:
    """``build/vcsim`` (``make vcsim``) running: its URL, control endpoint and datastore files."""

    def __init__(self, binary: Path = BINARY):
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run `make vcsim`")
        self.proc = subprocess.Popen([str(binary)], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url:
            raise RuntimeError("the simulator printed no URL")
        parts = urllib.parse.urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.hostname}:{parts.port}"
        self._auth = "Basic " + base64.b64encode(f"{parts.username}:{parts.password}".encode()).decode()
        self._tls = ssl._create_unverified_context()  # the simulator's certificate is self-signed

    def _request(self, method: str, path: str, body: bytes | None = None) -> bytes:
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", self._auth)
        with urllib.request.urlopen(request, context=self._tls, timeout=30) as response:
            return response.read()

    # -- control endpoint ----------------------------------------------------------------------------

    def control(self, what: str, **body) -> dict:
        return json.loads(self._request("POST", f"/_control/{what}", json.dumps(body).encode()) or b"{}")

    def fail(self, method: str, fault: str, count: int = 1, message: str | None = None) -> None:
        self.control(
            "fault", method=method, fault=fault, count=count, **({"message": message} if message else {})
        )

    def slow(self, method: str, ms: int) -> None:
        self.control("latency", method=method, ms=ms)

    # -- datastore files ----------------------------------------------------------------------------

    @staticmethod
    def _folder(datastore_path: str) -> str:
        """'[ds1] src-vm/src-vm.vmdk' -> '/folder/src-vm/src-vm.vmdk?dcPath=DC0&dsName=ds1'."""
        datastore, path = datastore_path[1:].split("] ", 1)
        query = urllib.parse.urlencode({"dcPath": "DC0", "dsName": datastore})
        return f"/folder/{urllib.parse.quote(path)}?{query}"

    def write(self, datastore_path: str, data: bytes) -> None:
        self._request("PUT", self._folder(datastore_path), data)

    def read(self, datastore_path: str) -> bytes:
        return self._request("GET", self._folder(datastore_path))

    def exists(self, datastore_path: str) -> bool:
        try:
            self.read(datastore_path)
            return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
