package main

// The router sits in front of the stock simulator's HTTP mux.
//
// For /sdk it decodes the SOAP request once to learn the method name and
// target object, then either
//   - injects a configured fault and/or latency (control.go),
//   - runs one of our overrides (vm.go) as an asynchronous task, or
//   - runs a small pre-check/post-fixup around the stock implementation,
//   - or just forwards the untouched request to the stock handler.
//
// Why not wrap the managed objects with simulator.Map.Put, as
// simulator/example_extend_test.go does? Because stock code does
// Map.Get(ref).(*simulator.VirtualMachine) in many places (snapshots, pools,
// datacenter), which would panic on a wrapper type. Intercepting at the SOAP
// layer keeps every stored object the stock type.
//
// Why asynchronous tasks? Stock 0.24 runs a task to completion inside the
// SOAP call while holding the target object's lock, so twenty clones of the
// same template with injected latency would run one after another. Our task
// goroutines sleep without holding any lock and return the task reference
// immediately, as vCenter does.

import (
	"bytes"
	"context"
	"fmt"
	"io/ioutil"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vim25/xml"
)

// call is one decoded SOAP request.
type call struct {
	name string
	this types.ManagedObjectReference
	req  interface{} // *types.<Method>, e.g. *types.CloneVM_Task
	// opID is the request's SOAP header operationID; like vCenter, a task the
	// call starts carries it as info.activationId, so a client can find it again.
	opID string
}

// override describes how we treat one "<Type>.<Method>".
type override struct {
	// task runs the whole method inside an asynchronous task.
	task func(c *call) (types.AnyType, types.BaseMethodFault)
	// pre runs before the stock method; a fault fails the call (as a failed task for *_Task methods).
	pre func(c *call) types.BaseMethodFault
	// post runs after the stock method has answered.
	post func(c *call)
	// reply answers a non-task method in place of the stock one.
	reply func(c *call) (interface{}, types.BaseMethodFault)
}

var overrides = map[string]override{
	"VirtualMachine.CreateSnapshot_Task":           {task: createSnapshot},
	"VirtualMachineSnapshot.RevertToSnapshot_Task": {task: revertToSnapshot},
	"VirtualMachine.RevertToCurrentSnapshot_Task":  {task: revertToCurrentSnapshot},
	"VirtualMachine.CloneVM_Task":                  {task: cloneVM},
	"VirtualMachine.Destroy_Task":                  {task: destroyVM},
	"VirtualDiskManager.CopyVirtualDisk_Task":      {task: copyVirtualDisk},
	"VirtualDiskManager.CreateVirtualDisk_Task":    {task: createVirtualDisk},
	"VirtualDiskManager.DeleteVirtualDisk_Task":    {task: deleteVirtualDisk},
	"Folder.CreateVM_Task":                         {pre: preCreateVM},
	"VirtualMachine.ReconfigVM_Task":               {pre: preReconfigVM, post: postReconfigVM},
	"FileManager.DeleteDatastoreFile_Task":         {post: postDeleteDatastoreFile},
	"VirtualMachine.MarkAsTemplate":                {post: postMarkAsTemplate},
	"VirtualMachine.MarkAsVirtualMachine":          {post: postMarkAsVirtualMachine},
	"SearchIndex.FindChild":                        {reply: findChild},
	// RemoveSnapshot_Task / RemoveAllSnapshots_Task stay stock: they drop the
	// snapshot objects but keep the disk files, which remain chain parents.
}

// Methods stock vcsim accepts without a session; everything else needs one.
var noSession = map[string]bool{
	"RetrieveServiceContent": true, "Login": true, "LoginByToken": true,
	"LoginExtensionByCertificate": true, "RetrieveProperties": true,
	"RetrievePropertiesEx": true, "CloneSession": true, "Fetch": true, "List": true,
	"PbmRetrieveServiceContent": true,
}

// opMu serialises the state-changing part of our overrides (after any
// injected latency) so they see each other's inventory/file changes whole.
var opMu sync.Mutex

type router struct {
	svc   *simulator.Service
	stock http.Handler
	mux   *http.ServeMux
}

func newRouter(svc *simulator.Service, stock http.Handler) http.Handler {
	rt := &router{svc: svc, stock: stock, mux: http.NewServeMux()}
	rt.mux.HandleFunc(vim25.Path, rt.serveSDK)
	rt.mux.Handle("/folder/", folderHandler(stock))
	rt.mux.Handle("/_control/", controlHandler())
	rt.mux.Handle("/", stock)
	return rt.mux
}

