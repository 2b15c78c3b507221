"""A PostgreSQL server of the test's own (initdb in a scratch directory, its own port), which a test
may crash and restart without touching the machine's server or anyone else's databases."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        raise FileNotFoundError(f"{name} is missing: apt install postgresql")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivatePostgres:
    """``with PrivatePostgres() as pg``: ``pg.url_for(db)``, ``pg.crash()`` (SIGQUIT-like immediate
    stop, as a killed server), ``pg.start()``. PostgreSQL refuses to run as root: as root it runs as
    the ``postgres`` user, in a directory that user owns."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="snapdeploy-pg-"))
        self.data = self.dir / "data"
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, *argv: str, timeout: float = 120) -> None:
        subprocess.run([*self._as, *argv], check=True, capture_output=True, timeout=timeout)

    def __enter__(self) -> PrivatePostgres:
        self._run(_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        # fsync off: the server is killed, never the machine, so what it wrote is in the page cache.
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start"
        )
        deadline = time.monotonic() + 60
        while True:  # "-w" waits for the socket; this waits until it takes TCP connections too
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def crash(self) -> None:
        """Stop at once, as a crash would: no checkpoint, every client connection cut."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def restart(self) -> None:
        self.crash()
        self.start()

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
