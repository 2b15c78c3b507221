package main

// The fixed inventory. Names here are part of the test contract and are
// documented in README.md; change both together.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	dcName    = "DC0"
	srcVMName = "src-vm"
)

// clusterSpec says which hosts a cluster has and which datastores they mount.
// Cluster 1 reaches ds1 and ds2, cluster 2 reaches ds2 only, so placement
// code has to honour host/datastore reachability.
var clusters = []struct {
	name       string
	hosts      []string
	datastores []string
}{
	{"cluster1", []string{"esx-1-1", "esx-1-2"}, []string{"ds1", "ds2"}},
	{"cluster2", []string{"esx-2-1", "esx-2-2"}, []string{"ds2"}},
}

// portGroups are standard-switch port groups present on every host.
// "VM Network" exists by default in vcsim; the others are added.
var portGroups = []string{"VM Network", "pg-web", "pg-db", "pg-mgmt"}

// Initial bytes of src-vm's disks, so that a clone of an untouched src-vm
// still has recognisable, non-empty content.
var srcDiskContent = map[string]string{
	"[ds1] src-vm/src-vm.vmdk":   "snapdeploy-vcsim src-vm root disk v0\n",
	"[ds1] src-vm/src-vm_1.vmdk": "snapdeploy-vcsim src-vm data disk v0\n",
}

// buildInventory talks to the simulator in-process (Service implements
// soap.RoundTripper), using the same govmomi client API a real user would.
func buildInventory(ctx context.Context, svc *simulator.Service, root string) error {
	inventoryService = svc
	c, err := vim25.NewClient(ctx, svc)
	if err != nil {
		return err
	}
	finder := find.NewFinder(c, false)
	dc, err := finder.Datacenter(ctx, dcName)
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}

	dsDirs := map[string]string{}
	for _, ds := range []string{"ds1", "ds2"} {
		dir := filepath.Join(root, ds)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		dsDirs[ds] = dir
	}

	var allHosts []*object.HostSystem
	var firstPool *object.ResourcePool
	var firstHost *object.HostSystem
	for _, cs := range clusters {
		cluster, err := folders.HostFolder.CreateCluster(ctx, cs.name, types.ClusterConfigSpecEx{})
		if err != nil {
			return err
		}
		for _, hn := range cs.hosts {
			task, err := cluster.AddHost(ctx, types.HostConnectSpec{HostName: hn}, true, nil, nil)
			if err != nil {
				return err
			}
			info, err := task.WaitForResult(ctx, nil)
			if err != nil {
				return fmt.Errorf("add host %s: %w", hn, err)
			}
			host := object.NewHostSystem(c, info.Result.(types.ManagedObjectReference))
			allHosts = append(allHosts, host)
			for _, ds := range cs.datastores {
				dss, err := host.ConfigManager().DatastoreSystem(ctx)
				if err != nil {
					return err
				}
				if _, err := dss.CreateLocalDatastore(ctx, ds, dsDirs[ds]); err != nil {
					return fmt.Errorf("mount %s on %s: %w", ds, hn, err)
				}
			}
			if firstHost == nil {
				firstHost = host
			}
		}
		if firstPool == nil {
			if firstPool, err = cluster.ResourcePool(ctx); err != nil {
				return err
			}
		}
	}

	fixDatastoreMounts()
	if err := addPortGroups(ctx, allHosts); err != nil {
		return err
	}
	return createSourceVM(ctx, folders, firstPool, firstHost)
}

// fixDatastoreMounts repairs what vcsim 0.24 gets wrong when the same local
// datastore is mounted on several hosts: each CreateLocalDatastore call
// replaces the Datastore object (so datastore.host lists only the last host)
// and appends a duplicate child to the datastore folder. We rebuild
// datastore.host from host.datastore so both directions agree.
func fixDatastoreMounts() {
	mounts := map[types.ManagedObjectReference][]types.DatastoreHostMount{}
	for _, e := range simulator.Map.All("HostSystem") {
		h := e.(*simulator.HostSystem)
		for _, ref := range h.Datastore {
			mounts[ref] = append(mounts[ref], types.DatastoreHostMount{
				Key: h.Self,
				MountInfo: types.HostMountInfo{
					Path:       simulator.Map.Get(ref).(*simulator.Datastore).Info.GetDatastoreInfo().Url,
					AccessMode: string(types.HostMountModeReadWrite),
					Mounted:    types.NewBool(true),
					Accessible: types.NewBool(true),
				},
			})
		}
	}
	for ref, m := range mounts {
		ds := simulator.Map.Get(ref).(*simulator.Datastore)
		ds.Host = m
	}
	for _, e := range simulator.Map.All("Folder") {
		f := e.(*simulator.Folder)
		seen := map[types.ManagedObjectReference]bool{}
		var kids []types.ManagedObjectReference
		for _, k := range f.ChildEntity {
			if !seen[k] {
				seen[k] = true
				kids = append(kids, k)
			}
		}
		f.ChildEntity = kids
	}
}

