#!/usr/bin/env python3
"""End-to-end smoke test of the snapdeploy vcsim (tests/vcsim).

Starts the built simulator binary, reads its SDK URL from the first stdout
line, and checks over real HTTP(S) with pyvmomi that disk contents behave
like vSphere: snapshots freeze disks, clones (full and linked) start from a
snapshot's contents, CopyVirtualDisk copies read-through bytes, plus the
control endpoint (fault / latency injection, session expiry).

Usage:
    /tmp/probe-venv/bin/python tests/vcsim/smoke.py [--bin build/vcsim]

Prints PASS/FAIL per check and exits non-zero if any check failed.
"""

import argparse
import concurrent.futures
import hashlib
import json
import os
import ssl
import subprocess
import sys
import time
import traceback
import urllib.request
from urllib.parse import quote, urlparse

from pyVim.connect import SmartConnect
from pyVmomi import vim, vmodl

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BIN = os.path.normpath(os.path.join(HERE, "..", "..", "build", "vcsim"))
SSL_CTX = ssl._create_unverified_context()

RESULTS = []


def check(name):
    """Decorator: run the check right away, print and record PASS/FAIL."""

    def run(fn):
        t0 = time.monotonic()
        try:
            detail = fn()
            RESULTS.append((name, True))
            extra = f" ({detail})" if detail else ""
            print(f"PASS {name}{extra} [{time.monotonic() - t0:.2f}s]", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            RESULTS.append((name, False))
            print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
            traceback.print_exc(limit=4)

    return run


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


class Sim:
    def __init__(self, binary):
        self.proc = subprocess.Popen([binary], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if not line:
            raise SystemExit(f"simulator printed no URL (exit {self.proc.poll()})")
        self.url = urlparse(line)
        self.base = f"{self.url.scheme}://{self.url.hostname}:{self.url.port}"
        print(f"simulator at {line}", flush=True)
        self.si = self.connect()

    def connect(self):
        return SmartConnect(
            host=self.url.hostname,
            port=self.url.port,
            user=self.url.username,
            pwd=self.url.password,
            sslContext=SSL_CTX,
        )

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(timeout=10)

    # --- inventory helpers ---
    @property
    def content(self):
        return self.si.RetrieveContent()

    def find(self, vimtype, name):
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vimtype], True)
        try:
            for obj in view.view:
                if obj.name == name:
                    return obj
        finally:
            view.Destroy()
        return None

    def all(self, vimtype):
        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vimtype], True)
        try:
            return list(view.view)
        finally:
            view.Destroy()

    # --- tasks: wait with a PropertyCollector on info.state/error/result ---
    def wait(self, task, timeout=30):
        # A private collector per wait: concurrent WaitForUpdatesEx calls on
        # one collector would steal each other's updates.
        pc = self.content.propertyCollector.CreatePropertyCollector()
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=task)],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(
                    type=vim.Task, pathSet=["info.state", "info.error", "info.result"]
                )
            ],
        )
        flt = pc.CreateFilter(spec, True)
        try:
            version, state, error, result = "", None, None, None
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                upd = pc.WaitForUpdatesEx(
                    version, vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=5)
                )
                if upd is None:
                    continue
                version = upd.version
                for fs in upd.filterSet:
                    for oc in fs.objectSet:
                        for ch in oc.changeSet:
                            if ch.name == "info.state":
                                state = ch.val
                            elif ch.name == "info.error":
                                error = ch.val
                            elif ch.name == "info.result":
                                result = ch.val
                if state in ("success", "error"):
                    info = task.info  # the whole TaskInfo must parse too (entity!)
                    if state == "error":
                        raise TaskError(error or info.error)
                    return result
            raise TimeoutError(f"task {task} still {state}")
        finally:
            flt.Destroy()
            pc.Destroy()

    # --- datastore files over /folder ---
    def _folder_url(self, ds_path):
        ds, rel = parse_ds_path(ds_path)
        return f"{self.base}/folder/{quote(rel)}?dcPath=DC0&dsName={quote(ds)}"

    def _cookie(self):
        return self.si._stub.cookie

    def put(self, ds_path, data):
        req = urllib.request.Request(self._folder_url(ds_path), data=data, method="PUT")
        req.add_header("Cookie", self._cookie())
        with urllib.request.urlopen(req, context=SSL_CTX) as r:
            assert r.status in (200, 201), r.status

    def get(self, ds_path):
        req = urllib.request.Request(self._folder_url(ds_path))
        req.add_header("Cookie", self._cookie())
        with urllib.request.urlopen(req, context=SSL_CTX) as r:
            return r.read()

    def exists(self, ds_path):
        try:
            self.get(ds_path)
            return True
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return False
            raise

    # --- control endpoint ---
    def state(self):
        with urllib.request.urlopen(f"{self.base}/_control/state", context=SSL_CTX) as r:
            return json.load(r)

    def control(self, path, body=None):
        data = json.dumps(body or {}).encode()
        req = urllib.request.Request(f"{self.base}/_control/{path}", data=data, method="POST")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=SSL_CTX) as r:
            return json.load(r)


