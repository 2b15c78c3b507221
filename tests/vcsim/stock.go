package main

// Stock methods we run differently: stock tasks that take time run as our own
// asynchronous tasks, and FindChild skips a VM that is still being created.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// replayable copies a request so the stock handler can serve it after the
// client has had its answer (the original request ends with its response).
func replayable(r *http.Request, body []byte) *http.Request {
	replay := httptest.NewRequest(http.MethodPost, r.URL.String(), bytes.NewReader(body)).WithContext(context.Background())
	replay.Header = r.Header.Clone()
	replay.RemoteAddr = r.RemoteAddr
	return replay
}

var taskReturnval = regexp.MustCompile(`<returnval type="Task">([^<]+)</returnval>`)

// stockTask runs a stock *_Task method (with our pre-check and post-fixup)
// and hands over the outcome of the task it made. It runs under opMu (safeRun).
func (rt *router) stockTask(replay *http.Request, c *call, ov override) (types.AnyType, types.BaseMethodFault) {
	if ov.pre != nil {
		if f := ov.pre(c); f != nil {
			return nil, f
		}
	}
	rec := httptest.NewRecorder()
	rt.stock.ServeHTTP(rec, replay)
	m := taskReturnval.FindSubmatch(rec.Body.Bytes())
	if m == nil {
		return nil, &types.SystemError{Reason: fmt.Sprintf("stock %s answered without a task: %.200s", c.name, rec.Body.String())}
	}
	ref := types.ManagedObjectReference{Type: "Task", Value: string(m[1])}
	task, ok := simulator.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil, &types.SystemError{Reason: "stock task " + ref.Value + " vanished"}
	}
	var info types.TaskInfo
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		simulator.Map.WithLock(task, func() { info = task.Info })
		if info.State == types.TaskInfoStateSuccess || info.State == types.TaskInfoStateError || time.Now().After(deadline) {
			break
		}
	}
	if ov.post != nil {
		ov.post(c)
	}
	if info.Error != nil {
		return nil, info.Error.Fault
	}
	return info.Result, nil
}

// findChild is stock FindChild for folders, except that a child without a
// name yet (a VM a clone is still creating) is not found instead of
// panicking the stock code ("does not have a Name"). vCenter shows a clone
// in the inventory only once it exists.
func findChild(c *call) (interface{}, types.BaseMethodFault) {
	req := c.req.(*types.FindChild)
	folder, ok := simulator.Map.Get(req.Entity).(*simulator.Folder)
	if !ok {
		return nil, nil // stock handles datacenters, pools and the rest
	}
	var children []types.ManagedObjectReference
	simulator.Map.WithLock(folder, func() { children = append(children, folder.ChildEntity...) })
	res := &types.FindChildResponse{}
	for _, ref := range children {
		switch ref.Type {
		case "VirtualMachine", "Folder", "VirtualApp":
		default:
			return nil, nil // networks keep their name elsewhere: stock knows where
		}
		e, ok := simulator.Map.Get(ref).(mo.Entity)
		if !ok {
			continue
		}
		name := ""
		simulator.Map.WithLock(e, func() { name = e.Entity().Name })
		if name != "" && name == req.Name {
			found := ref
			res.Returnval = &found
			break
		}
	}
	return res, nil
}
