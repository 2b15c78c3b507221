"""translate(): pyvmomi faults and transport errors -> typed VsphereErrors with CloudStack codes."""

from __future__ import annotations

import http.client

import pytest
from pyVmomi import vim, vmodl

from services.hypervisor_agent.vsphere import faults
from services.hypervisor_agent.vsphere.faults import translate


@pytest.mark.parametrize(
    ("fault", "error_class", "code", "retryable"),
    [
        (vim.fault.NoDiskSpace(datastore="ds1"), faults.NoSpace, 533, False),
        (vim.fault.InsufficientStorageSpace(), faults.NoSpace, 533, False),
        (vim.fault.InsufficientMemoryResourcesFault(), faults.InsufficientCapacity, 533, False),
        (vim.fault.FileNotFound(file="[ds1] a.vmdk"), faults.FileMissing, 431, False),
        (vmodl.fault.ManagedObjectNotFound(), faults.FileMissing, 431, False),
        (vim.fault.NotFound(), faults.FileMissing, 431, False),
        (vmodl.fault.InvalidArgument(invalidProperty="spec.name"), faults.InvalidRequest, 431, False),
        (vim.fault.InvalidName(name="bad/name"), faults.InvalidRequest, 431, False),
        (vim.fault.DuplicateName(name="i-1"), faults.DuplicateName, 431, False),
        (vim.fault.FileAlreadyExists(file="[ds1] a.vmdk"), faults.DuplicateName, 431, False),
        (vim.fault.InvalidPowerState(), faults.InvalidPowerState, 536, False),
        (vim.fault.TaskInProgress(), faults.TaskInProgress, 536, True),
        (vim.fault.ResourceInUse(), faults.ResourceBusy, 536, False),
        (vim.fault.InvalidState(), faults.ResourceBusy, 536, False),
        (vim.fault.NotAuthenticated(), faults.NotAuthenticated, 530, True),
        (vmodl.fault.HostNotConnected(), faults.Unreachable, 530, True),
        (vmodl.fault.HostNotReachable(), faults.Unreachable, 530, True),
        (vmodl.fault.SystemError(reason="boom"), faults.Transient, 530, True),
        (vim.fault.Timedout(), faults.Transient, 530, True),
        (vim.fault.ConcurrentAccess(), faults.Transient, 530, True),
        (vim.fault.FileLocked(file="[ds1] a.vmdk"), faults.Locked, 536, True),
        (vmodl.fault.NotSupported(), faults.Unsupported, 432, False),
        (
            vim.fault.NoPermission(privilegeId="VirtualMachine.Provisioning.Clone"),
            faults.VsphereError,
            530,
            False,
        ),
        (vim.fault.InvalidLogin(), faults.VsphereError, 530, False),
        (vim.fault.InvalidHostState(), faults.ResourceBusy, 536, False),
        (vim.fault.DatastoreNotWritableOnHost(), faults.InvalidRequest, 431, False),
    ],
)
def test_a_fault_becomes_its_typed_error(fault, error_class, code, retryable):
    error = translate(fault)

    assert type(error) is error_class
    assert (error.code, error.retryable) == (code, retryable)
    assert error.fault == type(fault)._wsdlName


def test_no_disk_space_names_its_datastore_and_message():
    error = translate(
        vim.fault.NoDiskSpace(datastore="ds1", msg="Insufficient disk space on datastore 'ds1'.")
    )

    assert error.fault == "NoDiskSpace" and error.datastore == "ds1"
    assert error.message == "Insufficient disk space on datastore 'ds1'."
    assert str(error) == "NoDiskSpace on datastore ds1: Insufficient disk space on datastore 'ds1'."
    assert isinstance(error, faults.InsufficientCapacity) and isinstance(error, faults.VsphereError)


def test_a_task_error_uses_the_localized_message_and_the_context():
    task_error = vmodl.LocalizedMethodFault(
        fault=vim.fault.FileNotFound(file="[ds2] seed/root.vmdk"),
        localizedMessage="File [ds2] seed/root.vmdk was not found",
    )

    error = translate(task_error, context="CopyVirtualDisk_Task")

    assert isinstance(error, faults.FileMissing) and error.datastore == "ds2"
    assert (
        str(error)
        == "FileNotFound on datastore ds2: File [ds2] seed/root.vmdk was not found (CopyVirtualDisk_Task)"
    )


def test_a_fault_without_text_is_described_by_its_fields():
    error = translate(vim.fault.InvalidPowerState(requestedState="poweredOff", existingState="poweredOn"))

    assert str(error) == "InvalidPowerState: requestedState=poweredOff, existingState=poweredOn"


def test_an_unlisted_fault_is_found_through_its_base_type():
    # InvalidDatastorePath is an InvalidDatastore; VmConfigFault families fall back to 530
    assert (
        type(translate(vim.fault.InvalidDatastorePath(datastorePath="[ds9] x", name="ds9")))
        is faults.InvalidRequest
    )
    assert translate(vim.fault.CpuIncompatible()).code == 530


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError("refused"),
        TimeoutError("timed out"),
        http.client.RemoteDisconnected("closed"),
    ],
)
def test_transport_errors_are_retryable(exc):
    error = translate(exc)

    assert isinstance(error, faults.Unreachable) and error.retryable and error.code == 530


def test_a_vsphere_error_passes_through_with_context_added():
    original = faults.TaskTimeout("task-1 still running", fault="TaskTimeout")

    assert translate(original, context="CloneVM_Task") is original
    assert original.retryable and str(original) == "TaskTimeout: task-1 still running (CloneVM_Task)"