func (rt *router) serveSDK(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		rt.stock.ServeHTTP(w, r)
		return
	}
	body, err := ioutil.ReadAll(r.Body)
	_ = r.Body.Close()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.Body = ioutil.NopCloser(bytes.NewReader(body))

	m, err := simulator.UnmarshalBody(typeFunc, body)
	if err != nil || (!noSession[m.Name] && !sessionValid(r)) {
		rt.stock.ServeHTTP(w, r) // stock reports the decode error / NotAuthenticated
		return
	}
	c := &call{name: m.Name, this: m.This, req: m.Body, opID: m.Header.ID}
	isTask := strings.HasSuffix(c.name, "_Task")
	countRequest(c.name)

	fault, latency := takeInjection(c)
	if fault != nil {
		if isTask {
			writeTaskResponse(w, c.name, startTask(c, latency, fault, nil))
			return
		}
		time.Sleep(latency)
		writeFault(w, fault)
		return
	}

	ov, ok := overrides[c.this.Type+"."+c.name]
	if ok && ov.task != nil {
		if simulator.Map.Get(c.this) == nil {
			writeFault(w, &injected{fault: &types.ManagedObjectNotFound{Obj: c.this}, message: "managed object not found: " + c.this.String()})
			return
		}
		writeTaskResponse(w, c.name, startTask(c, latency, nil, ov.task))
		return
	}

	if ok && ov.reply != nil {
		time.Sleep(latency)
		res, f := ov.reply(c)
		if f != nil {
			writeFault(w, &injected{fault: f, message: faultName(f)})
			return
		}
		if res != nil {
			writeEnvelope(w, http.StatusOK, soapBody{Name: c.name + "Response", Res: res})
			return
		}
	}

	// A stock task that takes time runs as our own asynchronous task, so that
	// it is admitted, queued and timed like vCenter's and the call returns at once.
	if isTask && latency > 0 {
		replay := replayable(r, body)
		writeTaskResponse(w, c.name, startTask(c, latency, nil, func(c *call) (types.AnyType, types.BaseMethodFault) {
			return rt.stockTask(replay, c, ov)
		}))
		return
	}

	// Stock methods: the delay happens here, outside every lock.
	time.Sleep(latency)
	if ok && ov.pre != nil {
		opMu.Lock()
		f := ov.pre(c)
		opMu.Unlock()
		if f != nil {
			inj := &injected{fault: f, message: faultName(f)}
			if isTask {
				writeTaskResponse(w, c.name, startTask(c, 0, inj, nil))
			} else {
				writeFault(w, inj)
			}
			return
		}
	}
	rt.callStock(w, r, c.name)
	if ok && ov.post != nil {
		opMu.Lock()
		ov.post(c)
		opMu.Unlock()
	}
}

