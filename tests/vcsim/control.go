package main

// Control endpoint: plain JSON over HTTP on the simulator's own port, used
// by tests to inject faults and latency and to expire sessions. See README.md.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/vmware/govmomi/vim25/types"
)

type faultRule struct {
	Fault   string `json:"fault"`
	Count   int    `json:"count"` // remaining failures; -1 = until reset
	Message string `json:"message,omitempty"`
}

var control = struct {
	sync.Mutex
	faults   map[string]*faultRule // SOAP method name -> rule
	latency  map[string]int        // SOAP method name -> milliseconds
	requests map[string]int        // SOAP method name -> requests served since the last reset
}{faults: map[string]*faultRule{}, latency: map[string]int{}, requests: map[string]int{}}

func countRequest(method string) {
	control.Lock()
	control.requests[method]++
	control.Unlock()
}

// injected is a fault plus the localizedMessage / faultstring to report.
type injected struct {
	fault   types.BaseMethodFault
	message string
}

// takeInjection returns the fault (consuming one count) and latency configured for c.
func takeInjection(c *call) (*injected, time.Duration) {
	control.Lock()
	defer control.Unlock()
	d := time.Duration(control.latency[c.name]) * time.Millisecond
	rule := control.faults[c.name]
	if rule == nil {
		return nil, d
	}
	if rule.Count > 0 {
		rule.Count--
		if rule.Count == 0 {
			delete(control.faults, c.name)
		}
	}
	return makeFault(rule, c), d
}

// powerOnTime is how much longer a clone that powers its VM on takes: the PowerOnVM_Task's task
// time, spent once the clone has given back its provisioning units (a power-on is not a
// provisioning operation).
func powerOnTime(c *call) time.Duration {
	clone, ok := c.req.(*types.CloneVM_Task)
	if !ok || !clone.Spec.PowerOn {
		return 0
	}
	control.Lock()
	defer control.Unlock()
	return time.Duration(control.latency["PowerOnVM_Task"]) * time.Millisecond
}

// makeFault builds a vim25 fault by name with plausible fields; the message
// becomes TaskInfo.error.localizedMessage (tasks) or faultstring (others).
func makeFault(rule *faultRule, c *call) *injected {
	msg := rule.Message
	def := func(s string) string {
		if msg == "" {
			return s
		}
		return msg
	}
	file := "[ds1] " + c.this.Value
	switch rule.Fault {
	case "InsufficientDiskSpace", "NoDiskSpace":
		// vim25 has no "InsufficientDiskSpace"; vCenter reports running out
		// of datastore space during clone/create as NoDiskSpace.
		return &injected{&types.NoDiskSpace{FileFault: types.FileFault{File: file}, Datastore: "ds1"},
			def("Insufficient disk space on datastore 'ds1'.")}
	case "FileNotFound":
		return &injected{&types.FileNotFound{FileFault: types.FileFault{File: file}},
			def("File " + file + " was not found")}
	case "InvalidPowerState":
		return &injected{&types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  types.VirtualMachinePowerStatePoweredOn,
		}, def("The attempted operation cannot be performed in the current state (Powered on).")}
	case "DuplicateName":
		return &injected{&types.DuplicateName{Name: def("duplicate"), Object: c.this},
			def("The name already exists.")}
	case "TaskInProgress":
		// task must be a Task moref (pyvmomi checks); startTask substitutes the failing task itself.
		return &injected{&types.TaskInProgress{Task: types.ManagedObjectReference{Type: "Task", Value: "task-0"}},
			def("Another task is already in progress.")}
	case "NotAuthenticated":
		return &injected{&types.NotAuthenticated{NoPermission: types.NoPermission{Object: c.this, PrivilegeId: "System.View"}},
			def("The session is not authenticated.")}
	case "NoPermission":
		return &injected{&types.NoPermission{Object: c.this, PrivilegeId: "VirtualMachine.Provisioning.Clone"},
			def("Permission to perform this operation was denied.")}
	case "SystemError", "":
		return &injected{&types.SystemError{Reason: def("injected SystemError")}, def("A general system error occurred: injected")}
	}
	// Any other vim25 fault type by name, zero-valued.
	if t, ok := vimTypes(rule.Fault); ok {
		if f, ok := reflect.New(t).Interface().(types.BaseMethodFault); ok {
			return &injected{f, def(rule.Fault)}
		}
	}
	return &injected{&types.SystemError{Reason: def(rule.Fault)}, def("A general system error occurred: " + rule.Fault)}
}

