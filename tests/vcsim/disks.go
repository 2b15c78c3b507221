package main

// Disk model.
//
// A virtual disk is the file named by its backing.fileName ("[ds1] a/a.vmdk");
// its CONTENT is simply that file's bytes (capacityInKB is only nominal). Like
// stock vcsim, every disk file "x.vmdk" has an (empty) companion "x-flat.vmdk":
// stock code (VirtualDiskManager, device attach) expects both to exist.
//
// Child (delta) disks - the VM's new current disk after a snapshot, or a
// linked clone's disk - are real, initially empty files whose
// backing.parent points at the parent disk. Until a child is written it has
// no data of its own and reads through to its parent (recursively); once it
// is written (PUT via /folder) it holds its own full content. That is
// "whole-file copy-on-write": enough for tests that compare digests. The
// chains registry below records which children have not been written yet.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// chains maps an unwritten child disk (normalised datastore path) to its parent.
var chains = struct {
	sync.Mutex
	parent map[string]string
}{parent: map[string]string{}}

func setChild(child, parent string) {
	chains.Lock()
	chains.parent[normDS(child)] = normDS(parent)
	chains.Unlock()
}

// ownData records that a child now holds its own content.
func ownData(name string) {
	chains.Lock()
	delete(chains.parent, normDS(name))
	chains.Unlock()
}

// forgetUnder drops registry entries for a deleted file or directory.
func forgetUnder(name string) {
	n := normDS(name)
	chains.Lock()
	for k := range chains.parent {
		if k == n || strings.HasPrefix(k, strings.TrimSuffix(n, "/")+"/") {
			delete(chains.parent, k)
		}
	}
	chains.Unlock()
}

// effective returns the datastore path whose bytes a read of name returns.
func effective(name string) string {
	n := normDS(name)
	chains.Lock()
	defer chains.Unlock()
	for i := 0; i < 100; i++ { // bounded: a cycle would be a bug, not a hang
		p, ok := chains.parent[n]
		if !ok {
			return n
		}
		n = p
	}
	return n
}

func hasOwnData(name string) bool {
	chains.Lock()
	defer chains.Unlock()
	_, child := chains.parent[normDS(name)]
	return !child
}

// normDS canonicalises "[ds]  a//b.vmdk" to "[ds] a/b.vmdk".
func normDS(name string) string {
	var p object.DatastorePath
	if !p.FromString(name) {
		return name
	}
	if p.Path == "" {
		return fmt.Sprintf("[%s]", p.Datastore)
	}
	return fmt.Sprintf("[%s] %s", p.Datastore, path.Clean(p.Path))
}

func dsName(name string) string {
	var p object.DatastorePath
	p.FromString(name)
	return p.Datastore
}

// findDatastore returns the (single datacenter's) datastore with that name.
func findDatastore(name string) *simulator.Datastore {
	for _, e := range simulator.Map.All("Datastore") {
		if ds := e.(*simulator.Datastore); ds.Name == name {
			return ds
		}
	}
	return nil
}

func datastoreURL(name string) string {
	if ds := findDatastore(name); ds != nil {
		return ds.Info.GetDatastoreInfo().Url
	}
	return ""
}

// localPath maps a datastore path to the backing file on the local disk.
func localPath(name string) (string, types.BaseMethodFault) {
	var p object.DatastorePath
	if !p.FromString(name) {
		return "", &types.InvalidDatastorePath{DatastorePath: name}
	}
	ds := findDatastore(p.Datastore)
	if ds == nil {
		return "", &types.InvalidDatastore{Name: p.Datastore}
	}
	return filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(p.Path)), nil
}

// flatName is the stock vcsim extent companion of a disk descriptor name.
func flatName(name string) string {
	return strings.Replace(name, ".vmdk", "-flat.vmdk", 1)
}

func fileNotFound(name string) types.BaseMethodFault {
	return &types.FileNotFound{FileFault: types.FileFault{File: name}}
}

// writeDisk creates name (and its -flat companion) with the given content.
func writeDisk(name string, content io.Reader) types.BaseMethodFault {
	p, f := localPath(name)
	if f != nil {
		return f
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return &types.CannotCreateFile{FileFault: types.FileFault{File: name}}
	}
	out, err := os.Create(p)
	if err != nil {
		return &types.CannotCreateFile{FileFault: types.FileFault{File: name}}
	}
	defer out.Close()
	if content != nil {
		if _, err := io.Copy(out, content); err != nil {
			return &types.CannotCreateFile{FileFault: types.FileFault{File: name}}
		}
	}
	ownData(name)
	return ensureFlat(name)
}

// ensureFlat creates the empty -flat companion of an existing disk file so
// stock vcsim will attach it (it checks that the companion exists).
func ensureFlat(name string) types.BaseMethodFault {
	if !strings.HasSuffix(name, ".vmdk") {
		return nil
	}
	p, f := localPath(name)
	if f != nil {
		return f
	}
	if _, err := os.Stat(p); err != nil {
		return nil // stock code reports the missing disk itself
	}
	fp, _ := localPath(flatName(name))
	if _, err := os.Stat(fp); os.IsNotExist(err) {
		if fh, err := os.Create(fp); err == nil {
			fh.Close()
		}
	}
	return nil
}

// copyDisk writes the effective (read-through) bytes of src into a new disk dst.
func copyDisk(src, dst string) types.BaseMethodFault {
	sp, f := localPath(effective(src))
	if f != nil {
		return f
	}
	in, err := os.Open(sp)
	if err != nil {
		return fileNotFound(src)
	}
	defer in.Close()
	return writeDisk(dst, in)
}

