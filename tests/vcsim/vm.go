package main

// Overrides and checks around VM, disk and file methods where stock vcsim
// 0.24 does not keep disk contents (or inventory) the way vSphere does; see
// disks.go for the disk model, snapshots.go and clone.go for the rest.
// Task overrides run in an asynchronous task (router.go) holding opMu.

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

func getVM(ref types.ManagedObjectReference) (*simulator.VirtualMachine, types.BaseMethodFault) {
	vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: ref}
	}
	return vm, nil
}

// flatBacking returns a disk's flat backing, the only kind we manage.
func flatBacking(d types.BaseVirtualDevice) (*types.VirtualDisk, *types.VirtualDiskFlatVer2BackingInfo) {
	disk, ok := d.(*types.VirtualDisk)
	if !ok {
		return nil, nil
	}
	b, _ := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
	return disk, b
}

// withChildDisks returns a copy of devs where every disk has moved to a new,
// empty child of its current file (backing.parent = the old backing).
func withChildDisks(devs []types.BaseVirtualDevice) ([]types.BaseVirtualDevice, types.BaseMethodFault) {
	out := deepCopy(devs)
	for _, d := range out {
		disk, b := flatBacking(d)
		if b == nil {
			continue
		}
		delta := nextDeltaName(b.FileName)
		if f := createChild(delta, b.FileName); f != nil {
			return nil, f
		}
		parent := deepCopy(*b)
		nb := deepCopy(*b)
		nb.FileName = delta
		nb.Parent = &parent
		nb.ChangeId = ""
		disk.Backing = &nb
	}
	return out, nil
}

func diskFiles(devs []types.BaseVirtualDevice) []string {
	var files []string
	for _, d := range devs {
		if _, b := flatBacking(d); b != nil {
			files = append(files, normDS(b.FileName))
		}
	}
	return files
}

// --- destroy ---

// destroyVM unregisters the VM and deletes the files in its own directory,
// except disks that another VM (or its snapshots) still uses as a parent.
// Files outside its directory (attached existing disks) are never touched.
func destroyVM(c *call) (types.AnyType, types.BaseMethodFault) {
	vm, f := getVM(c.this)
	if f != nil {
		return nil, f
	}
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		return nil, &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  vm.Runtime.PowerState,
		}
	}
	var vmx object.DatastorePath
	vmx.FromString(vm.Config.Files.VmPathName)
	dir := fmt.Sprintf("[%s] %s", vmx.Datastore, path.Dir(vmx.Path))
	if path.Ext(vmx.Path) != ".vmx" {
		dir = fmt.Sprintf("[%s] %s", vmx.Datastore, vmx.Path)
	}
	snaps := vmSnapshots(vm)

	simulator.Map.WithLock(vm, func() {
		r := vm.UnregisterVM(internalCtx(&vm.Self), &types.UnregisterVM{This: vm.Self})
		if r.Fault() != nil {
			f = r.Fault().VimFault().(types.BaseMethodFault)
		}
	})
	if f != nil {
		return nil, f
	}
	for _, s := range snaps {
		simulator.Map.Remove(s.Self)
	}
	dropFromPools(vm.Self) // templates have no vm.resourcePool, but may still be listed

	keep := referencedDisks(nil) // the VM is no longer in the inventory
	local, lf := localPath(dir)
	if lf != nil || dir == fmt.Sprintf("[%s] .", vmx.Datastore) {
		return nil, nil // never delete a datastore root
	}
	_ = filepath.Walk(local, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(local, p)
		name := normDS(dir + "/" + filepath.ToSlash(rel))
		main := strings.Replace(name, "-flat.vmdk", ".vmdk", 1)
		if keep[name] || keep[main] {
			return nil
		}
		_ = os.Remove(p)
		forgetUnder(name)
		return nil
	})
	_ = os.Remove(local) // only succeeds if nothing was kept
	return nil, nil
}

// --- VirtualDiskManager ---