class TaskError(Exception):
    """A task ended in error; err is its TaskInfo.error (a LocalizedMethodFault)."""

    def __init__(self, err):
        # pyvmomi turns a LocalizedMethodFault into the fault itself, with
        # msg = localizedMessage.
        self.fault = err
        self.msg = getattr(err, "msg", "") or ""
        super().__init__(f"{type(self.fault).__name__}: {self.msg}")


def parse_ds_path(p):
    assert p.startswith("["), p
    ds, rel = p[1:].split("]", 1)
    return ds, rel.strip()


def disks(cfg):
    """Disk devices of a VirtualMachineConfigInfo, ordered by unit number."""
    ds = [d for d in cfg.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    return sorted(ds, key=lambda d: d.unitNumber)


def nics(cfg):
    return [d for d in cfg.hardware.device if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def extra(cfg):
    return {o.key: o.value for o in cfg.extraConfig}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=DEFAULT_BIN)
    args = ap.parse_args()
    sim = Sim(args.bin)
    S = {}  # state shared between checks

    A, B, C = b"A" * 4096 + b"root@A", b"B" * 8192 + b"root@B", b"C" * 1000 + b"root@C"
    DA, DB = os.urandom(64 * 1024), os.urandom(32 * 1024)

    @check("inventory: DC0, 2 clusters, ds1/ds2 reachability, port groups, src-vm")
    def _():
        assert sim.find(vim.Datacenter, "DC0")
        c1, c2 = (
            sim.find(vim.ClusterComputeResource, "cluster1"),
            sim.find(vim.ClusterComputeResource, "cluster2"),
        )
        assert c1 and c2 and len(c1.host) == 2 and len(c2.host) == 2
        for h in c1.host:
            assert {d.name for d in h.datastore} == {"ds1", "ds2"}, h.name
        for h in c2.host:
            assert {d.name for d in h.datastore} == {"ds2"}, h.name
        for ds in sim.all(vim.Datastore):
            assert {m.key.name for m in ds.host} == {
                h.name for h in sim.all(vim.HostSystem) if ds in h.datastore
            }
        assert {"VM Network", "pg-web", "pg-db", "pg-mgmt"} <= {n.name for n in sim.all(vim.Network)}
        vm = sim.find(vim.VirtualMachine, "src-vm")
        S["vm"] = vm
        cfg = vm.config
        assert vm.runtime.powerState == "poweredOff"
        assert (
            cfg.guestId == "otherGuest64" and cfg.hardware.numCPU == 2 and cfg.hardware.numCoresPerSocket == 1
        )
        assert cfg.hardware.memoryMB == 2048
        d = disks(cfg)
        assert [x.unitNumber for x in d] == [0, 1]
        assert d[0].backing.fileName == "[ds1] src-vm/src-vm.vmdk" and d[0].capacityInKB == 1024 * 1024
        assert d[1].backing.fileName == "[ds1] src-vm/src-vm_1.vmdk" and d[1].capacityInKB == 2 * 1024 * 1024
        assert [n.backing.deviceName for n in nics(cfg)] == ["VM Network"]
        assert vm.runtime.host.parent.name == "cluster1"
        return f"{len(sim.all(vim.VirtualMachine))} VM(s)"

    @check("snapshots freeze disk contents (S1=A, S2=B, current=C)")
    def _():
        vm = S["vm"]
        root0, data0 = [d.backing.fileName for d in disks(vm.config)]
        sim.put(root0, A)
        sim.put(data0, DA)
        S["s1"] = sim.wait(vm.CreateSnapshot_Task(name="S1", description="", memory=False, quiesce=False))
        root1, data1 = [d.backing.fileName for d in disks(vm.config)]
        assert root1 != root0, "current disk did not move to a delta"
        assert sim.get(root1) == A, "fresh delta must read through to its parent"
        sim.put(root1, B)
        sim.put(data1, DB)
        S["s2"] = sim.wait(vm.CreateSnapshot_Task(name="S2", description="", memory=False, quiesce=False))
        root2 = disks(vm.config)[0].backing.fileName
        sim.put(root2, C)

        s1cfg, s2cfg = S["s1"].config, S["s2"].config
        s1root, s1data = [d.backing.fileName for d in disks(s1cfg)]
        s2root = disks(s2cfg)[0].backing.fileName
        assert sha(sim.get(s1root)) == sha(A), "S1 root"
        assert sha(sim.get(s1data)) == sha(DA), "S1 data"
        assert sha(sim.get(s2root)) == sha(B), "S2 root"
        assert sha(sim.get(disks(vm.config)[0].backing.fileName)) == sha(C), "current root"
        assert sha(sim.get(disks(vm.config)[1].backing.fileName)) == sha(DB), "current data (unwritten delta)"
        # backing chain like vSphere: current delta -> S2 file -> S1 file
        cur = disks(vm.config)[0].backing
        assert cur.parent.fileName == s2root and cur.parent.parent.fileName == s1root
        # snapshot tree
        tree = vm.snapshot.rootSnapshotList
        assert [t.name for t in tree] == ["S1"] and [t.name for t in tree[0].childSnapshotList] == ["S2"]
        assert vm.snapshot.currentSnapshot == S["s2"]
        S["files"] = {"s1root": s1root, "s1data": s1data, "s2root": s2root}
        return f"S1 {s1root}, S2 {s2root}, current {disks(vm.config)[0].backing.fileName}"

    @check("full clone from S1 reads S1's bytes")
    def _():
        vm = S["vm"]
        spec = vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(), snapshot=S["s1"], powerOn=False, template=False
        )
        clone = sim.wait(vm.CloneVM_Task(folder=vm.parent, name="clone-s1", spec=spec))
        d = disks(clone.config)
        assert d[0].backing.fileName == "[ds1] clone-s1/clone-s1.vmdk", d[0].backing.fileName
        assert d[0].backing.parent is None
        assert sha(sim.get(d[0].backing.fileName)) == sha(A)
        assert sha(sim.get(d[1].backing.fileName)) == sha(DA)
        assert clone.config.hardware.numCPU == 2 and clone.config.hardware.memoryMB == 2048
        assert clone.snapshot is None, "unset property must read as None (stock vcsim drops the connection)"
        S["clone_s1"] = clone

    @check("full clone from S2 to ds2 on a cluster2 host, NIC removed, CPU/memory changed")
    def _():
        vm = S["vm"]
        host = sim.find(vim.HostSystem, "esx-2-1")
        nic = nics(S["s2"].config)[0]
        cfg = vim.vm.ConfigSpec(
            numCPUs=4,
            memoryMB=4096,
            deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=nic)],
            extraConfig=[vim.option.OptionValue(key="snapdeploy.uuid", value="u-clone-s2")],
        )
        loc = vim.vm.RelocateSpec(
            host=host, pool=host.parent.resourcePool, datastore=sim.find(vim.Datastore, "ds2")
        )
        spec = vim.vm.CloneSpec(location=loc, snapshot=S["s2"], config=cfg)
        clone = sim.wait(vm.CloneVM_Task(folder=vm.parent, name="clone-s2", spec=spec))
        d = disks(clone.config)
        assert d[0].backing.fileName.startswith("[ds2] clone-s2/"), d[0].backing.fileName
        assert sha(sim.get(d[0].backing.fileName)) == sha(B)
        assert sha(sim.get(d[1].backing.fileName)) == sha(DB)
        assert clone.runtime.host.name == "esx-2-1" and [x.name for x in clone.datastore] == ["ds2"]
        assert (
            nics(clone.config) == []
            and clone.config.hardware.numCPU == 4
            and clone.config.hardware.memoryMB == 4096
        )
        assert extra(clone.config).get("snapdeploy.uuid") == "u-clone-s2"
        sim.wait(clone.Destroy_Task())

    @check("CopyVirtualDisk_Task of S1's data disk and of an unwritten delta; disk TaskInfo parses")
    def _():
        vdm = sim.content.virtualDiskManager
        dc = sim.find(vim.Datacenter, "DC0")
        sim.content.fileManager.MakeDirectory(
            name="[ds1] copies", datacenter=dc, createParentDirectories=True
        )
        t = vdm.CopyVirtualDisk_Task(
            sourceName=S["files"]["s1data"],
            sourceDatacenter=dc,
            destName="[ds1] copies/data-s1.vmdk",
            destDatacenter=dc,
        )
        sim.wait(t)
        info = t.info
        assert info.state == "success" and info.entity is None, info.entity
        assert sha(sim.get("[ds1] copies/data-s1.vmdk")) == sha(DA)
        cur_data = disks(S["vm"].config)[1].backing.fileName
        sim.wait(
            vdm.CopyVirtualDisk_Task(
                sourceName=cur_data,
                sourceDatacenter=dc,
                destName="[ds1] copies/data-cur.vmdk",
                destDatacenter=dc,
            )
        )
        assert sha(sim.get("[ds1] copies/data-cur.vmdk")) == sha(DB)
        sim.wait(vdm.DeleteVirtualDisk_Task(name="[ds1] copies/data-cur.vmdk", datacenter=dc))
        assert not sim.exists("[ds1] copies/data-cur.vmdk")
        t = sim.content.fileManager.DeleteDatastoreFile_Task(
            name="[ds1] copies/nonexistent.vmdk", datacenter=dc
        )
        try:
            sim.wait(t)
            raise AssertionError("delete of a missing file succeeded")
        except TaskError:
            pass
        assert t.info.entity is None

    @check("template with base snapshot -> linked clone reads through, writes stay private")
    def _():
        vm = S["vm"]
        tmpl = sim.wait(
            vm.CloneVM_Task(
                folder=vm.parent,
                name="tmpl",
                spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec(), snapshot=S["s1"]),
            )
        )
        base = sim.wait(tmpl.CreateSnapshot_Task(name="base", description="", memory=False, quiesce=False))
        tmpl.MarkAsTemplate()
        assert tmpl.config.template and tmpl.resourcePool is None
        assert tmpl not in sim.find(vim.ClusterComputeResource, "cluster1").resourcePool.vm
        base_root = disks(base.config)[0].backing.fileName
        assert base_root == "[ds1] tmpl/tmpl.vmdk", base_root
        pool = sim.find(vim.ClusterComputeResource, "cluster1").resourcePool
        spec = vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(pool=pool, diskMoveType="createNewChildDiskBacking"),
            snapshot=base,
            config=vim.vm.ConfigSpec(
                extraConfig=[vim.option.OptionValue(key="snapdeploy.uuid", value="u-linked-1")]
            ),
        )
        lc = sim.wait(tmpl.CloneVM_Task(folder=vm.parent, name="linked-1", spec=spec))
        d = disks(lc.config)
        assert d[0].backing.parent is not None and d[0].backing.parent.fileName == base_root, d[0].backing
        assert d[0].backing.fileName.startswith("[ds1] linked-1/")
        assert sha(sim.get(d[0].backing.fileName)) == sha(A), "child must read through to the template disk"
        assert sha(sim.get(d[1].backing.fileName)) == sha(DA)
        sim.put(d[0].backing.fileName, b"linked-1 private")
        assert sim.get(d[0].backing.fileName) == b"linked-1 private"
        assert sha(sim.get(base_root)) == sha(A), "template disk changed by child write"
        assert extra(lc.config).get("snapdeploy.uuid") == "u-linked-1"
        assert lc.resourcePool == pool and lc.runtime.host.parent.name == "cluster1"
        S.update(tmpl=tmpl, base=base, base_root=base_root, linked=lc, pool=pool)

    @check("fault injection: InsufficientDiskSpace on CloneVM_Task -> task error, no VM left")
    def _():
        vm = S["vm"]
        sim.control(
            "fault",
            {
                "method": "CloneVM_Task",
                "fault": "InsufficientDiskSpace",
                "count": 1,
                "message": "out of space (injected)",
            },
        )
        try:
            sim.wait(
                vm.CloneVM_Task(
                    folder=vm.parent, name="doomed", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec())
                )
            )
            raise AssertionError("clone succeeded despite injected fault")
        except TaskError as e:
            assert isinstance(e.fault, vim.fault.NoDiskSpace), type(e.fault)
            assert e.msg == "out of space (injected)", e.msg
        assert sim.find(vim.VirtualMachine, "doomed") is None
        assert sim.state()["faults"] == {}, "count=1 rule not consumed"
        # count consumed: the next clone works
        ok = sim.wait(
            vm.CloneVM_Task(
                folder=vm.parent, name="doomed", spec=vim.vm.CloneSpec(location=vim.vm.RelocateSpec())
            )
        )
        sim.wait(ok.Destroy_Task())
        assert sim.find(vim.VirtualMachine, "doomed") is None and not sim.exists("[ds1] doomed/doomed.vmdk")

    @check("fault injection on a non-task method -> SOAP fault")
    def _():
        sim.control("fault", {"method": "CreateFolder", "fault": "DuplicateName"})
        try:
            sim.find(vim.Datacenter, "DC0").vmFolder.CreateFolder("f1")
            raise AssertionError("no fault")
        except vim.fault.DuplicateName:
            pass
        sim.control("fault", {"method": "CloneVM_Task", "fault": "TaskInProgress", "count": 2})
        st = sim.control("reset")
        assert (st["faults"], st["latency"]) == ({}, {}), st

    @check("latency: 20 concurrent linked clones with 500 ms CloneVM_Task latency")
    def _():
        sim.control("latency", {"method": "CloneVM_Task", "ms": 500})
        tmpl, base, pool = S["tmpl"], S["base"], S["pool"]
        folder = S["vm"].parent

        def one(i):
            spec = vim.vm.CloneSpec(
                location=vim.vm.RelocateSpec(pool=pool, diskMoveType="createNewChildDiskBacking"),
                snapshot=base,
            )
            return sim.wait(tmpl.CloneVM_Task(folder=folder, name=f"par-{i:02d}", spec=spec))

        t0 = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            vms = list(ex.map(one, range(20)))
        elapsed = time.monotonic() - t0
        sim.control("reset")
        S["elapsed"] = elapsed
        assert len({v._moId for v in vms}) == 20
        assert 0.5 <= elapsed < 2.0, f"took {elapsed:.2f}s"
        for v in vms:
            assert sha(sim.get(disks(v.config)[0].backing.fileName)) == sha(A)
        for v in vms:
            sim.wait(v.Destroy_Task())
        assert sha(sim.get(S["base_root"])) == sha(A), "destroying linked clones touched the template disk"
        return f"20 clones in {elapsed:.2f}s"

    @check("reconfigure: add/remove NIC, extraConfig replace/read back, extend disk, attach existing disk")
    def _():
        clone = S["clone_s1"]
        add = vim.vm.device.VirtualDeviceSpec(
            operation="add",
            device=vim.vm.device.VirtualE1000(
                key=-1, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="pg-web")
            ),
        )
        sim.wait(
            clone.ReconfigVM_Task(
                spec=vim.vm.ConfigSpec(
                    deviceChange=[add],
                    extraConfig=[vim.option.OptionValue(key="snapdeploy.uuid", value="u1")],
                )
            )
        )
        sim.wait(
            clone.ReconfigVM_Task(
                spec=vim.vm.ConfigSpec(
                    extraConfig=[vim.option.OptionValue(key="snapdeploy.uuid", value="u2")]
                )
            )
        )
        cfg = clone.config
        assert sorted(n.backing.deviceName for n in nics(cfg)) == ["VM Network", "pg-web"]
        keys = [o.key for o in cfg.extraConfig]
        assert keys.count("snapdeploy.uuid") == 1 and extra(cfg)["snapdeploy.uuid"] == "u2", keys
        web = next(n for n in nics(cfg) if n.backing.deviceName == "pg-web")
        data = disks(cfg)[1]
        data.capacityInKB = 4 * 1024 * 1024
        attach = vim.vm.device.VirtualDisk(
            key=-2,
            controllerKey=data.controllerKey,
            unitNumber=2,
            capacityInKB=0,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName="[ds1] copies/data-s1.vmdk", diskMode="persistent"
            ),
        )
        sim.wait(
            clone.ReconfigVM_Task(
                spec=vim.vm.ConfigSpec(
                    deviceChange=[
                        vim.vm.device.VirtualDeviceSpec(operation="remove", device=web),
                        vim.vm.device.VirtualDeviceSpec(operation="edit", device=data),
                        vim.vm.device.VirtualDeviceSpec(operation="add", device=attach),
                    ]
                )
            )
        )
        cfg = clone.config
        assert [n.backing.deviceName for n in nics(cfg)] == ["VM Network"]
        d = disks(cfg)
        assert d[1].capacityInKB == 4 * 1024 * 1024 and len(d) == 3
        assert sha(sim.get(d[1].backing.fileName)) == sha(DA), "edit changed disk content"
        assert sha(sim.get("[ds1] copies/data-s1.vmdk")) == sha(DA), "attach truncated the disk"
        # detach (no destroy) then remove the data disk with destroy
        sim.wait(
            clone.ReconfigVM_Task(
                spec=vim.vm.ConfigSpec(
                    deviceChange=[
                        vim.vm.device.VirtualDeviceSpec(operation="remove", device=d[2]),
                        vim.vm.device.VirtualDeviceSpec(
                            operation="remove", device=d[1], fileOperation="destroy"
                        ),
                    ]
                )
            )
        )
        assert len(disks(clone.config)) == 1
        assert sim.exists("[ds1] copies/data-s1.vmdk") and not sim.exists(d[1].backing.fileName)

    @check("CreateVM_Task attaches an existing disk file as-is; power on/off; Destroy keeps outside files")
    def _():
        dc = sim.find(vim.Datacenter, "DC0")
        host = sim.find(vim.HostSystem, "esx-1-2")
        scsi = vim.vm.device.VirtualLsiLogicController(key=1000, busNumber=0, sharedBus="noSharing")
        disk = vim.vm.device.VirtualDisk(
            key=2000,
            controllerKey=1000,
            unitNumber=0,
            capacityInKB=1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                fileName="[ds1] copies/data-s1.vmdk", diskMode="persistent"
            ),
        )
        nic = vim.vm.device.VirtualVmxnet3(
            key=4000, backing=vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName="pg-db")
        )
        spec = vim.vm.ConfigSpec(
            name="attach-vm",
            guestId="otherGuest64",
            numCPUs=1,
            memoryMB=512,
            files=vim.vm.FileInfo(vmPathName="[ds1]"),
            extraConfig=[vim.option.OptionValue(key="snapdeploy.uuid", value="u-attach")],
            deviceChange=[
                vim.vm.device.VirtualDeviceSpec(operation="add", device=d) for d in (scsi, disk, nic)
            ],
        )
        vm = sim.wait(dc.vmFolder.CreateVM_Task(config=spec, pool=host.parent.resourcePool, host=host))
        assert disks(vm.config)[0].backing.fileName == "[ds1] copies/data-s1.vmdk"
        assert sha(sim.get("[ds1] copies/data-s1.vmdk")) == sha(DA)
        assert extra(vm.config)["snapdeploy.uuid"] == "u-attach"
        sim.wait(vm.PowerOnVM_Task())
        assert vm.runtime.powerState == "poweredOn"
        try:
            sim.wait(vm.Destroy_Task())
            raise AssertionError("destroyed a powered-on VM")
        except TaskError as e:
            assert isinstance(e.fault, vim.fault.InvalidPowerState)
        sim.wait(vm.PowerOffVM_Task())
        sim.wait(vm.Destroy_Task())
        assert sim.find(vim.VirtualMachine, "attach-vm") is None
        assert sha(sim.get("[ds1] copies/data-s1.vmdk")) == sha(DA), (
            "Destroy deleted a disk outside the VM folder"
        )

    @check("Destroy of a template keeps the disk its linked clone depends on")
    def _():
        sim.wait(S["tmpl"].Destroy_Task())
        assert sim.find(vim.VirtualMachine, "tmpl") is None
        assert not sim.exists("[ds1] tmpl/tmpl.vmx")
        assert sha(sim.get(S["base_root"])) == sha(A)
        lc = S["linked"]
        assert sim.get(disks(lc.config)[0].backing.fileName) == b"linked-1 private"
        assert sha(sim.get(disks(lc.config)[1].backing.fileName)) == sha(DA), (
            "unwritten child lost its parent"
        )

    @check("RevertToSnapshot S1 and RemoveSnapshot S2 keep every snapshot's and the VM's bytes")
    def _():
        vm = S["vm"]
        sim.wait(S["s1"].RevertToSnapshot_Task())
        assert vm.snapshot.currentSnapshot == S["s1"]
        cur = disks(vm.config)[0].backing
        assert cur.parent.fileName == S["files"]["s1root"]
        assert sha(sim.get(cur.fileName)) == sha(A)
        sim.wait(S["s2"].RemoveSnapshot_Task(removeChildren=False))
        assert [t.name for t in vm.snapshot.rootSnapshotList] == ["S1"] and not vm.snapshot.rootSnapshotList[
            0
        ].childSnapshotList
        assert sha(sim.get(disks(S["s1"].config)[0].backing.fileName)) == sha(A)
        assert sha(sim.get(S["files"]["s2root"])) == sha(B)
        S["s3"] = sim.wait(vm.CreateSnapshot_Task(name="S3", description="", memory=False, quiesce=False))
        assert [t.name for t in vm.snapshot.rootSnapshotList[0].childSnapshotList] == ["S3"]

    @check("expire-sessions -> NotAuthenticated, then re-login works")
    def _():
        n = sim.control("expire-sessions")["expired"]
        assert n >= 1, n
        try:
            _ = S["vm"].name  # any call with the old session cookie
            raise AssertionError("old session still valid")
        except vim.fault.NotAuthenticated:
            pass
        sim.si = sim.connect()
        assert sim.find(vim.VirtualMachine, "src-vm") is not None

    rc = sim.stop()
    print(f"simulator exited with {rc}")
    ok = rc == 0 and all(p for _, p in RESULTS)
    passed = sum(1 for _, p in RESULTS if p)
    print(
        f"{'PASS' if ok else 'FAIL'}: {passed}/{len(RESULTS)} checks passed"
        + (f"; 20 concurrent 500 ms clones took {S['elapsed']:.2f}s" if "elapsed" in S else "")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
