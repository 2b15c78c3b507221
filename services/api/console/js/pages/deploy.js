// Deploy VM from VM snapshot: the usual deployment widget without the zone and template step.
// Only offerings with the snapshot's vCPU count can be chosen (the others say why), networks
// become NICs in the order chosen, and admins may pin a host that reaches the snapshot's pool.

import { ApiError } from "../api.js";
import { bytes, h, replace, route, when } from "../dom.js";
import { card, facts, loading, pageHeader, problem } from "../ui.js";

const VM_NAME = /^[a-zA-Z][a-zA-Z0-9-]{0,61}[a-zA-Z0-9]$|^[a-zA-Z]$/;

function refusal(session, snapshotId, error) {
  return [
    pageHeader("Deploy VM from VM snapshot"),
    error instanceof ApiError
      ? problem(error, "You cannot deploy from this VM snapshot. Nothing was deployed.")
      : h(
          "div",
          { class: "notice notice-bad", role: "alert", id: "refusal" },
          h("strong", {}, "You cannot deploy from this VM snapshot. Nothing was deployed."),
          h("p", {}, `No VM snapshot ${snapshotId} is visible to ${session.isAdmin ? "you" : `account ${session.account}`}: it does not exist, or it belongs to another account.`),
          h("p", {}, h("a", { href: route("instances") }, "Back to your instances")),
        ),
  ];
}

export function offeringFits(offering, snap) {
  if (snap.cpunumber === undefined || snap.cpunumber === null) return null;
  if (Number(offering.cpunumber) === Number(snap.cpunumber)) return null;
  return `Has ${offering.cpunumber} vCPUs; the VM had ${snap.cpunumber} at ${snap.name}, and they must match (memory may differ).`;
}

function offeringChoice(offerings, snap) {
  const rows = offerings
    .map((offering) => ({ offering, why: offeringFits(offering, snap) }))
    .sort((a, b) => Number(Boolean(a.why)) - Number(Boolean(b.why)) || String(a.offering.name).localeCompare(String(b.offering.name)));
  const firstFit = rows.find((row) => !row.why);
  const fits = rows.filter((row) => !row.why).length;
  return h(
    "fieldset",
    { class: "choices", id: "offerings" },
    h("legend", {}, "Compute offering"),
    h("p", { class: "muted", id: "offerings-note" }, snap.cpunumber ? `${fits} of ${offerings.length} offerings fit: a VM deployed from ${snap.name} keeps the ${snap.cpunumber} vCPUs the VM had then.` : "This snapshot does not record its vCPUs."),
    rows.map(({ offering, why }) =>
      h(
        "label",
        { class: why ? "choice unavailable" : "choice", "data-offering": offering.name },
        h("input", { type: "radio", name: "serviceofferingid", value: offering.id, disabled: Boolean(why), checked: offering === firstFit?.offering, required: true }),
        h("span", { class: "choice-title" }, offering.name),
        h("span", { class: "choice-spec" }, `${offering.cpunumber} vCPU · ${offering.cpuspeed} MHz · ${offering.memory} MiB`),
        why ? h("span", { class: "choice-why" }, why) : null,
      ),
    ),
    offerings.length ? null : h("p", { class: "notice" }, "There are no compute offerings yet."),
  );
}

function networkChooser(networks) {
  const chosen = [];
  const available = h("ul", { class: "network-list", id: "networks-available" });
  const order = h("ol", { class: "nic-order", id: "nic-order", start: 0 });
  const byId = new Map(networks.map((n) => [n.id, n]));
  const move = (index, by) => {
    const [id] = chosen.splice(index, 1);
    chosen.splice(index + by, 0, id);
    draw();
  };
  const draw = () => {
    replace(
      available,
      networks.map((network) =>
        h(
          "li",
          { "data-network": network.name },
          h("span", { class: "net-name" }, network.name),
          h("span", { class: "muted" }, [network.type, network.cidr || network.vlan].filter(Boolean).join(" · ")),
          h("button", { type: "button", class: "small", disabled: chosen.includes(network.id), onclick: () => { chosen.push(network.id); draw(); } }, chosen.includes(network.id) ? "Added" : "Add"),
        ),
      ),
    );
    replace(
      order,
      chosen.length
        ? chosen.map((id, index) =>
            h(
              "li",
              { "data-network": byId.get(id).name },
              h("span", { class: "nic-index" }, `NIC ${index}`),
              h("span", { class: "net-name" }, byId.get(id).name),
              h("span", { class: "nic-buttons" },
                h("button", { type: "button", class: "small", title: "Earlier", "aria-label": "Move earlier", disabled: index === 0, onclick: () => move(index, -1) }, "↑"),
                h("button", { type: "button", class: "small", title: "Later", "aria-label": "Move later", disabled: index === chosen.length - 1, onclick: () => move(index, 1) }, "↓"),
                h("button", { type: "button", class: "small", title: "Remove", "aria-label": "Remove", onclick: () => { chosen.splice(index, 1); draw(); } }, "✕"),
              ),
            ),
          )
        : h("li", { class: "empty muted" }, "No network chosen: the VM gets no NIC."),
    );
  };
  draw();
  const element = h(
    "fieldset",
    { class: "networks" },
    h("legend", {}, "Guest networks"),
    h("p", { class: "muted" }, "Each network you add becomes a NIC, in this order."),
    h("div", { class: "network-columns" }, h("div", {}, h("h4", {}, "Available"), available), h("div", {}, h("h4", {}, "NICs in order"), order)),
  );
  return { element, chosen };
}

