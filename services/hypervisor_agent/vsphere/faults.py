"""vSphere faults as typed errors carrying a CloudStack error code.

Everything below this package raises ``VsphereError`` (or a subclass) only; the handler layer
turns one into a ``<Command>Failed`` reply with ``error_code``, ``retryable`` and ``fault``.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable
from typing import TypeVar

import structlog
from pyVmomi import vmodl

from contracts.errors import ErrorCode

log = structlog.get_logger(__name__)
T = TypeVar("T")


class VsphereError(Exception):
    """A vCenter call or task failed.

    ``fault`` is the vSphere fault type name (``NoDiskSpace``), ``message`` vCenter's text,
    ``datastore`` the datastore the fault names (when it names one), ``context`` what the agent
    was doing. Subclasses fix ``code`` and ``retryable``; both can be overridden per instance.
    """

    code: int = ErrorCode.INTERNAL_ERROR
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        fault: str | None = None,
        datastore: str | None = None,
        context: str | None = None,
        code: int | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = message
        self.fault = fault or type(self).__name__
        self.datastore = datastore or None
        self.context = context
        if code is not None:
            self.code = int(code)
        if retryable is not None:
            self.retryable = retryable
        super().__init__(message)

    def __str__(self) -> str:
        where = f" on datastore {self.datastore}" if self.datastore else ""
        text = f"{self.fault}{where}: {self.message}"
        return f"{text} ({self.context})" if self.context else text


class InsufficientCapacity(VsphereError):
    code = ErrorCode.INSUFFICIENT_CAPACITY


class NoSpace(InsufficientCapacity):
    """The datastore has no room for the disk or VM."""


class InvalidRequest(VsphereError):
    """The command names something that does not exist or is not allowed (CloudStack 431)."""

    code = ErrorCode.PARAM_ERROR


class FileMissing(InvalidRequest):
    """A file, VM, snapshot or other object the command names does not exist."""


class DuplicateName(InvalidRequest):
    """The name is taken by an object that is not the one this command would make."""


class ResourceBusy(VsphereError):
    """The object is in use or in the wrong state for the operation (CloudStack 536)."""

    code = ErrorCode.RESOURCE_IN_USE


class Unsupported(VsphereError):
    """vCenter does not support the operation on that object (CloudStack 432)."""

    code = ErrorCode.UNSUPPORTED


class InvalidPowerState(ResourceBusy):
    pass


class TaskInProgress(ResourceBusy):
    retryable = True


class Locked(ResourceBusy):
    """A file is locked by another task or host; the lock ends with that task."""

    retryable = True


class Transient(VsphereError):
    """vCenter failed for a passing reason of its own (internal error, concurrent change, timeout)."""

    retryable = True


class NotAuthenticated(VsphereError):
    retryable = True


class Unreachable(VsphereError):
    """vCenter or the host could not be reached; the same call may work later."""

    retryable = True


class TaskTimeout(VsphereError):
    """The task did not finish in time; it may still be running in vCenter."""

    retryable = True


# vSphere fault type name -> error class. A fault not listed is looked up by its base types
# (e.g. InsufficientCpuResourcesFault -> InsufficientResourcesFault), so the table names
# families rather than every leaf.
#
# Retried or final is decided here, per fault, by the class's ``retryable``. A retryable
# fault becomes a TransientError: the command is delivered again with backoff, at most the
# queue's delivery limit (10 deliveries, 0.5 s doubling to 30 s: about two minutes), then
# it fails with its reason. Every agent operation is idempotent (deterministic names, tagged
# tasks), so a retry never makes a second object. Retried: what passes on its own (a
# session, a host connection, a task or lock on the object, vCenter's SystemError and
# Timedout, a concurrent change). Final, at once: what names a wrong or missing object, a
# lack of capacity, a state the object will not leave by itself, a missing privilege, and
# every fault not listed (nothing is retried that we cannot show may pass).
_BY_FAULT: dict[str, type[VsphereError]] = {
    "NoDiskSpace": NoSpace,
    "InsufficientStorageSpace": NoSpace,
    "OutOfDiskSpace": NoSpace,
    "InsufficientResourcesFault": InsufficientCapacity,
    "FileNotFound": FileMissing,
    "ManagedObjectNotFound": FileMissing,
    "NotFound": FileMissing,
    "DuplicateName": DuplicateName,
    "FileAlreadyExists": DuplicateName,
    "AlreadyExists": DuplicateName,
    "InvalidArgument": InvalidRequest,
    "InvalidName": InvalidRequest,
    "InvalidDatastore": InvalidRequest,
    "InvalidDeviceSpec": InvalidRequest,
    "NotSupported": Unsupported,
    "InvalidPowerState": InvalidPowerState,
    "TaskInProgress": TaskInProgress,
    "FileLocked": Locked,
    "ResourceInUse": ResourceBusy,
    "InvalidState": ResourceBusy,
    "NotAuthenticated": NotAuthenticated,
    "HostCommunication": Unreachable,  # and HostNotReachable, HostNotConnected
    "RequestCanceled": Unreachable,
    "SystemError": Transient,
    "Timedout": Transient,
    "ConcurrentAccess": Transient,
    "NoPermission": VsphereError,  # the agent's vCenter user lacks a privilege: an operator's fix
}


def fault_name(fault: vmodl.MethodFault) -> str:
    """``vim.fault.NoDiskSpace`` -> ``NoDiskSpace`` (the wire name vCenter uses)."""
    return getattr(type(fault), "_wsdlName", type(fault).__name__)


def translate(
    exc_or_fault: BaseException | vmodl.LocalizedMethodFault, *, context: str | None = None
) -> VsphereError:
    """Turn a pyvmomi fault (raised, or a task's ``info.error``) or a transport error into a VsphereError."""
    if isinstance(exc_or_fault, VsphereError):
        if context and not exc_or_fault.context:
            exc_or_fault.context = context
        return exc_or_fault
    if isinstance(exc_or_fault, vmodl.LocalizedMethodFault):
        return _from_fault(exc_or_fault.fault, exc_or_fault.localizedMessage, context)
    if isinstance(exc_or_fault, vmodl.MethodFault):
        return _from_fault(exc_or_fault, None, context)
    if isinstance(exc_or_fault, OSError | http.client.HTTPException):
        # refused/reset connections, DNS and TLS failures (all OSError), a dropped HTTP connection
        return Unreachable(
            str(exc_or_fault) or type(exc_or_fault).__name__,
            fault=type(exc_or_fault).__name__,
            context=context,
        )
    return VsphereError(
        str(exc_or_fault) or type(exc_or_fault).__name__, fault=type(exc_or_fault).__name__, context=context
    )


def _from_fault(fault: vmodl.MethodFault, localized: str | None, context: str | None) -> VsphereError:
    name = fault_name(fault)
    error_class = next(
        (_BY_FAULT[n] for n in (getattr(t, "_wsdlName", "") for t in type(fault).__mro__) if n in _BY_FAULT),
        VsphereError,
    )
    message = localized or fault.msg or _describe(fault) or name
    return error_class(message, fault=name, datastore=_datastore_of(fault), context=context)


def _datastore_of(fault: vmodl.MethodFault) -> str | None:
    """The datastore a fault names: its ``datastore`` field, else the ``[ds]`` of its ``file``."""
    datastore = getattr(fault, "datastore", None)
    if isinstance(datastore, str) and datastore:
        return datastore
    file = getattr(fault, "file", None)
    if isinstance(file, str) and file.startswith("[") and "]" in file:
        return file[1 : file.index("]")]
    return None


def _describe(fault: vmodl.MethodFault) -> str:
    """A message from the fault's fields, for faults that come without text."""
    fields = ("file", "name", "requestedState", "existingState", "reason", "invalidProperty", "obj")
    parts = [f"{f}={getattr(fault, f)}" for f in fields if getattr(fault, f, None) not in (None, "")]
    return ", ".join(parts)


def cleanup_step(step: Callable[[], T]) -> T | None:
    """Run one step of undoing a failed operation; what it returns, or None when it failed (its
    own failure is logged, not raised).

    The caller re-raises the error that made it clean up: that one is what the command reports.
    """
    try:
        return step()
    except VsphereError as exc:
        log.warning("vsphere.cleanup_failed", error=str(exc))
        return None
