"""Bounded field types of the contracts: what PostgreSQL, vSphere and the domain accept.

Every integer of a command or query fits the column that stores it (PostgreSQL ``integer`` or
``bigint``) and what vSphere 8 accepts; every string has a maximum length, and names have no
control characters (PostgreSQL ``text`` refuses U+0000). A value outside these bounds fails the
message's validation, which the dispatcher answers with a 431 at once, never a retry.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# vSphere 8 configuration maximums.
MAX_VCPUS = 768
MAX_MEMORY_MB = 24 * 1024 * 1024  # 24 TB per VM
MAX_DISK_BYTES = 62 * 2**40  # 62 TB per virtual disk
MAX_CPU_MHZ = 100_000  # per vCPU; far above any CPU sold

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NUL = "\x00"


def _no_control_characters(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("control_characters", "must not contain control characters")
    return value


def _no_nul(value: str) -> str:
    if _NUL in value:
        raise PydanticCustomError("nul_character", "must not contain the NUL character (U+0000)")
    return value


# -- strings ----------------------------------------------------------------------------------------

Name = Annotated[
    str, Field(min_length=1, max_length=255), AfterValidator(_no_control_characters)
]  # what a person names: a VM, a snapshot, an offering, a volume
OptionalName = Annotated[str, Field(max_length=255), AfterValidator(_no_control_characters)]
Description = Annotated[str, Field(max_length=4096), AfterValidator(_no_nul)]  # free text, lines allowed
ZoneId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$"),
]  # part of agent routing keys (``agent.<zone>.<command>``): no dots or wildcards
Ref = Annotated[
    str, Field(min_length=1, max_length=255), AfterValidator(_no_control_characters)
]  # a vCenter managed object id (vm-42, snapshot-7) or a snapdeploy id in text form
DatastoreName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_control_characters)]
DatastorePath = Annotated[
    str, Field(min_length=1, max_length=2048), AfterValidator(_no_control_characters)
]  # '[ds1] vm/vm.vmdk'
Mac = Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")]
State = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z]+$")]  # a state filter
TypeName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z][A-Za-z0-9]*$")]
EventType = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9_.]+$")]  # VM.CREATE
BrokerUser = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@-]+$")
]  # a RabbitMQ user name

# -- integers ---------------------------------------------------------------------------------------

Vcpus = Annotated[int, Field(ge=1, le=MAX_VCPUS)]
CpuMhz = Annotated[int, Field(ge=1, le=MAX_CPU_MHZ)]
MemoryMb = Annotated[int, Field(ge=1, le=MAX_MEMORY_MB)]
DiskBytes = Annotated[int, Field(ge=1, le=MAX_DISK_BYTES)]
DeviceId = Annotated[int, Field(ge=0, le=63)]  # a volume's position on its VM (SCSI units per VM)
DeviceKey = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)]  # vSphere device key (int32)
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]
