package main

// CloneVM_Task: start from the VM's current or a snapshot's configuration,
// place the clone (host/pool/datastore), give it copied disks (full clone)
// or child disks of the source files (linked clone), then let the stock
// CreateVM build the inventory object.

import (
	"fmt"
	"os"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// cloneVM implements CloneVM_Task honouring spec.snapshot, spec.location
// (host, pool, datastore, diskMoveType, deviceChange), spec.config,
// spec.template and spec.powerOn.
func cloneVM(c *call) (types.AnyType, types.BaseMethodFault) {
	req := c.req.(*types.CloneVM_Task)
	spec := req.Spec
	src, f := getVM(c.this)
	if f != nil {
		return nil, f
	}

	// 1. The configuration we clone from: a snapshot's or the current one.
	var cfg types.VirtualMachineConfigInfo
	var srcHost types.ManagedObjectReference
	var srcPool *types.ManagedObjectReference
	simulator.Map.WithLock(src, func() {
		if spec.Snapshot != nil {
			snap, ok := simulator.Map.Get(*spec.Snapshot).(*simulator.VirtualMachineSnapshot)
			if !ok || snap.Vm != src.Self {
				f = &types.InvalidArgument{InvalidProperty: "spec.snapshot"}
				return
			}
			cfg = deepCopy(snap.Config)
		} else {
			cfg = deepCopy(*src.Config)
		}
		srcHost = *src.Runtime.Host
		srcPool = src.ResourcePool
	})
	if f != nil {
		return nil, f
	}

	// 2. Folder and name.
	folder, ok := simulator.Map.Get(req.Folder).(*simulator.Folder)
	if !ok {
		return nil, &types.InvalidArgument{InvalidProperty: "folder"}
	}
	if f := checkDuplicateName(folder, req.Name); f != nil {
		return nil, f
	}

	// 3. Placement: datastore, pool, host.
	ds := dsName(cfg.Files.VmPathName)
	if spec.Location.Datastore != nil {
		d, ok := simulator.Map.Get(*spec.Location.Datastore).(*simulator.Datastore)
		if !ok {
			return nil, &types.InvalidArgument{InvalidProperty: "spec.location.datastore"}
		}
		ds = d.Name
	}
	dsObj := findDatastore(ds)
	if dsObj == nil {
		return nil, &types.InvalidDatastore{Name: ds}
	}
	host, pool, f := placement(spec.Location.Host, spec.Location.Pool, srcHost, srcPool, ds)
	if f != nil {
		return nil, f
	}

	// 4. The new VM's directory, "[ds] <name>" (or "<name>_N" if taken).
	dir := req.Name
	for i := 1; ; i++ {
		p, _ := localPath(fmt.Sprintf("[%s] %s", ds, dir))
		if _, err := os.Stat(p); os.IsNotExist(err) {
			break
		}
		dir = fmt.Sprintf("%s_%d", req.Name, i)
	}
	dirPath, _ := localPath(fmt.Sprintf("[%s] %s", ds, dir))
	if err := os.MkdirAll(dirPath, 0o700); err != nil {
		return nil, &types.CannotCreateFile{FileFault: types.FileFault{File: dirPath}}
	}
	fail := func(f types.BaseMethodFault) (types.AnyType, types.BaseMethodFault) {
		_ = os.RemoveAll(dirPath)
		forgetUnder(fmt.Sprintf("[%s] %s", ds, dir))
		return nil, f
	}

	// 5. Devices: the source's (minus the defaults CreateVM adds itself), with
	// spec.location.deviceChange and spec.config.deviceChange applied.
	plan := planDevices(cfg.Hardware.Device, spec)

	// 6. Disks: full clones copy the effective bytes; linked clones get an
	// empty child whose parent is the source (snapshot) disk.
	linked := spec.Location.DiskMoveType == string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
	n := 0
	for _, p := range plan {
		disk, b := flatBacking(p.dev)
		if b == nil || !p.fromSource {
			continue
		}
		name := fmt.Sprintf("[%s] %s/%s.vmdk", ds, dir, req.Name)
		if n > 0 {
			name = fmt.Sprintf("[%s] %s/%s_%d.vmdk", ds, dir, req.Name, n)
		}
		n++
		nb := deepCopy(*b)
		nb.FileName = name
		nb.Datastore = &dsObj.Self
		nb.ChangeId = ""
		nb.Uuid = ""
		if linked {
			if !hostSees(host, dsName(b.FileName)) {
				return fail(&types.InvalidArgument{InvalidProperty: "spec.location.host"})
			}
			if f := createChild(name, b.FileName); f != nil {
				return fail(f)
			}
			parent := deepCopy(*b)
			nb.Parent = &parent
		} else {
			if f := copyDisk(b.FileName, name); f != nil {
				return fail(f)
			}
			nb.Parent = nil
		}
		nd := deepCopy(*disk)
		nd.Backing = &nb
		p.dev = &nd
	}

	// 7. Config spec for CreateVM.
	cs := types.VirtualMachineConfigSpec{
		Name:              req.Name,
		GuestId:           cfg.GuestId,
		NumCPUs:           cfg.Hardware.NumCPU,
		NumCoresPerSocket: cfg.Hardware.NumCoresPerSocket,
		MemoryMB:          int64(cfg.Hardware.MemoryMB),
		Annotation:        cfg.Annotation,
		Firmware:          cfg.Firmware,
		Version:           cfg.Version,
		Files:             &types.VirtualMachineFileInfo{VmPathName: fmt.Sprintf("[%s] %s/%s.vmx", ds, dir, req.Name)},
	}
	var override []types.BaseOptionValue
	if sc := spec.Config; sc != nil {
		if sc.NumCPUs > 0 {
			cs.NumCPUs = sc.NumCPUs
		}
		if sc.NumCoresPerSocket > 0 {
			cs.NumCoresPerSocket = sc.NumCoresPerSocket
		}
		if sc.MemoryMB > 0 {
			cs.MemoryMB = sc.MemoryMB
		}
		if sc.Annotation != "" {
			cs.Annotation = sc.Annotation
		}
		if sc.GuestId != "" {
			cs.GuestId = sc.GuestId
		}
		cs.InstanceUuid = sc.InstanceUuid
		cs.CpuAllocation = sc.CpuAllocation
		override = sc.ExtraConfig
	}
	cs.ExtraConfig = mergeExtraConfig(cfg.ExtraConfig, override)
	for _, p := range plan {
		cs.DeviceChange = append(cs.DeviceChange, &types.VirtualDeviceConfigSpec{
			Operation:     types.VirtualDeviceConfigSpecOperationAdd,
			Device:        p.dev,
			FileOperation: p.fop,
		})
	}

	// 8. Create it with the stock CreateVM (inventory, events, layout).
	res := folder.CreateVMTask(internalCtx(nil), &types.CreateVM_Task{This: folder.Self, Config: cs, Pool: pool, Host: &host})
	inner := simulator.Map.Get(res.(*methods.CreateVM_TaskBody).Res.Returnval).(*simulator.Task)
	if inner.Info.Error != nil {
		return fail(inner.Info.Error.Fault)
	}
	ref := inner.Info.Result.(types.ManagedObjectReference)
	clone := simulator.Map.Get(ref).(*simulator.VirtualMachine)

	// 9. Template / power on. A power-on fault injected for PowerOnVM_Task strikes the clone's
	// power-on too: as in vCenter, the clone task fails and leaves the VM it made, powered off.
	var powerOnFault types.BaseMethodFault
	if spec.PowerOn && !spec.Template {
		if inj, _ := takeInjection(&call{name: "PowerOnVM_Task", this: ref}); inj != nil {
			powerOnFault = inj.fault
		}
	}
	simulator.Map.WithLock(clone, func() {
		ctx := internalCtx(&clone.Self)
		if spec.Template {
			clone.MarkAsTemplate(&types.MarkAsTemplate{This: ref})
			dropFromPools(ref)
		} else if spec.PowerOn && powerOnFault == nil {
			clone.PowerOnVMTask(ctx, &types.PowerOnVM_Task{This: ref})
		}
	})
	if powerOnFault != nil {
		return nil, powerOnFault
	}
	return ref, nil
}

type plannedDevice struct {
	dev        types.BaseVirtualDevice
	fop        types.VirtualDeviceConfigSpecFileOperation
	fromSource bool // a disk of the source VM (gets a copied/child file)
}

func planDevices(devs []types.BaseVirtualDevice, spec types.VirtualMachineCloneSpec) []*plannedDevice {
	defaults := object.VirtualDeviceList(esx.VirtualDevice)
	list := object.VirtualDeviceList(devs)
	var plan []*plannedDevice
	for _, d := range devs {
		if defaults.Find(list.Name(d)) != nil {
			continue // CreateVM adds the default controllers itself
		}
		d = deepCopy(d)
		if nic, ok := d.(types.BaseVirtualEthernetCard); ok {
			nic.GetVirtualEthernetCard().MacAddress = "" // clones get new MACs
		}
		plan = append(plan, &plannedDevice{dev: d, fromSource: true})
	}

	changes := append([]types.BaseVirtualDeviceConfigSpec{}, spec.Location.DeviceChange...)
	if spec.Config != nil {
		changes = append(changes, spec.Config.DeviceChange...)
	}
	for _, ch := range changes {
		ds := ch.GetVirtualDeviceConfigSpec()
		key := ds.Device.GetVirtualDevice().Key
		switch ds.Operation {
		case types.VirtualDeviceConfigSpecOperationRemove:
			kept := plan[:0]
			for _, p := range plan {
				if p.dev.GetVirtualDevice().Key != key {
					kept = append(kept, p)
				}
			}
			plan = kept
		case types.VirtualDeviceConfigSpecOperationEdit:
			for _, p := range plan {
				if p.dev.GetVirtualDevice().Key != key {
					continue
				}
				nd := deepCopy(ds.Device)
				if disk, ok := nd.(*types.VirtualDisk); ok && p.fromSource {
					disk.Backing = p.dev.GetVirtualDevice().Backing // keep the source file; only size etc. change
				}
				p.dev = nd
			}
		case types.VirtualDeviceConfigSpecOperationAdd:
			plan = append(plan, &plannedDevice{dev: ds.Device, fop: ds.FileOperation})
		}
	}
	return plan
}

// mergeExtraConfig: the clone inherits the source's extraConfig; keys in
// override replace inherited ones (an empty value removes the key).
func mergeExtraConfig(base, override []types.BaseOptionValue) []types.BaseOptionValue {
	var out []types.BaseOptionValue
	set := map[string]bool{}
	for _, o := range override {
		set[o.GetOptionValue().Key] = true
	}
	for _, o := range base {
		k := o.GetOptionValue().Key
		if k == "govcsim" || set[k] {
			continue // "govcsim" is added by CreateVM itself
		}
		out = append(out, o)
	}
	for _, o := range override {
		if v, ok := o.GetOptionValue().Value.(string); ok && v == "" {
			continue
		}
		out = append(out, o)
	}
	return out
}

func checkDuplicateName(folder *simulator.Folder, name string) types.BaseMethodFault {
	for _, ref := range folder.ChildEntity {
		if vm, ok := simulator.Map.Get(ref).(*simulator.VirtualMachine); ok && vm.Name == name {
			return &types.DuplicateName{Name: name, Object: ref}
		}
	}
	return nil
}

// hostSees reports whether the host mounts the named datastore.
func hostSees(host types.ManagedObjectReference, ds string) bool {
	h, ok := simulator.Map.Get(host).(*simulator.HostSystem)
	if !ok {
		return false
	}
	for _, ref := range h.Datastore {
		if d, ok := simulator.Map.Get(ref).(*simulator.Datastore); ok && d.Name == ds {
			return true
		}
	}
	return false
}

// computeResourceOf walks up from a pool or host to its (cluster) compute resource.
func computeResourceOf(ref types.ManagedObjectReference) *types.ManagedObjectReference {
	for i := 0; i < 20; i++ {
		if ref.Type == "ClusterComputeResource" || ref.Type == "ComputeResource" {
			return &ref
		}
		e, ok := simulator.Map.Get(ref).(mo.Entity)
		if !ok || e.Entity().Parent == nil {
			return nil
		}
		ref = *e.Entity().Parent
	}
	return nil
}

func hostsOf(cr types.ManagedObjectReference) []types.ManagedObjectReference {
	switch c := simulator.Map.Get(cr).(type) {
	case *simulator.ClusterComputeResource:
		return c.Host
	case *mo.ComputeResource:
		return c.Host
	}
	return nil
}

func rootPoolOf(cr types.ManagedObjectReference) *types.ManagedObjectReference {
	switch c := simulator.Map.Get(cr).(type) {
	case *simulator.ClusterComputeResource:
		return c.ResourcePool
	case *mo.ComputeResource:
		return c.ResourcePool
	}
	return nil
}

// placement picks the clone's host and pool: an explicit host must see the
// datastore; otherwise a host of the pool's cluster that sees it, preferring
// the source's host. Templates have no pool, so the host's root pool is used.
func placement(wantHost, wantPool *types.ManagedObjectReference, srcHost types.ManagedObjectReference, srcPool *types.ManagedObjectReference, ds string) (types.ManagedObjectReference, types.ManagedObjectReference, types.BaseMethodFault) {
	var none types.ManagedObjectReference
	pool := wantPool
	if wantHost != nil {
		if !hostSees(*wantHost, ds) {
			return none, none, &types.InvalidArgument{InvalidProperty: "spec.location.host"}
		}
		if pool == nil {
			if cr := computeResourceOf(*wantHost); cr != nil {
				pool = rootPoolOf(*cr)
			}
		}
		if pool == nil {
			return none, none, &types.InvalidArgument{InvalidProperty: "spec.location.pool"}
		}
		return *wantHost, *pool, nil
	}
	if pool == nil {
		pool = srcPool
	}
	if pool == nil {
		if cr := computeResourceOf(srcHost); cr != nil {
			pool = rootPoolOf(*cr)
		}
	}
	if pool == nil {
		return none, none, &types.InvalidArgument{InvalidProperty: "spec.location.pool"}
	}
	cr := computeResourceOf(*pool)
	if cr == nil {
		return none, none, &types.InvalidArgument{InvalidProperty: "spec.location.pool"}
	}
	hosts := hostsOf(*cr)
	for _, h := range hosts {
		if h == srcHost && hostSees(h, ds) {
			return h, *pool, nil
		}
	}
	for _, h := range hosts {
		if hostSees(h, ds) {
			return h, *pool, nil
		}
	}
	return none, none, &types.InvalidArgument{InvalidProperty: "spec.location.datastore"}
}
