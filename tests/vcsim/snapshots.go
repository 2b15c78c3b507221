package main

// Snapshots the vSphere way: taking one freezes the current disk files (the
// snapshot's config keeps pointing at them) and moves the VM onto new child
// disks; reverting puts the VM on fresh children of the snapshot's files.

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

var snapshotID int32

// createSnapshot freezes the VM's disks the vSphere way: the snapshot's
// config keeps the current disk files, which are never written again, and
// the VM continues on new child (delta) disks.
func createSnapshot(c *call) (types.AnyType, types.BaseMethodFault) {
	req := c.req.(*types.CreateSnapshot_Task)
	vm, f := getVM(c.this)
	if f != nil {
		return nil, f
	}
	var ref types.ManagedObjectReference
	simulator.Map.WithLock(vm, func() {
		if vm.Config.Template {
			f = &types.NotSupported{}
			return
		}
		var devs []types.BaseVirtualDevice
		if devs, f = withChildDisks(vm.Config.Hardware.Device); f != nil {
			return
		}

		snap := &simulator.VirtualMachineSnapshot{}
		snap.Vm = vm.Self
		snap.Config = deepCopy(*vm.Config) // still pointing at the frozen files
		simulator.Map.Put(snap)
		ref = snap.Self

		item := types.VirtualMachineSnapshotTree{
			Snapshot:        snap.Self,
			Vm:              vm.Self,
			Name:            req.Name,
			Description:     req.Description,
			Id:              atomic.AddInt32(&snapshotID, 1),
			CreateTime:      time.Now(),
			State:           vm.Runtime.PowerState,
			Quiesced:        req.Quiesce,
			ReplaySupported: types.NewBool(false),
		}
		if vm.Snapshot == nil {
			vm.Snapshot = &types.VirtualMachineSnapshotInfo{}
		}
		tree := deepCopy(vm.Snapshot.RootSnapshotList)
		if cur := vm.Snapshot.CurrentSnapshot; cur != nil {
			if p, ok := simulator.Map.Get(*cur).(*simulator.VirtualMachineSnapshot); ok {
				p.ChildSnapshot = append(p.ChildSnapshot, snap.Self)
			}
			if node := findSnapshot(tree, *cur); node != nil {
				node.ChildSnapshotList = append(node.ChildSnapshotList, item)
			}
		} else {
			tree = append(tree, item)
		}

		simulator.Map.Update(vm, []types.PropertyChange{
			{Name: "config.hardware.device", Val: devs},
			{Name: "snapshot.rootSnapshotList", Val: tree},
			{Name: "snapshot.currentSnapshot", Val: snap.Self},
		})
		vm.RefreshStorageInfo(internalCtx(&vm.Self), nil)
	})
	if f != nil {
		return nil, f
	}
	return ref, nil
}

func findSnapshot(tree []types.VirtualMachineSnapshotTree, ref types.ManagedObjectReference) *types.VirtualMachineSnapshotTree {
	for i := range tree {
		if tree[i].Snapshot == ref {
			return &tree[i]
		}
		if n := findSnapshot(tree[i].ChildSnapshotList, ref); n != nil {
			return n
		}
	}
	return nil
}

func revertToSnapshot(c *call) (types.AnyType, types.BaseMethodFault) {
	snap, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: c.this}
	}
	return revert(snap)
}

func revertToCurrentSnapshot(c *call) (types.AnyType, types.BaseMethodFault) {
	vm, f := getVM(c.this)
	if f != nil {
		return nil, f
	}
	if vm.Snapshot == nil || vm.Snapshot.CurrentSnapshot == nil {
		return nil, &types.NotFound{}
	}
	snap, ok := simulator.Map.Get(*vm.Snapshot.CurrentSnapshot).(*simulator.VirtualMachineSnapshot)
	if !ok {
		return nil, &types.NotFound{}
	}
	return revert(snap)
}

// revert puts the VM back on the snapshot's configuration, with fresh child
// disks of the snapshot's (frozen) files; the discarded current deltas are
// deleted unless something else still uses them.
func revert(snap *simulator.VirtualMachineSnapshot) (types.AnyType, types.BaseMethodFault) {
	vm, f := getVM(snap.Vm)
	if f != nil {
		return nil, f
	}
	simulator.Map.WithLock(vm, func() {
		old := diskFiles(vm.Config.Hardware.Device)
		var devs []types.BaseVirtualDevice
		if devs, f = withChildDisks(snap.Config.Hardware.Device); f != nil {
			return
		}
		changes := []types.PropertyChange{
			{Name: "config.hardware.device", Val: devs},
			{Name: "config.hardware.numCPU", Val: snap.Config.Hardware.NumCPU},
			{Name: "config.hardware.memoryMB", Val: snap.Config.Hardware.MemoryMB},
			{Name: "snapshot.currentSnapshot", Val: snap.Self},
		}
		if node := findSnapshot(vm.Snapshot.RootSnapshotList, snap.Self); node != nil &&
			node.State == types.VirtualMachinePowerStatePoweredOff {
			changes = append(changes,
				types.PropertyChange{Name: "runtime.powerState", Val: types.VirtualMachinePowerStatePoweredOff},
				types.PropertyChange{Name: "summary.runtime.powerState", Val: types.VirtualMachinePowerStatePoweredOff})
		}
		simulator.Map.Update(vm, changes)

		refs := referencedDisks(nil)
		for _, name := range old {
			if !refs[name] && isDelta(name) {
				_ = deleteDisk(name)
			}
		}
		vm.RefreshStorageInfo(internalCtx(&vm.Self), nil)
	})
	return nil, f
}

func isDelta(name string) bool {
	base := strings.TrimSuffix(name, ".vmdk")
	i := strings.LastIndex(base, "-")
	return i > 0 && len(base)-i == 7 && strings.Trim(base[i+1:], "0123456789") == ""
}
