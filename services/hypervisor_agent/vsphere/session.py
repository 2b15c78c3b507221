"""One vCenter session shared by the agent's worker threads."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

import structlog
from pyVim.connect import Disconnect, SmartConnect
from pyVmomi import vim

from services.hypervisor_agent.vsphere import props
from services.hypervisor_agent.vsphere.faults import FileMissing, VsphereError, translate
from services.hypervisor_agent.vsphere.watcher import TaskWatcher

log = structlog.get_logger(__name__)

T = TypeVar("T")

# A read that meets vCenter's SystemError (an internal hiccup, e.g. an object caught half-made)
# is tried this many times in all, after these pauses.
LOOKUP_ATTEMPTS = 3
LOOKUP_PAUSE_S = (0.05, 0.2)


class VsphereSession:
    """Login, re-login on ``NotAuthenticated``, keep-alive and logout for one vCenter datacenter.

    pyvmomi's stub keeps a pool of HTTP connections and one session cookie, so threads can
    share it. A re-login happens on the same stub (``SessionManager.Login`` replaces the
    cookie): managed object references that threads already hold stay usable.
    """

    def __init__(
        self,
        url: str,
        *,
        datacenter: str,
        verify_ssl: bool = True,
        ca_file: str | None = None,
        keepalive_interval: float = 300.0,
        http_timeout: float = 120.0,
    ) -> None:
        parsed = urlparse(url)
        if not parsed.hostname or parsed.username is None:
            raise ValueError("vCenter URL must look like https://user:password@host[:port]/sdk")
        self._host = parsed.hostname
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._scheme = parsed.scheme or "https"
        self._path = parsed.path or "/sdk"
        self._user = unquote(parsed.username)
        self._password = unquote(parsed.password or "")
        self.datacenter_name = datacenter
        self.verify_ssl = verify_ssl
        self.ca_file = ca_file  # a private CA that signed vCenter's certificate; else the system's
        # The owner schedules keepalive() at this interval; the session starts no threads.
        self.keepalive_interval = keepalive_interval
        # Socket timeout of every SOAP call; must exceed the longest WaitForUpdatesEx wait.
        self.http_timeout = http_timeout
        self._si: vim.ServiceInstance | None = None
        self._content: vim.ServiceInstanceContent | None = None
        self._datacenter: vim.Datacenter | None = None
        self._login_lock = threading.Lock()
        # Bumped by every login: a thread that saw NotAuthenticated under an older generation
        # knows another thread already logged in again and simply retries.
        self._generation = 0
        # One PropertyCollector wait loop for every running task of this session.
        self.tasks = TaskWatcher(self)
        # What changes only when the inventory does (the VM folder, a host's root pool, a
        # datastore by name, a VM snapshot's configuration): read once, forgotten on each sync.
        self._remembered: dict[Hashable, Any] = {}
        self._remembered_lock = threading.Lock()

    def _tls_context(self) -> ssl.SSLContext:
        if not self.verify_ssl:
            return ssl._create_unverified_context()
        # Always an explicit verifying context: given none, pyVmomi skips verification for
        # localhost, 127.0.0.1 and ::1 (a tunnel to vCenter would then go unchecked).
        return ssl.create_default_context(cafile=self.ca_file)

    # -- lifecycle -------------------------------------------------------------------------------

    def connect(self) -> None:
        try:
            self._si = SmartConnect(
                protocol=self._scheme,
                host=self._host,
                port=self._port,
                path=self._path,
                user=self._user,
                pwd=self._password,
                sslContext=self._tls_context(),
                disableSslCertValidation=not self.verify_ssl,
                httpConnectionTimeout=self.http_timeout,
            )
            # ServiceContent only holds references to the managers: fetch it once.
            self._content = self._si.RetrieveContent()
            self._datacenter = self._find_datacenter()
        except Exception as exc:
            raise translate(exc, context=f"connecting to {self._host}") from exc
        self._generation += 1
        log.info("vcenter.connected", host=self._host, datacenter=self.datacenter_name)

    def close(self) -> None:
        """Log out; errors are ignored (the session may already be gone)."""
        self.tasks.close()
        if self._si is None:
            return
        try:
            Disconnect(self._si)
        except Exception as exc:  # logging out of a dead session must not fail shutdown
            log.warning("vcenter.logout_failed", error=str(exc))
        self._si = None

    def keepalive(self) -> None:
        """A cheap call that keeps the session from idling out (and logs in again if it did)."""
        self.call(lambda si: si.CurrentTime())

    # -- what the operations use ------------------------------------------------------------------

    @property
    def content(self) -> vim.ServiceInstanceContent:
        if self._content is None:
            raise VsphereError("not connected", fault="NotConnected")
        return self._content

    @property
    def generation(self) -> int:
        """Bumped by every login: objects made under an older one (collectors, views) are gone."""
        return self._generation

    @property
    def datacenter(self) -> vim.Datacenter:
        if self._datacenter is None:
            raise VsphereError("not connected", fault="NotConnected")
        return self._datacenter

    @property
    def stub(self) -> Any:
        """The SOAP stub, for building managed object references from ids (``vm-42``)."""
        return self.content.rootFolder._stub

    def call(self, fn: Callable[[vim.ServiceInstance], T]) -> T:
        """Run ``fn`` with the service instance; on ``NotAuthenticated`` log in again and retry once.

        Every other failure comes out as a ``VsphereError``.
        """
        if self._si is None:
            raise VsphereError("not connected", fault="NotConnected")
        generation = self._generation
        try:
            return fn(self._si)
        except vim.fault.NotAuthenticated:
            log.info("vcenter.session_expired", host=self._host)
        except Exception as exc:
            raise translate(exc) from exc
        self._login_again(generation)
        try:
            return fn(self._si)
        except Exception as exc:
            raise translate(exc) from exc

    def remember(self, key: Hashable, read: Callable[[], T]) -> T:
        """``read()`` once per ``key`` until ``forget``; a read that raises is not remembered."""
        with self._remembered_lock:
            if key in self._remembered:
                return self._remembered[key]
        value = read()
        with self._remembered_lock:
            self._remembered[key] = value
        return value

    def forget(self, key: Hashable | None = None) -> None:
        """Drop one remembered value, or (no key: an inventory sync) all of them."""
        with self._remembered_lock:
            if key is None:
                self._remembered.clear()
            else:
                self._remembered.pop(key, None)

    def lookup(self, fn: Callable[[vim.ServiceInstance], T]) -> T:
        """``call`` for a read: a transient ``SystemError`` is retried a bounded number of times.

        Only reads come here: repeating them has no effect, and vCenter answers some of them with
        SystemError while an object they meet is still being made.
        """
        for pause in LOOKUP_PAUSE_S[: LOOKUP_ATTEMPTS - 1]:
            try:
                return self.call(fn)
            except VsphereError as exc:
                if exc.fault != "SystemError":
                    raise
                log.info("vcenter.lookup_retried", error=str(exc))
            time.sleep(pause)
        return self.call(fn)

    # -- internals -------------------------------------------------------------------------------

    def _login_again(self, seen_generation: int) -> None:
        with self._login_lock:
            if self._generation != seen_generation:
                return  # another thread logged in while we waited for the lock
            try:
                self.content.sessionManager.Login(self._user, self._password)
            except Exception as exc:
                raise translate(exc, context="logging in again") from exc
            self._generation += 1
        log.info("vcenter.logged_in_again", host=self._host)

    def _find_datacenter(self) -> vim.Datacenter:
        found = props.contents(self.content, self.content.rootFolder, {vim.Datacenter: ["name"]})
        for obj, values in found:
            if values.get("name") == self.datacenter_name:
                return obj
        raise FileMissing(f"datacenter {self.datacenter_name!r} not found", fault="NotFound")