function hostChoice(session, hosts, snap) {
  if (!session.isAdmin) return { element: null, value: () => undefined };
  const select = h(
    "select",
    { id: "host", name: "hostid" },
    h("option", { value: "" }, "Any host that reaches the pool (the planner chooses)"),
    hosts.map((host) => h("option", { value: host.id }, `${host.name}${host.clustername ? ` · ${host.clustername}` : ""}`)),
  );
  const element = h(
    "fieldset",
    {},
    h("legend", {}, "Host (optional)"),
    select,
    h("p", { class: "muted" }, `Only the ${hosts.length} hosts that reach ${snap.storage || "the snapshot's pool"} are listed: the new VM's root disk is a linked clone there.`),
  );
  return { element, value: () => select.value || undefined };
}

function summary(snap) {
  return card(
    "From VM snapshot",
    facts([
      ["Snapshot", h("a", { href: route("instances", snap.virtualmachineid, "snapshots", snap.id) }, snap.name)],
      ["Of VM", snap.virtualmachinename],
      ["Taken", when(snap.created)],
      ["vCPUs", snap.cpunumber],
      ["Root disk on", snap.storage || snap.storageid],
      ["Disks", (snap.disks || []).map((d) => `${d.type} ${bytes(d.size)}`).join(", ")],
      ["Zone", snap.zonename],
    ]),
    h("p", { class: "muted" }, "No zone and no template to choose: the VM gets the snapshot's zone, disks and guest OS."),
  );
}

export async function render({ session, params, main, signal, go }) {
  replace(main, loading("Loading the VM snapshot…"));
  let snap;
  try {
    [snap] = (await session.call("listVMSnapshot", session.scope({ vmsnapshotid: params.snapshot }), { signal })).vmSnapshot || [];
  } catch (error) {
    if (!(error instanceof ApiError) || error.code === 401) throw error;
    replace(main, ...refusal(session, params.snapshot, error));
    return;
  }
  if (!snap) {
    replace(main, ...refusal(session, params.snapshot, null));
    return;
  }
  const [offerings, networks, hosts] = await Promise.all([
    session.list("listServiceOfferings", "serviceoffering", {}, { signal }),
    // Filtered here rather than by zoneid: a user's call should not depend on seeing the zone's hosts.
    session.list("listNetworks", "network", session.scope(), { signal }).then((all) => all.filter((n) => !n.zoneid || n.zoneid === snap.zoneid)),
    session.isAdmin ? session.list("listHosts", "host", { storageid: snap.storageid }, { signal }) : [],
  ]);
  const name = h("input", { id: "vm-name", name: "name", required: true, maxlength: 63, autocomplete: "off", placeholder: "web-1" });
  const networkPart = networkChooser(networks);
  const hostPart = hostChoice(session, hosts, snap);
  const message = h("div", { class: "form-message", id: "deploy-message" });
  const submit = h("button", { type: "submit", class: "primary", id: "deploy" }, "Deploy VM");
  const form = h(
    "form",
    {
      class: "card deploy-form",
      id: "deploy-form",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        replace(message);
        const offering = form.querySelector('input[name="serviceofferingid"]:checked');
        const vmName = name.value.trim();
        if (!VM_NAME.test(vmName)) {
          replace(message, h("div", { class: "notice notice-bad", role: "alert" }, h("strong", {}, "Nothing was deployed."), h("p", {}, "A VM name is 1 to 63 letters, digits and hyphens, starting with a letter and not ending with a hyphen.")));
          name.focus();
          return;
        }
        if (!offering) {
          replace(message, h("div", { class: "notice notice-bad", role: "alert" }, h("strong", {}, "Nothing was deployed."), h("p", {}, "Choose a compute offering.")));
          return;
        }
        submit.disabled = true;
        try {
          const answer = await session.call("deployVirtualMachine", {
            vmsnapshotid: snap.id,
            serviceofferingid: offering.value,
            name: vmName,
            networkids: networkPart.chosen.join(","),
            hostid: hostPart.value(),
          });
          go(`${route("jobs", answer.jobid)}?${new URLSearchParams({ command: "deployVirtualMachine", name: vmName })}`);
        } catch (error) {
          replace(message, problem(error, "Nothing was deployed."));
          submit.disabled = false;
        }
      },
    },
    h("label", { for: "vm-name" }, "Name"),
    name,
    offeringChoice(offerings, snap),
    networkPart.element,
    hostPart.element,
    message,
    h("div", { class: "actions" }, submit, h("a", { class: "button", href: route("instances", snap.virtualmachineid, "snapshots", snap.id) }, "Cancel")),
  );
  replace(
    main,
    h("p", { class: "crumbs" }, h("a", { href: route("instances") }, "Instances"), " / ", h("a", { href: route("instances", snap.virtualmachineid) }, snap.virtualmachinename || "VM"), " / ", snap.name),
    pageHeader("Deploy VM from VM snapshot"),
    h("div", { class: "deploy-layout" }, form, summary(snap)),
  );
  name.focus();
}
