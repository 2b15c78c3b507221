// One instance: its facts and NICs, its VM snapshots as a tree, and the selected snapshot's actions:
// Deploy VM from VM snapshot, Create volume from this snapshot, and (admins) Seed template on this pool.

import { bytes, h, replace, route, stateBadge, when } from "../dom.js";
import { snapshotTree } from "../snapshot-tree.js";
import { card, facts, loading, pageHeader, problem } from "../ui.js";

function nicTable(nics) {
  const ordered = [...(nics || [])].sort((a, b) => Number(a.deviceid ?? 0) - Number(b.deviceid ?? 0));
  if (!ordered.length) return h("p", { class: "muted" }, "This instance has no NICs.");
  return h(
    "table",
    { class: "grid", id: "nics" },
    h("thead", {}, h("tr", {}, ["NIC", "Network", "IP address", "MAC address", "Default"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      ordered.map((nic, index) =>
        h(
          "tr",
          { "data-network": nic.networkname || "" },
          h("td", {}, String(nic.deviceid ?? index)),
          h("td", { class: "nic-network" }, nic.networkname || nic.networkid),
          h("td", {}, nic.ipaddress || "–"),
          h("td", { class: "mono" }, nic.macaddress || "–"),
          h("td", {}, nic.isdefault ? "yes" : ""),
        ),
      ),
    ),
  );
}

function volumeForm(session, snap, go) {
  const disks = snap.disks || [];
  if (!disks.length) return h("p", { class: "muted" }, "This snapshot records no disks.");
  const disk = h(
    "select",
    { id: "volume-disk", name: "volumeid" },
    disks.map((d) => h("option", { value: d.id }, `${d.type === "ROOT" ? "Root disk" : "Data disk"} ${d.name || ""} · ${bytes(d.size)}`)),
  );
  const name = h("input", { id: "volume-name", name: "name", required: true, maxlength: 255, value: `${snap.name}-disk` });
  const message = h("div", { class: "form-message" });
  const submit = h("button", { type: "submit" }, "Create volume");
  return h(
    "form",
    {
      class: "inline-form",
      id: "create-volume",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        replace(message);
        try {
          const answer = await session.call("createVolumeFromVmSnapshot", { vmsnapshotid: snap.id, volumeid: disk.value, name: name.value.trim() });
          go(`${route("jobs", answer.jobid)}?${new URLSearchParams({ command: "createVolumeFromVmSnapshot", name: name.value.trim() })}`);
        } catch (error) {
          replace(message, problem(error, "The volume was not created."));
          submit.disabled = false;
        }
      },
    },
    h("label", { for: "volume-disk" }, "Disk"),
    disk,
    h("label", { for: "volume-name" }, "Volume name"),
    name,
    submit,
    message,
  );
}

function seedButton(session, snap, go) {
  const message = h("div", { class: "form-message" });
  const button = h(
    "button",
    {
      type: "button",
      id: "seed-template",
      onclick: async () => {
        button.disabled = true;
        replace(message);
        try {
          const answer = await session.call("seedTemplateFromVmSnapshot", { zoneid: snap.zoneid, vmsnapshotid: snap.id, storageid: snap.storageid });
          go(`${route("jobs", answer.jobid)}?${new URLSearchParams({ command: "seedTemplateFromVmSnapshot", name: snap.name })}`);
        } catch (error) {
          replace(message, problem(error, "The template was not seeded."));
          button.disabled = false;
        }
      },
    },
    "Seed template on this pool",
  );
  return h("div", {}, h("p", { class: "muted" }, `Copies the root disk as it was at ${snap.name} onto ${snap.storage || "its pool"} once; later deployments are linked clones of it.`), button, message);
}

function snapshotPanel(session, snap, go) {
  const current = snap.current === true || snap.current === "true";
  return h(
    "div",
    { class: "snapshot-panel", id: "snapshot-panel", "data-snapshot-name": snap.name },
    h("h3", {}, snap.name, current ? h("span", { class: "badge badge-accent" }, "current") : null),
    facts([
      ["State", stateBadge(snap.state)],
      ["Created", when(snap.created)],
      ["Parent", snap.parentName || (snap.parent ? snap.parent : "none (a root)")],
      ["vCPUs", snap.cpunumber],
      ["Root disk on", snap.storage || snap.storageid],
      ["Type", snap.type],
      ["Description", snap.description],
    ]),
    h(
      "div",
      { class: "actions" },
      h("a", { class: "button primary", id: "deploy-from-snapshot", href: route("snapshots", snap.id, "deploy") }, "Deploy VM from VM snapshot"),
    ),
    h("h4", {}, "Create volume from this snapshot"),
    volumeForm(session, snap, go),
    session.isAdmin ? [h("h4", {}, "Seed template on this pool"), seedButton(session, snap, go)] : null,
  );
}

async function sourceLink(session, vm, signal) {
  if (!vm.vmsnapshotid) return null;
  try {
    const [snap] = (await session.call("listVMSnapshot", session.scope({ vmsnapshotid: vm.vmsnapshotid }), { signal })).vmSnapshot || [];
    if (snap) return h("a", { href: route("instances", snap.virtualmachineid, "snapshots", snap.id) }, `${snap.name} of ${snap.virtualmachinename || "its VM"}`);
  } catch {
    // The snapshot may be gone since; its id still says where the VM came from.
  }
  return h("span", { class: "mono" }, vm.vmsnapshotid);
}

export async function render({ session, params, query, main, signal, go }) {
  replace(main, loading("Loading the instance…"));
  const [vm] = (await session.call("listVirtualMachines", session.scope({ id: params.vm }), { signal })).virtualmachine || [];
  if (!vm) {
    replace(
      main,
      pageHeader("No such instance"),
      h("div", { class: "notice notice-bad", role: "alert" }, h("strong", {}, "This instance is not visible to you."), h("p", {}, "It does not exist, or it belongs to another account.")),
    );
    return;
  }
  const snapshots = (await session.call("listVMSnapshot", session.scope({ virtualmachineid: vm.id }), { signal })).vmSnapshot || [];
  const source = await sourceLink(session, vm, signal);
  const selected = snapshots.find((snap) => snap.id === params.snapshot);
  const deployed = query.deployed
    ? h(
        "div",
        { class: "notice notice-ok", id: "deployed" },
        h("strong", {}, `${vm.name} is ${vm.state}.`),
        " Deployed from a VM snapshot. ",
        h("a", { href: route("instances", vm.id, "trail") }, "See where the time went →"),
      )
    : null;
  const tree = snapshots.length
    ? h(
        "div",
        { class: "tree-layout" },
        h("div", { class: "tree-scroll" }, snapshotTree(snapshots, { selected: selected?.id, href: (snap) => route("instances", vm.id, "snapshots", snap.id) })),
        selected ? snapshotPanel(session, selected, go) : h("p", { class: "muted hint" }, "Select a VM snapshot to deploy a VM from it or make a volume of one of its disks."),
      )
    : h("p", { class: "muted" }, "This instance has no VM snapshots.");
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: route("instances") }, "Instances"), " / ", vm.name),
    pageHeader(vm.name, stateBadge(vm.state), vm.vmsnapshotid || vm.templateid ? h("a", { class: "button", id: "open-trail", href: route("instances", vm.id, "trail") }, "Deployment timeline") : null),
    deployed,
    h(
      "div",
      { class: "columns" },
      card(
        "Details",
        facts([
          ["Host", vm.hostname],
          ["Compute offering", vm.serviceofferingname ? h("span", { id: "vm-offering" }, vm.serviceofferingname) : null],
          ["vCPUs / memory", vm.cpunumber ? `${vm.cpunumber} vCPU · ${vm.memory} MiB` : null],
          ["Zone", vm.zonename],
          ["Account", vm.account],
          ["Deployed from", source],
          ["Created", when(vm.created)],
          ["ID", h("span", { class: "mono" }, vm.id)],
        ]),
      ),
      card("NICs", nicTable(vm.nic)),
    ),
    card(`VM snapshots (${snapshots.length})`, tree),
  );
}
