// Command vcsim is the vSphere simulator used by snapdeploy's tests and demo.
//
// It is the govmomi simulator (Debian's golang-github-vmware-govmomi-dev, 0.24)
// with a fixed inventory (inventory.go) and a thin layer in front of the SOAP
// endpoint (router.go) that replaces the handful of methods where stock vcsim
// does not behave like vSphere for disk contents: snapshots, clones, disk
// copies and VM destruction (vm.go, disks.go). It also serves a small JSON
// control API for fault and latency injection (control.go).
//
// Build (GOPATH mode, no module download needed; build.sh patches one stock constant):
//
//	tests/vcsim/build.sh build/vcsim
//
// Run with no arguments: the first line on stdout is the SDK URL including
// credentials; the process serves until SIGINT/SIGTERM and then exits 0.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io/ioutil"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	dsDir := flag.String("datastore-dir", "", "parent directory for the datastore backing dirs (default: a new temp dir, removed at exit)")
	plain := flag.Bool("http", false, "serve plain http instead of https (self-signed)")
	user := flag.String("user", "user", "login user name")
	pass := flag.String("pass", "pass", "login password")
	trace := flag.Bool("trace", false, "log SOAP traffic to stderr")
	verbose := flag.Bool("v", false, "keep the stock simulator's (chatty) log on stderr")
	flag.Parse()

	simulator.Trace = *trace
	if !*verbose {
		// The stock PropertyCollector logs every update; tests don't need it.
		// Our own errors go to errLog (stderr) regardless.
		log.SetOutput(ioutil.Discard)
	}

	// Datastore directories live under one root so that cleanup is a single RemoveAll.
	root := *dsDir
	removeRoot := false
	if root == "" {
		d, err := ioutil.TempDir("", "snapdeploy-vcsim-")
		if err != nil {
			log.Fatal(err)
		}
		root, removeRoot = d, true
	}

	// Model.Create builds the service content and one datacenter ("DC0"); the
	// rest of the inventory is built by buildInventory so names are stable.
	model := simulator.VPX()
	model.Datacenter = 1
	model.Cluster = 0
	model.ClusterHost = 0
	model.Host = 0
	model.Datastore = 0
	model.Machine = 0
	model.Portgroup = 0
	model.Autostart = false
	if err := model.Create(); err != nil {
		errLog.Fatal(err)
	}

	if err := buildInventory(context.Background(), model.Service, root); err != nil {
		errLog.Fatalf("building inventory: %v", err)
	}

	installTaskEntityFix()

	svc := model.Service
	svc.Listen = &url.URL{Host: *listen, User: url.UserPassword(*user, *pass)}
	if !*plain {
		svc.TLS = new(tls.Config) // NewServer then uses its built-in self-signed localhost certificate
	}
	srv := svc.NewServer()

	// NewServer has already registered /sdk and /folder on its own mux. We put
	// our router in front of that mux (before any client knows the URL) so we
	// can intercept individual SOAP methods and datastore file requests.
	srv.Config.Handler = newRouter(svc, srv.Config.Handler)
	srv.Config.ErrorLog = errLog // handler panics stay visible when the stock log is muted

	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, srv.URL.String())
	out.Flush()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig

	srv.Close()
	model.Remove()
	if removeRoot {
		_ = os.RemoveAll(root)
	}
	os.Exit(0)
}

// errLog reports our own problems on stderr even when the stock log is muted.
var errLog = log.New(os.Stderr, "vcsim: ", log.LstdFlags)