// addPortGroups makes every port group exist on every host's vSwitch0 and
// links the Network objects with hosts and clusters both ways.
func addPortGroups(ctx context.Context, hosts []*object.HostSystem) error {
	// AddPortGroup on the first host creates the Network inventory objects;
	// vcsim refuses a second one with the same name, so the other hosts are
	// given the port group by editing their network info directly.
	ns, err := hosts[0].ConfigManager().NetworkSystem(ctx)
	if err != nil {
		return err
	}
	for _, pg := range portGroups[1:] {
		if err := ns.AddPortGroup(ctx, types.HostPortGroupSpec{Name: pg, VswitchName: "vSwitch0", Policy: types.HostNetworkPolicy{}}); err != nil {
			return fmt.Errorf("add port group %s: %w", pg, err)
		}
	}

	dcObj := simulator.Map.Any("Datacenter").(*simulator.Datacenter)
	netFolder := simulator.Map.Get(dcObj.NetworkFolder).(*simulator.Folder)
	var nets []*mo.Network
	for _, pg := range portGroups {
		n, ok := simulator.Map.FindByName(pg, netFolder.ChildEntity).(*mo.Network)
		if !ok {
			return fmt.Errorf("network %q not found", pg)
		}
		nets = append(nets, n)
	}

	for _, h := range hosts {
		hs := simulator.Map.Get(h.Reference()).(*simulator.HostSystem)
		hns := simulator.Map.Get(*hs.ConfigManager.NetworkSystem).(*simulator.HostNetworkSystem)
		have := map[string]bool{}
		for _, p := range hns.NetworkInfo.Portgroup {
			have[p.Spec.Name] = true
		}
		for _, pg := range portGroups {
			if have[pg] {
				continue
			}
			spec := types.HostPortGroupSpec{Name: pg, VswitchName: "vSwitch0"}
			hns.NetworkInfo.Portgroup = append(hns.NetworkInfo.Portgroup, types.HostPortGroup{
				Key:  "key-vim.host.PortGroup-" + pg,
				Spec: spec,
			})
			if len(hns.NetworkInfo.Vswitch) > 0 {
				hns.NetworkInfo.Vswitch[0].Portgroup = append(hns.NetworkInfo.Vswitch[0].Portgroup, "key-vim.host.PortGroup-"+pg)
			}
		}
		if hs.Config != nil && hs.Config.Network != nil {
			hs.Config.Network.Portgroup = hns.NetworkInfo.Portgroup
		}

		var refs []types.ManagedObjectReference
		for _, n := range nets {
			refs = append(refs, n.Self)
			if simulator.FindReference(n.Host, hs.Self) == nil {
				n.Host = append(n.Host, hs.Self)
			}
		}
		hs.Network = refs
		if cr, ok := simulator.Map.Get(*hs.Parent).(*simulator.ClusterComputeResource); ok {
			cr.Network = refs
		}
	}
	return nil
}

// createSourceVM creates the powered-off "src-vm" on ds1 in cluster1 with a
// root disk (SCSI unit 0, 1 GiB nominal), a data disk (unit 1, 2 GiB
// nominal) and one vmxnet3 NIC on "VM Network".
func createSourceVM(ctx context.Context, folders *object.DatacenterFolders, pool *object.ResourcePool, host *object.HostSystem) error {
	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("lsilogic")
	if err != nil {
		return err
	}
	// Fixed, vSphere-like device keys: SCSI controller 1000, disks 2000+, NIC 4000.
	scsi.GetVirtualDevice().Key = 1000
	devices = append(devices, scsi)
	ctrl := scsi.(types.BaseVirtualController)

	root := devices.CreateDisk(ctrl, types.ManagedObjectReference{}, "[ds1] src-vm/src-vm.vmdk")
	root.CapacityInKB = 1024 * 1024
	root.UnitNumber = types.NewInt32(0)
	devices = append(devices, root)
	data := devices.CreateDisk(ctrl, types.ManagedObjectReference{}, "[ds1] src-vm/src-vm_1.vmdk")
	data.CapacityInKB = 2 * 1024 * 1024
	data.UnitNumber = types.NewInt32(1)
	devices = append(devices, data)
	for i, d := range []*types.VirtualDisk{root, data} {
		d.Key = int32(2000 + i)
		d.ControllerKey = 1000
		d.Backing.(*types.VirtualDiskFlatVer2BackingInfo).Datastore = nil
	}

	nic := &types.VirtualVmxnet3{VirtualVmxnet: types.VirtualVmxnet{VirtualEthernetCard: types.VirtualEthernetCard{
		VirtualDevice: types.VirtualDevice{
			Key: 4000,
			Backing: &types.VirtualEthernetCardNetworkBackingInfo{
				VirtualDeviceDeviceBackingInfo: types.VirtualDeviceDeviceBackingInfo{DeviceName: "VM Network"},
			},
		},
		AddressType: string(types.VirtualEthernetCardMacTypeGenerated),
	}}}
	devices = append(devices, nic)

	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return err
	}
	spec := types.VirtualMachineConfigSpec{
		Name:              srcVMName,
		GuestId:           string(types.VirtualMachineGuestOsIdentifierOtherGuest64),
		NumCPUs:           2,
		NumCoresPerSocket: 1,
		MemoryMB:          2048,
		Files:             &types.VirtualMachineFileInfo{VmPathName: "[ds1] src-vm/src-vm.vmx"},
		DeviceChange:      changes,
	}
	if err := os.MkdirAll(filepath.Join(datastoreURL("ds1"), srcVMName), 0o700); err != nil {
		return err
	}
	task, err := folders.VmFolder.CreateVM(ctx, spec, pool, host)
	if err != nil {
		return err
	}
	if _, err := task.WaitForResult(ctx, nil); err != nil {
		return fmt.Errorf("create %s: %w", srcVMName, err)
	}
	for name, content := range srcDiskContent {
		p, f := localPath(name)
		if f != nil {
			return fmt.Errorf("%s: %T", name, f)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			return err
		}
	}
	return nil
}