func copyVirtualDisk(c *call) (types.AnyType, types.BaseMethodFault) {
	req := c.req.(*types.CopyVirtualDisk_Task)
	dst, f := localPath(req.DestName)
	if f != nil {
		return nil, f
	}
	if _, err := os.Stat(dst); err == nil && (req.Force == nil || !*req.Force) {
		return nil, &types.FileAlreadyExists{FileFault: types.FileFault{File: req.DestName}}
	}
	return nil, copyDisk(req.SourceName, req.DestName)
}

// createVirtualDisk makes an empty disk: a descriptor with no content and a
// sparse "-flat" extent whose size is the requested capacity, so a datastore
// search sees the disk's size (vCenter's extent of a disk is its capacity).
// Like vCenter: the folder must exist, an existing disk is FileAlreadyExists.
func createVirtualDisk(c *call) (types.AnyType, types.BaseMethodFault) {
	req := c.req.(*types.CreateVirtualDisk_Task)
	spec, ok := req.Spec.(*types.FileBackedVirtualDiskSpec)
	if !ok || spec.CapacityKb <= 0 {
		return nil, &types.InvalidArgument{InvalidProperty: "spec.capacityKb"}
	}
	dst, f := localPath(req.Name)
	if f != nil {
		return nil, f
	}
	if !strings.HasSuffix(req.Name, ".vmdk") {
		return nil, &types.InvalidArgument{InvalidProperty: "name"}
	}
	if _, err := os.Stat(filepath.Dir(dst)); err != nil {
		return nil, fileNotFound(req.Name)
	}
	if _, err := os.Stat(dst); err == nil {
		return nil, &types.FileAlreadyExists{FileFault: types.FileFault{File: req.Name}}
	}
	if f := writeDisk(req.Name, nil); f != nil {
		return nil, f
	}
	flat, _ := localPath(flatName(req.Name))
	if err := os.Truncate(flat, spec.CapacityKb*1024); err != nil {
		_ = deleteDisk(req.Name)
		return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: flatName(req.Name)}}
	}
	return req.Name, nil
}

func deleteVirtualDisk(c *call) (types.AnyType, types.BaseMethodFault) {
	req := c.req.(*types.DeleteVirtualDisk_Task)
	return nil, deleteDisk(req.Name)
}

// --- checks around stock CreateVM / ReconfigVM ---

func preCreateVM(c *call) types.BaseMethodFault {
	req := c.req.(*types.CreateVM_Task)
	folder, ok := simulator.Map.Get(c.this).(*simulator.Folder)
	if !ok {
		return nil
	}
	if f := checkDuplicateName(folder, req.Config.Name); f != nil {
		return f
	}
	if req.Config.Files == nil {
		return nil // stock reports InvalidVmConfig
	}
	ds := dsName(req.Config.Files.VmPathName)
	if findDatastore(ds) == nil {
		return &types.InvalidDatastore{Name: ds}
	}
	// Stock vcsim panics if the host cannot see the datastore; fail cleanly.
	var hosts []types.ManagedObjectReference
	if req.Host != nil {
		hosts = []types.ManagedObjectReference{*req.Host}
	} else if cr := computeResourceOf(req.Pool); cr != nil {
		hosts = hostsOf(*cr)
	}
	seen := false
	for _, h := range hosts {
		seen = seen || hostSees(h, ds)
	}
	if !seen {
		return &types.InvalidDatastore{Name: ds}
	}
	return checkDeviceChanges(req.Config.DeviceChange)
}

func preReconfigVM(c *call) types.BaseMethodFault {
	req := c.req.(*types.ReconfigVM_Task)
	vm, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachine)
	if !ok || vm.Config.Template {
		return nil // stock reports these
	}
	if f := checkDeviceChanges(req.Spec.DeviceChange); f != nil {
		return f
	}
	// Stock appends extraConfig entries; vSphere replaces by key.
	if len(req.Spec.ExtraConfig) > 0 {
		set := map[string]bool{}
		for _, o := range req.Spec.ExtraConfig {
			set[o.GetOptionValue().Key] = true
		}
		simulator.Map.WithLock(vm, func() {
			var kept []types.BaseOptionValue
			for _, o := range vm.Config.ExtraConfig {
				if !set[o.GetOptionValue().Key] {
					kept = append(kept, o)
				}
			}
			vm.Config.ExtraConfig = kept
		})
	}
	return nil
}