// createChild creates an empty child disk of parent that reads through to it.
func createChild(child, parent string) types.BaseMethodFault {
	if f := writeDisk(child, nil); f != nil {
		return f
	}
	setChild(child, parent)
	return nil
}

// deleteDisk removes a disk and its companion; a missing companion is fine.
func deleteDisk(name string) types.BaseMethodFault {
	p, f := localPath(name)
	if f != nil {
		return f
	}
	if _, err := os.Stat(p); err != nil {
		return fileNotFound(name)
	}
	if err := os.Remove(p); err != nil {
		return &types.CannotDeleteFile{FileFault: types.FileFault{File: name}}
	}
	if fp, f := localPath(flatName(name)); f == nil {
		_ = os.Remove(fp)
	}
	forgetUnder(name)
	return nil
}

// nextDeltaName picks "<base>-00000N.vmdk" next to name, as ESXi names
// snapshot deltas (an existing "-00000N" suffix is replaced, not stacked).
func nextDeltaName(name string) string {
	n := normDS(name)
	base := strings.TrimSuffix(n, ".vmdk")
	if isDelta(n) {
		base = base[:len(base)-7] // drop "-00000N"
	}
	for i := 1; ; i++ {
		cand := fmt.Sprintf("%s-%06d.vmdk", base, i)
		p, f := localPath(cand)
		if f != nil {
			return cand
		}
		if _, err := os.Stat(p); os.IsNotExist(err) {
			return cand
		}
	}
}

// referencedDisks returns every disk file (and its whole parent chain) used
// by any VM's current config or any of its snapshots, skipping VM `skip`.
func referencedDisks(skip *types.ManagedObjectReference) map[string]bool {
	refs := map[string]bool{}
	addChain := func(devs []types.BaseVirtualDevice) {
		for _, d := range devs {
			disk, ok := d.(*types.VirtualDisk)
			if !ok {
				continue
			}
			b, _ := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
			for ; b != nil; b = b.Parent {
				refs[normDS(b.FileName)] = true
				// an unwritten child also depends on its registered parent
				for n := normDS(b.FileName); ; {
					p := effective(n)
					if p == n {
						break
					}
					refs[p] = true
					n = p
				}
			}
		}
	}
	for _, e := range simulator.Map.All("VirtualMachine") {
		vm := e.(*simulator.VirtualMachine)
		if skip != nil && vm.Self == *skip {
			continue
		}
		if vm.Config != nil {
			addChain(vm.Config.Hardware.Device)
		}
		for _, s := range vmSnapshots(vm) {
			addChain(s.Config.Hardware.Device)
		}
	}
	return refs
}

// vmSnapshots lists the snapshot objects of a VM (walking its snapshot tree).
func vmSnapshots(vm *simulator.VirtualMachine) []*simulator.VirtualMachineSnapshot {
	var out []*simulator.VirtualMachineSnapshot
	var walk func([]types.VirtualMachineSnapshotTree)
	walk = func(tree []types.VirtualMachineSnapshotTree) {
		for _, t := range tree {
			if s, ok := simulator.Map.Get(t.Snapshot).(*simulator.VirtualMachineSnapshot); ok {
				out = append(out, s)
			}
			walk(t.ChildSnapshotList)
		}
	}
	if vm.Snapshot != nil {
		walk(vm.Snapshot.RootSnapshotList)
	}
	return out
}

// folderHandler wraps the stock /folder/<path>?dsName=..&dcPath=.. handler:
// reads of an unwritten child disk are served from its parent, and a write
// makes a child own its content.
func folderHandler(stock http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ds := r.URL.Query().Get("dsName")
		rel := strings.TrimPrefix(r.URL.Path, "/folder/")
		if ds == "" || findDatastore(ds) == nil {
			stock.ServeHTTP(w, r)
			return
		}
		name := normDS(fmt.Sprintf("[%s] %s", ds, rel))

		switch r.Method {
		case http.MethodGet, http.MethodHead:
			src := effective(name)
			if src == name {
				stock.ServeHTTP(w, r)
				return
			}
			p, f := localPath(src)
			if f != nil {
				http.NotFound(w, r)
				return
			}
			fh, err := os.Open(p)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			defer fh.Close()
			st, _ := fh.Stat()
			http.ServeContent(w, r, path.Base(rel), st.ModTime(), fh)
		case http.MethodPut, http.MethodPost:
			stock.ServeHTTP(w, r)
			ownData(name)
			_ = ensureFlat(name)
		default:
			stock.ServeHTTP(w, r)
		}
	})
}

// deepCopy returns a copy of x that shares no pointers, slices or maps with
// it. Snapshots must not alias the VM's live config (stock vcsim copies the
// struct shallowly, so later device edits would leak into the snapshot).
func deepCopy[T any](x T) T {
	return copyValue(reflect.ValueOf(&x).Elem()).Interface().(T)
}

func copyValue(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Ptr:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Elem().Type())
		n.Elem().Set(copyValue(v.Elem()))
		return n
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		n := reflect.New(v.Type()).Elem()
		n.Set(copyValue(v.Elem()))
		return n
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			n.Index(i).Set(copyValue(v.Index(i)))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		n := reflect.MakeMapWithSize(v.Type(), v.Len())
		for _, k := range v.MapKeys() {
			n.SetMapIndex(k, copyValue(v.MapIndex(k)))
		}
		return n
	case reflect.Struct:
		n := reflect.New(v.Type()).Elem()
		n.Set(v) // copies unexported fields (e.g. time.Time) by value
		for i := 0; i < v.NumField(); i++ {
			if n.Field(i).CanSet() {
				n.Field(i).Set(copyValue(v.Field(i)))
			}
		}
		return n
	default:
		return v
	}
}
