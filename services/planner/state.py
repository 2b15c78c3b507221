"""What each flow of the planner knows, typed: one pydantic model per saga kind.

Stored as ``model_dump(mode="json")`` in the saga row, read back with ``model_validate``.
Rows written before these models (a flat dict of string keys) are read by ``legacy_*``,
so a deployment in flight at the upgrade carries on.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.vsphere import DiskConfig, VmSnapshotConfig


class State(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- deploying ----------------------------------------------------------------------------------------


class SnapshotSource(State):
    kind: Literal["snapshot"] = "snapshot"
    vm_snapshot_id: uuid.UUID
    vm_ref: str = Field(description="The snapshot's VM.")
    snapshot_ref: str


class TemplateSource(State):
    """A template found in vCenter: cloned from its base snapshot, with no seed and no config read."""

    kind: Literal["template"] = "template"
    template_ref: str
    base_snapshot_ref: str


class Offering(State):
    name: str
    cpu_number: int
    cpu_speed_mhz: int
    memory_mb: int


class NicPlan(State):
    nic_id: uuid.UUID
    network: str
    network_id: uuid.UUID


class HostChoice(State):
    id: uuid.UUID
    ref: str
    name: str


class Seed(State):
    id: uuid.UUID | None = Field(description="None for a template: it is its own seed.")
    template_ref: str
    base_snapshot_ref: str


class Deployment(State):
    vm_id: uuid.UUID
    name: str
    account: uuid.UUID
    zone: str
    pool: str
    source: Annotated[SnapshotSource | TemplateSource, Field(discriminator="kind")]
    offering: Offering
    networks: list[NicPlan]
    requested_host: uuid.UUID | None = None
    vm_template_id: uuid.UUID | None = Field(default=None, description="Inherited from the source.")
    disk_offering_id: uuid.UUID | None = None
    root_volume_id: uuid.UUID | None = Field(default=None, description="None only in rows from before.")
    cores_per_socket: int = 1
    root_size: int | None = None
    config_known: bool = Field(
        default=False, description="The configuration stored with the VM snapshot is used as it is."
    )
    root_on_seed: bool = Field(
        default=False, description="The root volume is allocated with the seeding request, not alone."
    )
    host: HostChoice | None = None
    seed: Seed | None = None
    vm_ref: str | None = None
    clone_made_whole: bool = Field(
        default=False,
        description="The clone was asked for in the offering's shape and with the NICs: nothing to "
        "reconfigure or attach after it (False: a deployment begun before clones carried them).",
    )
    cloned_macs: dict[str, str] = Field(
        default_factory=dict, description="NIC id -> MAC, made with the clone."
    )
    powered_on: bool = Field(
        default=False, description="The clone powered itself on: no power-on command after it."
    )
    root_disk: DiskConfig | None = None
    nics_attached: int = 0


def legacy_deployment(d: dict[str, Any], vm_id: uuid.UUID) -> Deployment:
    if "template" in d:
        source: SnapshotSource | TemplateSource = TemplateSource(
            template_ref=d["template"]["ref"], base_snapshot_ref=d["template"]["base"]
        )
    else:
        source = SnapshotSource(
            vm_snapshot_id=d["snapshot_id"], vm_ref=d["source_vm_ref"], snapshot_ref=d["snapshot_ref"]
        )
    host = d.get("host")
    seed = d.get("seed")
    return Deployment(
        vm_id=vm_id,
        name=d["name"],
        account=d["account"],
        zone=d["zone"],
        pool=d["pool"],
        source=source,
        offering=Offering(**d["offering"]),
        networks=[NicPlan(**n) for n in d["networks"]],
        requested_host=d.get("host_id"),
        vm_template_id=d.get("template_id"),
        disk_offering_id=d.get("disk_offering_id"),
        root_volume_id=d.get("root_volume"),
        cores_per_socket=d.get("cores_per_socket", 1),
        root_size=d.get("root_size"),
        host=HostChoice(id=host["uuid"], ref=host["ref"], name=host["name"]) if host else None,
        seed=Seed(id=seed["id"], template_ref=seed["template_ref"], base_snapshot_ref=seed["base"])
        if seed
        else None,
        vm_ref=d.get("vm_ref"),
        root_disk=d.get("root_disk"),
        nics_attached=d.get("nic_index", 0),
    )


# -- power and destroy ------------------------------------------------------------------------------------


class PowerChange(State):
    """Start, stop, reboot or destroy of an instance."""

    vm_id: uuid.UUID
    zone: str
    vm_ref: str | None
    name: str
    was: str = Field(description="The instance's state before: it returns to it on failure.")
    expunge: bool = False
    powered_off: bool = False


def legacy_power_change(d: dict[str, Any], vm_id: uuid.UUID) -> PowerChange:
    return PowerChange(
        vm_id=vm_id, zone=d["zone"], vm_ref=d["vm_ref"], name=d["name"], was=d["was"],
        expunge=d.get("expunge", False),
    )  # fmt: skip


# -- VM snapshots ---------------------------------------------------------------------------------------


class Snapshotting(State):
    """Taking, deleting or reverting to a VM snapshot."""

    vm_snapshot_id: uuid.UUID
    vm_id: uuid.UUID | None = None  # None only in deletions begun before typed state
    zone: str
    vm_ref: str
    name: str
    account: uuid.UUID | None = None
    description: str = ""
    memory: bool = False
    snapshot_ref: str | None = None
    parent_id: uuid.UUID | None = None
    config: VmSnapshotConfig | None = None


class AdoptedSnapshot(State):
    id: uuid.UUID
    ref: str
    name: str
    config: VmSnapshotConfig | None = None
    recorded: bool = False


class Adoption(State):
    vm_id: uuid.UUID
    zone: str
    vm_ref: str
    name: str
    account: uuid.UUID
    volumes: list[dict[str, Any]] = Field(description="storage.VmVolume of each disk, as JSON.")
    snapshots: list[AdoptedSnapshot]


def legacy_adoption(d: dict[str, Any], vm_id: uuid.UUID, step: str) -> Adoption:
    snapshots = [AdoptedSnapshot(id=s["id"], ref=s["ref"], name=s["name"]) for s in d["snapshots"]]
    index = d.get("index", 0)
    for i, snapshot in enumerate(snapshots):
        if i < index:
            snapshot.recorded = True
        elif i == index and step == "record_snapshot" and "config" in d["snapshots"][i]:
            snapshot.config = VmSnapshotConfig.model_validate(d["snapshots"][i]["config"])
    return Adoption(
        vm_id=vm_id, zone=d["zone"], vm_ref=d["vm_ref"], name=d["name"], account=d["account"],
        volumes=[], snapshots=snapshots,
    )  # fmt: skip