// callStock runs the stock SOAP handler, turning a panic (a stock bug) into
// a proper answer instead of a dropped connection. The one we know of:
// Fetch of an unset property (e.g. vm.snapshot of a VM without snapshots,
// which pyvmomi's attribute access does) indexes an empty slice; vCenter
// answers with no returnval, i.e. None.
func (rt *router) callStock(w http.ResponseWriter, r *http.Request, method string) {
	rec := httptest.NewRecorder()
	panicked := func() (p interface{}) {
		defer func() { p = recover() }()
		rt.stock.ServeHTTP(rec, r)
		return nil
	}()
	if panicked != nil {
		if method == "Fetch" {
			writeEnvelope(w, http.StatusOK, soapBody{Name: "FetchResponse", Res: &struct{}{}})
			return
		}
		errLog.Printf("stock %s panicked: %v", method, panicked)
		writeFault(w, &injected{fault: &types.SystemError{Reason: fmt.Sprint(panicked)}, message: "simulator error in " + method})
		return
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

var vimTypes = types.TypeFunc()

// typeFunc resolves request type names, tolerating a namespace prefix like stock does.
func typeFunc(name string) (reflect.Type, bool) {
	if t, ok := vimTypes(name); ok {
		return t, ok
	}
	if i := strings.IndexByte(name, ':'); i >= 0 {
		return vimTypes(name[i+1:])
	}
	return nil, false
}

// startTask creates a Task for the call and completes it in a goroutine:
// queued -> running -> (latency) -> success/error. Either inj (an injected or
// pre-check fault) or run decides the outcome.
func startTask(c *call, latency time.Duration, inj *injected, run func(*call) (types.AnyType, types.BaseMethodFault)) types.ManagedObjectReference {
	// CreateTask turns "CloneVMTask" into name "CloneVM_Task", id "CloneVM".
	t := simulator.CreateTask(c.this, strings.TrimSuffix(c.name, "_Task")+"Task", nil)
	if c.opID != "" {
		simulator.Map.WithLock(t, func() { t.Info.ActivationId = c.opID })
	}
	if inj != nil {
		if tip, ok := inj.fault.(*types.TaskInProgress); ok {
			tip.Task = t.Self
		}
	}
	go func() {
		// Queued until vCenter's admission lets it run (admission.go).
		cl := claimFor(c)
		admission.admit(cl)
		admitted := true
		release := func() {
			if admitted {
				admitted = false
				admission.release(cl)
			}
		}
		defer release()
		// The PropertyCollector reads an object under its lock, so update under it too.
		simulator.Map.WithLock(t, func() {
			simulator.Map.Update(t, []types.PropertyChange{
				{Name: "info.startTime", Val: time.Now()},
				{Name: "info.state", Val: types.TaskInfoStateRunning},
			})
		})
		time.Sleep(latency)

		var res types.AnyType
		var fault types.BaseMethodFault
		msg := ""
		if inj != nil {
			fault, msg = inj.fault, inj.message
		} else {
			res, fault = safeRun(c, run)
			if fault != nil {
				msg = faultName(fault)
			}
		}
		if fault == nil {
			// a clone that powers its VM on: the power-on's time, outside the provisioning budgets
			release()
			time.Sleep(powerOnTime(c))
		}

		changes := []types.PropertyChange{
			{Name: "info.completeTime", Val: time.Now()},
			{Name: "info.state", Val: types.TaskInfoStateSuccess},
			{Name: "info.progress", Val: int32(100)},
		}
		if fault != nil {
			changes[1].Val = types.TaskInfoStateError
			changes = append(changes, types.PropertyChange{Name: "info.error", Val: types.LocalizedMethodFault{Fault: fault, LocalizedMessage: msg}})
		} else if res != nil {
			changes = append(changes, types.PropertyChange{Name: "info.result", Val: res})
		}
		simulator.Map.WithLock(t, func() { simulator.Map.Update(t, changes) })
	}()
	return t.Self
}

// safeRun turns a panic in an override into a SystemError task failure
// instead of killing the simulator.
func safeRun(c *call, run func(*call) (types.AnyType, types.BaseMethodFault)) (res types.AnyType, fault types.BaseMethodFault) {
	defer func() {
		if p := recover(); p != nil {
			errLog.Printf("panic in %s: %v", c.name, p)
			res, fault = nil, &types.SystemError{Reason: fmt.Sprint(p)}
		}
	}()
	opMu.Lock()
	defer opMu.Unlock()
	return run(c)
}

func faultName(f types.BaseMethodFault) string {
	return reflect.TypeOf(f).Elem().Name()
}

// --- SOAP encoding (mirrors simulator.Service.ServeSDK) ---

type soapEnvelope struct {
	XMLName xml.Name    `xml:"soapenv:Envelope"`
	Enc     string      `xml:"xmlns:soapenc,attr"`
	Env     string      `xml:"xmlns:soapenv,attr"`
	XSD     string      `xml:"xmlns:xsd,attr"`
	XSI     string      `xml:"xmlns:xsi,attr"`
	Body    interface{} `xml:"soapenv:Body"`
}

// soapBody encodes Res as <{urn:vim25}Name>...</Name>.
type soapBody struct {
	Name string
	Res  interface{}
}

func (b soapBody) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	name := xml.Name{Space: "urn:" + vim25.Namespace, Local: b.Name}
	if err := e.EncodeElement(b.Res, xml.StartElement{Name: name}); err != nil {
		return err
	}
	return e.EncodeToken(start.End())
}

type soapFault struct {
	XMLName xml.Name `xml:"soapenv:Fault"`
	Code    string   `xml:"faultcode"`
	String  string   `xml:"faultstring"`
	Detail  struct {
		Fault faultDetail
	} `xml:"detail"`
}

type faultDetail struct{ Fault types.AnyType }

// MarshalXML names the detail element "<Type>Fault" with xsi:type, as vCenter does.
func (d faultDetail) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	kind := reflect.TypeOf(d.Fault).Elem().Name()
	start.Name = xml.Name{Local: kind + "Fault"}
	start.Attr = append(start.Attr,
		xml.Attr{Name: xml.Name{Local: "xmlns"}, Value: "urn:" + vim25.Namespace},
		xml.Attr{Name: xml.Name{Local: "xsi:type"}, Value: kind})
	return e.EncodeElement(d.Fault, start)
}

