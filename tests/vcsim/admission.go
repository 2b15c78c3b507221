package main

// vCenter's admission of concurrent operations, so that a benchmark against
// the simulator shows what a real vCenter allows.
//
// vSphere counts provisioning operations against budgets: each host has 16
// units, each datastore 128; a linked clone costs 1 host unit and 1 datastore
// unit, a full clone or a disk copy more (like a Storage vMotion: 4 host units,
// 16 datastore units). Every task also counts against vCenter's global limit
// of about 640 concurrent operations. A task beyond a budget stays `queued`
// until the units it needs are free; waiting tasks are admitted in arrival
// order per resource (a later task never overtakes an earlier one that waits
// for the same host's or datastore's units), while a task on other resources
// goes ahead.

import (
	"sync"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

type limits struct {
	Host      int `json:"host"`
	Datastore int `json:"datastore"`
	Global    int `json:"global"`
}

// cost is what one operation takes from each budget.
type cost struct {
	Host      int `json:"host"`
	Datastore int `json:"datastore"`
}

// claim names the budgets one task takes units from.
type claim struct {
	host, datastore string
	cost            cost
	ticket          int
}

var defaultLimits = limits{Host: 16, Datastore: 128, Global: 640}

// Costs of provisioning operations; every other task takes only a global unit.
var (
	linkedCloneCost = cost{Host: 1, Datastore: 1}
	fullCopyCost    = cost{Host: 4, Datastore: 16}
	createVMCost    = cost{Host: 1, Datastore: 1}
)

var admission = newAdmitter(defaultLimits)

type admitter struct {
	mu         sync.Mutex
	changed    *sync.Cond
	limits     limits
	hosts      map[string]int
	dstores    map[string]int
	global     int
	waiting    []*claim
	nextTicket int
	peak       map[string]int // "host:<ref>", "datastore:<name>", "global" -> most units in use at once
}

func newAdmitter(l limits) *admitter {
	a := &admitter{limits: l, hosts: map[string]int{}, dstores: map[string]int{}, peak: map[string]int{}}
	a.changed = sync.NewCond(&a.mu)
	return a
}

// admit blocks until the claim fits its budgets and no earlier waiter needs
// one of the same resources; then it takes the units.
func (a *admitter) admit(cl *claim) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextTicket++
	cl.ticket = a.nextTicket
	a.waiting = append(a.waiting, cl)
	for !a.fits(cl) || a.overtakes(cl) {
		a.changed.Wait()
	}
	for i, w := range a.waiting {
		if w == cl {
			a.waiting = append(a.waiting[:i], a.waiting[i+1:]...)
			break
		}
	}
	a.global++
	a.note("global", a.global)
	if cl.host != "" {
		a.hosts[cl.host] += cl.cost.Host
		a.note("host:"+cl.host, a.hosts[cl.host])
	}
	if cl.datastore != "" {
		a.dstores[cl.datastore] += cl.cost.Datastore
		a.note("datastore:"+cl.datastore, a.dstores[cl.datastore])
	}
	a.changed.Broadcast() // a waiter behind us on other resources may go now
}

func (a *admitter) release(cl *claim) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.global--
	if cl.host != "" {
		a.hosts[cl.host] -= cl.cost.Host
	}
	if cl.datastore != "" {
		a.dstores[cl.datastore] -= cl.cost.Datastore
	}
	a.changed.Broadcast()
}

func (a *admitter) fits(cl *claim) bool {
	if a.global+1 > a.limits.Global {
		return false
	}
	if cl.host != "" && a.hosts[cl.host]+cl.cost.Host > atLeast(a.limits.Host, cl.cost.Host) {
		return false
	}
	if cl.datastore != "" && a.dstores[cl.datastore]+cl.cost.Datastore > atLeast(a.limits.Datastore, cl.cost.Datastore) {
		return false
	}
	return true
}

// overtakes: an earlier waiter lacks a budget that cl needs too (it keeps its
// place there), or vCenter's global limit is full.
func (a *admitter) overtakes(cl *claim) bool {
	if a.global+1 > a.limits.Global {
		return true
	}
	for _, w := range a.waiting {
		if w.ticket >= cl.ticket {
			return false
		}
		lacksHost := w.host != "" && a.hosts[w.host]+w.cost.Host > atLeast(a.limits.Host, w.cost.Host)
		lacksDatastore := w.datastore != "" && a.dstores[w.datastore]+w.cost.Datastore > atLeast(a.limits.Datastore, w.cost.Datastore)
		if (lacksHost && w.host == cl.host) || (lacksDatastore && w.datastore == cl.datastore) {
			return true
		}
	}
	return false
}

// atLeast: an operation that costs more than a whole budget still runs, alone.
func atLeast(budget, need int) int {
	if need > budget {
		return need
	}
	return budget
}

func (a *admitter) note(key string, v int) {
	if v > a.peak[key] {
		a.peak[key] = v
	}
}

func (a *admitter) setLimits(l limits) limits {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l.Host > 0 {
		a.limits.Host = l.Host
	}
	if l.Datastore > 0 {
		a.limits.Datastore = l.Datastore
	}
	if l.Global > 0 {
		a.limits.Global = l.Global
	}
	a.changed.Broadcast()
	return a.limits
}

// state: the budgets, the units in use, the queue length and the peaks since the last reset.
func (a *admitter) state() map[string]interface{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	inUse := map[string]int{"global": a.global}
	for k, v := range a.hosts {
		if v != 0 {
			inUse["host:"+k] = v
		}
	}
	for k, v := range a.dstores {
		if v != 0 {
			inUse["datastore:"+k] = v
		}
	}
	peak := map[string]int{}
	for k, v := range a.peak {
		peak[k] = v
	}
	return map[string]interface{}{"limits": a.limits, "in_use": inUse, "queued": len(a.waiting), "peak": peak}
}

func (a *admitter) resetPeaks() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.peak = map[string]int{}
}

// claimFor says what a task of this call takes: provisioning operations name
// their host and datastore, everything else only a global unit.
func claimFor(c *call) *claim {
	switch req := c.req.(type) {
	case *types.CloneVM_Task:
		cl := &claim{cost: fullCopyCost}
		if req.Spec.Location.DiskMoveType == string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking) {
			cl.cost = linkedCloneCost
		}
		if h := req.Spec.Location.Host; h != nil {
			cl.host = h.Value
		} else if vm, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() {
				if vm.Runtime.Host != nil {
					cl.host = vm.Runtime.Host.Value
				}
			})
		}
		if d := req.Spec.Location.Datastore; d != nil {
			if ds, ok := simulator.Map.Get(*d).(*simulator.Datastore); ok {
				cl.datastore = ds.Name
			}
		} else if vm, ok := simulator.Map.Get(c.this).(*simulator.VirtualMachine); ok {
			simulator.Map.WithLock(vm, func() {
				if vm.Config != nil {
					cl.datastore = dsName(vm.Config.Files.VmPathName)
				}
			})
		}
		return cl
	case *types.CopyVirtualDisk_Task:
		return &claim{cost: fullCopyCost, datastore: dsName(req.DestName)}
	case *types.CreateVM_Task:
		cl := &claim{cost: createVMCost, datastore: dsName(req.Config.Files.VmPathName)}
		if req.Host != nil {
			cl.host = req.Host.Value
		}
		return cl
	}
	return &claim{}
}