func postReconfigVM(c *call) {
	req := c.req.(*types.ReconfigVM_Task)
	vm, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	// An empty value deletes the key, as in vSphere.
	simulator.Map.WithLock(vm, func() {
		var kept []types.BaseOptionValue
		for _, o := range vm.Config.ExtraConfig {
			if v, ok := o.GetOptionValue().Value.(string); ok && v == "" {
				continue
			}
			kept = append(kept, o)
		}
		vm.Config.ExtraConfig = kept
	})
	for _, ch := range req.Spec.DeviceChange {
		ds := ch.GetVirtualDeviceConfigSpec()
		if _, b := flatBacking(ds.Device); b != nil && ds.FileOperation == types.VirtualDeviceConfigSpecFileOperationDestroy {
			forgetUnder(b.FileName)
		}
	}
}

// checkDeviceChanges validates NIC port groups and prepares attached disks.
func checkDeviceChanges(changes []types.BaseVirtualDeviceConfigSpec) types.BaseMethodFault {
	dc := simulator.Map.Any("Datacenter").(*simulator.Datacenter)
	for i, ch := range changes {
		ds := ch.GetVirtualDeviceConfigSpec()
		if ds.Operation == types.VirtualDeviceConfigSpecOperationRemove {
			continue
		}
		if nic, ok := ds.Device.(types.BaseVirtualEthernetCard); ok {
			if b, ok := nic.GetVirtualEthernetCard().Backing.(*types.VirtualEthernetCardNetworkBackingInfo); ok {
				// stock vcsim panics on an unknown network name
				if simulator.Map.FindByName(b.DeviceName, dc.Network) == nil {
					return &types.InvalidDeviceBacking{InvalidDeviceSpec: types.InvalidDeviceSpec{DeviceIndex: int32(i)}}
				}
			}
		}
		if _, b := flatBacking(ds.Device); b != nil && b.FileName != "" && dsName(b.FileName) != "" {
			var p object.DatastorePath
			p.FromString(b.FileName)
			if p.Path == "" {
				continue // "[ds]": stock generates the name
			}
			switch ds.FileOperation {
			case "":
				if lp, f := localPath(b.FileName); f != nil {
					return f
				} else if _, err := os.Stat(lp); err != nil {
					return fileNotFound(b.FileName)
				}
				_ = ensureFlat(b.FileName) // attach the existing file as-is
			case types.VirtualDeviceConfigSpecFileOperationCreate:
				forgetUnder(b.FileName)
			}
		}
	}
	return nil
}

// Stock MarkAsTemplate clears vm.resourcePool but leaves the VM in the
// pool's vm list (vCenter lists templates in no pool), and
// MarkAsVirtualMachine does not add it back; keep both directions consistent.
func postMarkAsTemplate(c *call) {
	if vm, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachine); ok && vm.Config.Template {
		dropFromPools(c.this)
	}
}

func postMarkAsVirtualMachine(c *call) {
	vm, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachine)
	if !ok || vm.Config.Template || vm.ResourcePool == nil {
		return
	}
	if pool, ok := simulator.Map.Get(*vm.ResourcePool).(*simulator.ResourcePool); ok {
		simulator.Map.AddReference(pool, &pool.Vm, vm.Self)
	}
}

func dropFromPools(ref types.ManagedObjectReference) {
	for _, e := range simulator.Map.All("ResourcePool") {
		if pool, ok := e.(*simulator.ResourcePool); ok {
			simulator.Map.RemoveReference(pool, &pool.Vm, ref)
		}
	}
}

func postDeleteDatastoreFile(c *call) {
	forgetUnder(c.req.(*types.DeleteDatastoreFile_Task).Name)
}
