package main

// A second source VM, made on request (POST /_control/ide-vm), whose disks sit
// on two kinds of controller: a disk on IDE 0:0 and one on SCSI 0:0. The BIOS
// tries IDE hard disks before SCSI ones, so the IDE disk is the one the VM
// boots from, although SCSI unit 0 is what a SCSI-only VM boots from; with
// {"boot": "scsi"} the VM's configured boot order names the SCSI disk instead
// (bootOptions.bootOrder), and that one is its boot disk. {"name": ...} picks
// another name, so one simulator can hold both. It is made on request, not at
// start, so the fixed inventory stays as README.md documents it for every
// other test.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

const ideVMName = "ide-vm"

// inventoryService is the simulator the inventory was built in (set by buildInventory).
var inventoryService *simulator.Service

func createIdeVM(w http.ResponseWriter, r *http.Request) (interface{}, error) {
	var req struct {
		Name string `json:"name"`
		Boot string `json:"boot"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil && err != io.EOF {
		return nil, err
	}
	name := req.Name
	if name == "" {
		name = ideVMName
	}
	idePath := fmt.Sprintf("[ds1] %s/%s.vmdk", name, name)
	scsiPath := fmt.Sprintf("[ds1] %s/%s_1.vmdk", name, name)
	ctx := context.Background()
	c, err := vim25.NewClient(ctx, inventoryService)
	if err != nil {
		return nil, err
	}
	finder := find.NewFinder(c, false)
	dc, err := finder.Datacenter(ctx, dcName)
	if err != nil {
		return nil, err
	}
	finder.SetDatacenter(dc)
	if vm, err := finder.VirtualMachine(ctx, name); err == nil {
		return map[string]string{"ref": vm.Reference().Value, "name": name}, nil // made already
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	host, err := finder.HostSystem(ctx, "esx-1-1")
	if err != nil {
		return nil, err
	}
	pool, err := host.ResourcePool(ctx)
	if err != nil {
		return nil, err
	}

	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("lsilogic")
	if err != nil {
		return nil, err
	}
	scsi.GetVirtualDevice().Key = 1000
	devices = append(devices, scsi)
	// IDE 0 (key 200) is one of the default devices every VM gets.
	ide := &types.VirtualIDEController{VirtualController: types.VirtualController{
		VirtualDevice: types.VirtualDevice{Key: 200}, BusNumber: 0,
	}}
	boot := devices.CreateDisk(ide, types.ManagedObjectReference{}, idePath)
	boot.CapacityInKB = 1024 * 1024
	boot.Key, boot.ControllerKey, boot.UnitNumber = 3000, 200, types.NewInt32(0)
	data := devices.CreateDisk(scsi.(types.BaseVirtualController), types.ManagedObjectReference{}, scsiPath)
	data.CapacityInKB = 512 * 1024
	data.Key, data.ControllerKey, data.UnitNumber = 2000, 1000, types.NewInt32(0)
	devices = append(devices, boot, data)
	for _, d := range []*types.VirtualDisk{boot, data} {
		d.Backing.(*types.VirtualDiskFlatVer2BackingInfo).Datastore = nil
	}
	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return nil, err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:              name,
		GuestId:           string(types.VirtualMachineGuestOsIdentifierOtherGuest64),
		NumCPUs:           1,
		NumCoresPerSocket: 1,
		MemoryMB:          1024,
		Files:             &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[ds1] %s/%s.vmx", name, name)},
		DeviceChange:      changes,
	}
	if req.Boot == "scsi" {
		spec.BootOptions = &types.VirtualMachineBootOptions{BootOrder: []types.BaseVirtualMachineBootOptionsBootableDevice{
			&types.VirtualMachineBootOptionsBootableDiskDevice{DeviceKey: data.Key},
		}}
	}
	if err := os.MkdirAll(filepath.Join(datastoreURL("ds1"), name), 0o700); err != nil {
		return nil, err
	}
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return nil, err
	}
	info, err := task.WaitForResult(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	contents := map[string]string{
		idePath:  fmt.Sprintf("snapdeploy-vcsim %s disk on IDE 0:0 v0\n", name),
		scsiPath: fmt.Sprintf("snapdeploy-vcsim %s disk on SCSI 0:0 v0\n", name),
	}
	for path, content := range contents {
		p, f := localPath(path)
		if f != nil {
			return nil, fmt.Errorf("%s: %T", path, f)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return nil, err
		}
	}
	ref := info.Result.(types.ManagedObjectReference)
	return map[string]string{"ref": ref.Value, "name": name}, nil
}
