"""The one root-disk rule (contracts.vsphere.root_disk): the disk a VM's BIOS boots from by default."""

from contracts.vsphere import DiskConfig, root_disk


def disk(key: int, controller_key: int, kind: str, unit: int) -> DiskConfig:
    return DiskConfig(
        key=key, file=f"[ds1] vm/{key}.vmdk", datastore="ds1", size_bytes=1,
        controller_key=controller_key, controller_type=kind, unit_number=unit,
    )  # fmt: skip


def test_ide_boots_before_scsi_although_scsi_unit_0_comes_first_in_the_device_list():
    scsi, ide = disk(2000, 1000, "scsi", 0), disk(3000, 200, "ide", 0)
    assert root_disk([scsi, ide]) == ide


def test_sata_before_scsi_and_scsi_before_nvme_whatever_their_controller_keys():
    sata, scsi, nvme = disk(1, 15000, "sata", 0), disk(2, 1000, "scsi", 0), disk(3, 31000, "nvme", 0)
    assert root_disk([nvme, scsi, sata]) == sata
    assert root_disk([nvme, scsi]) == scsi


def test_within_a_kind_the_first_bus_then_the_first_unit():
    assert root_disk([disk(1, 1001, "scsi", 0), disk(2, 1000, "scsi", 1)]).key == 2
    assert root_disk([disk(1, 1000, "scsi", 3), disk(2, 1000, "scsi", 1)]).key == 2


def test_a_disk_on_an_unknown_controller_comes_last():
    assert root_disk([disk(1, 100, "other", 0), disk(2, 1000, "scsi", 5)]).key == 2


def test_a_disk_in_the_configured_boot_order_comes_before_the_bios_default():
    ide, scsi = disk(3000, 200, "ide", 0), disk(2000, 1000, "scsi", 0)
    assert root_disk([ide, scsi.model_copy(update={"boot_order": 0})]) == scsi.model_copy(
        update={"boot_order": 0}
    )
    first, second = scsi.model_copy(update={"boot_order": 1}), ide.model_copy(update={"boot_order": 0})
    assert root_disk([first, second]) == second