func writeEnvelope(w http.ResponseWriter, status int, body interface{}) {
	var out bytes.Buffer
	out.WriteString(xml.Header)
	enc := xml.NewEncoder(&out)
	err := enc.Encode(&soapEnvelope{
		Enc:  "http://schemas.xmlsoap.org/soap/encoding/",
		Env:  "http://schemas.xmlsoap.org/soap/envelope/",
		XSD:  "http://www.w3.org/2001/XMLSchema",
		XSI:  "http://www.w3.org/2001/XMLSchema-instance",
		Body: body,
	})
	if err == nil {
		err = enc.Flush()
	}
	if err != nil {
		errLog.Printf("encoding response: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(out.Bytes())
}

// writeTaskResponse answers "<Method>Response" with returnval = the task.
func writeTaskResponse(w http.ResponseWriter, method string, task types.ManagedObjectReference) {
	res := &struct {
		Returnval types.ManagedObjectReference `xml:"returnval"`
	}{task}
	writeEnvelope(w, http.StatusOK, soapBody{Name: method + "Response", Res: res})
}

func writeFault(w http.ResponseWriter, f *injected) {
	sf := &soapFault{Code: "ServerFaultCode", String: f.message}
	if sf.String == "" {
		sf.String = faultName(f.fault)
	}
	sf.Detail.Fault = faultDetail{Fault: f.fault}
	writeEnvelope(w, http.StatusInternalServerError, struct{ Fault *soapFault }{sf})
}

// --- sessions ---

// internalCtx is the Context our overrides use to call stock methods
// directly. Stock code needs a Session (for event user names); Caller marks
// an object whose lock we already hold, like the stock dispatcher does.
func internalCtx(locked *types.ManagedObjectReference) *simulator.Context {
	return &simulator.Context{
		Context: context.Background(),
		Map:     simulator.Map,
		Caller:  locked,
		Session: &simulator.Session{
			UserSession: types.UserSession{Key: "snapdeploy-vcsim-internal", UserName: "vcsim"},
			Registry:    simulator.NewRegistry(),
		},
	}
}

// listSessions reads the session table through the public "session view"
// of the SessionManager (its sessions map is unexported).
func listSessions() []types.UserSession {
	probe := &simulator.Session{
		UserSession: types.UserSession{Key: "snapdeploy-vcsim-probe"},
		Registry:    simulator.NewRegistry(),
	}
	sm, ok := probe.Get(simulator.Map.SessionManager().Self).(*simulator.SessionManager)
	if !ok {
		return nil
	}
	return sm.SessionList
}

func sessionValid(r *http.Request) bool {
	ck, err := r.Cookie(soap.SessionCookieName)
	if err != nil {
		return false
	}
	for _, s := range listSessions() {
		if s.Key == ck.Value {
			return true
		}
	}
	return false
}

// expireSessions terminates every session, so old cookies get NotAuthenticated.
func expireSessions() int {
	var keys []string
	for _, s := range listSessions() {
		keys = append(keys, s.Key)
	}
	if len(keys) == 0 {
		return 0
	}
	sm := simulator.Map.SessionManager()
	sm.TerminateSession(internalCtx(nil), &types.TerminateSession{This: sm.Self, SessionId: keys})
	return len(keys)
}

// --- TaskInfo.entity fix ---

// vCenter only ever reports a ManagedEntity as TaskInfo.entity; pyvmomi 9
// type-checks it and fails to parse a TaskInfo whose entity is e.g. the
// VirtualDiskManager or FileManager (stock vcsim puts the task's target
// there). Snapshot tasks report their VM, disk/file tasks no entity.
type taskEntityFix struct{}

var managedEntityTypes = map[string]bool{
	"Folder": true, "Datacenter": true, "ComputeResource": true, "ClusterComputeResource": true,
	"ResourcePool": true, "VirtualApp": true, "HostSystem": true, "VirtualMachine": true,
	"Datastore": true, "StoragePod": true, "Network": true, "OpaqueNetwork": true,
	"DistributedVirtualPortgroup": true, "DistributedVirtualSwitch": true,
	"VmwareDistributedVirtualSwitch": true,
}

func installTaskEntityFix() { simulator.Map.AddHandler(taskEntityFix{}) }

func (taskEntityFix) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "SnapdeployTaskEntityFix", Value: "fix-1"}
}

func (taskEntityFix) PutObject(o mo.Reference) {
	t, ok := o.(*simulator.Task)
	if !ok || t.Info.Entity == nil {
		return
	}
	if managedEntityTypes[t.Info.Entity.Type] {
		// stock puts the moref value in entityName; vCenter puts the name
		if e, ok := simulator.Map.Get(*t.Info.Entity).(mo.Entity); ok && e.Entity().Name != "" {
			t.Info.EntityName = e.Entity().Name
		}
		return
	}
	if s, ok := simulator.Map.Get(*t.Info.Entity).(*simulator.VirtualMachineSnapshot); ok {
		vm := s.Vm
		t.Info.Entity = &vm
		if v, ok := simulator.Map.Get(vm).(*simulator.VirtualMachine); ok {
			t.Info.EntityName = v.Name
		}
		return
	}
	t.Info.Entity = nil
	t.Info.EntityName = ""
}

func (taskEntityFix) UpdateObject(mo.Reference, []types.PropertyChange) {}
func (taskEntityFix) RemoveObject(types.ManagedObjectReference)         {}