func knownFault(name string) bool {
	switch name {
	case "InsufficientDiskSpace", "NoDiskSpace", "FileNotFound", "InvalidPowerState", "DuplicateName",
		"TaskInProgress", "NotAuthenticated", "SystemError":
		return true
	}
	t, ok := vimTypes(name)
	if !ok {
		return false
	}
	_, ok = reflect.New(t).Interface().(types.BaseMethodFault)
	return ok
}

func controlHandler() http.Handler {
	mux := http.NewServeMux()
	post := func(pattern string, f func(w http.ResponseWriter, r *http.Request) (interface{}, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			res, err := f(w, r)
			if err != nil {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
				return
			}
			writeJSON(w, http.StatusOK, res)
		})
	}

	post("/_control/fault", func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
		var req struct {
			Method  string `json:"method"`
			Fault   string `json:"fault"`
			Count   *int   `json:"count"`
			Message string `json:"message"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		if req.Method == "" {
			return nil, fmt.Errorf("method is required")
		}
		req.Fault = strings.TrimPrefix(strings.TrimPrefix(req.Fault, "vim.fault."), "vmodl.fault.")
		if req.Fault == "" {
			req.Fault = "SystemError"
		}
		if !knownFault(req.Fault) {
			return nil, fmt.Errorf("unknown fault type %q", req.Fault)
		}
		n := 1
		if req.Count != nil {
			n = *req.Count
		}
		control.Lock()
		defer control.Unlock()
		if n == 0 {
			delete(control.faults, req.Method)
		} else {
			control.faults[req.Method] = &faultRule{Fault: req.Fault, Count: n, Message: req.Message}
		}
		return stateLocked(), nil
	})

	post("/_control/latency", func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
		var req struct {
			Method  string         `json:"method"`
			Ms      int            `json:"ms"`
			Methods map[string]int `json:"methods"` // several at once: task times of a profile
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		if req.Methods == nil {
			req.Methods = map[string]int{}
		}
		if req.Method != "" {
			req.Methods[req.Method] = req.Ms
		}
		if len(req.Methods) == 0 {
			return nil, fmt.Errorf("method and ms >= 0 (or methods: {name: ms}) are required")
		}
		for _, ms := range req.Methods {
			if ms < 0 {
				return nil, fmt.Errorf("ms must be >= 0")
			}
		}
		control.Lock()
		defer control.Unlock()
		for method, ms := range req.Methods {
			if ms == 0 {
				delete(control.latency, method)
			} else {
				control.latency[method] = ms
			}
		}
		return stateLocked(), nil
	})

	post("/_control/ide-vm", createIdeVM)

	post("/_control/limits", func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
		var req limits
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			return nil, err
		}
		if req.Host < 0 || req.Datastore < 0 || req.Global < 0 {
			return nil, fmt.Errorf("limits must be positive (0 keeps the current one)")
		}
		admission.setLimits(req)
		return admission.state(), nil
	})

	post("/_control/expire-sessions", func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
		return map[string]int{"expired": expireSessions()}, nil
	})

	post("/_control/reset", func(w http.ResponseWriter, r *http.Request) (interface{}, error) {
		control.Lock()
		defer control.Unlock()
		control.faults = map[string]*faultRule{}
		control.latency = map[string]int{}
		control.requests = map[string]int{}
		admission.setLimits(defaultLimits)
		admission.resetPeaks()
		return stateLocked(), nil
	})

	mux.HandleFunc("/_control/state", func(w http.ResponseWriter, r *http.Request) {
		control.Lock()
		defer control.Unlock()
		writeJSON(w, http.StatusOK, stateLocked())
	})
	return mux
}

func stateLocked() interface{} {
	faults := map[string]faultRule{}
	for k, v := range control.faults {
		faults[k] = *v
	}
	lat := map[string]int{}
	for k, v := range control.latency {
		lat[k] = v
	}
	requests := map[string]int{}
	for k, v := range control.requests {
		requests[k] = v
	}
	return map[string]interface{}{"faults": faults, "latency": lat, "requests": requests, "admission": admission.state()}
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
