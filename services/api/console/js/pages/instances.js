// Instances: state, host, offering and NICs of every VM the caller may see.

import { h, replace, route, stateBadge, when } from "../dom.js";
import { card, loading, pageHeader } from "../ui.js";

export function nicList(nics) {
  const ordered = [...(nics || [])].sort((a, b) => Number(a.deviceid ?? 0) - Number(b.deviceid ?? 0));
  if (!ordered.length) return h("span", { class: "muted" }, "no NICs");
  return h(
    "ol",
    { class: "nics", start: 0 },
    ordered.map((nic) =>
      h(
        "li",
        { "data-network": nic.networkname || "" },
        h("span", { class: "nic-network" }, nic.networkname || nic.networkid),
        nic.ipaddress ? h("span", { class: "nic-ip" }, nic.ipaddress) : null,
      ),
    ),
  );
}

export async function render({ session, main, signal }) {
  replace(main, pageHeader("Instances"), loading("Loading instances…"));
  const vms = await session.list("listVirtualMachines", "virtualmachine", session.scope(), { signal });
  vms.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const rows = vms.map((vm) =>
    h(
      "tr",
      { "data-vm": vm.name },
      h("td", {}, h("a", { href: route("instances", vm.id), class: "vm-link" }, vm.name)),
      h("td", {}, stateBadge(vm.state)),
      h("td", {}, vm.hostname || h("span", { class: "muted" }, "–")),
      h("td", {}, vm.serviceofferingname || "–", vm.cpunumber ? h("span", { class: "muted" }, ` · ${vm.cpunumber} vCPU · ${vm.memory} MiB`) : null),
      h("td", {}, nicList(vm.nic)),
      session.isAdmin ? h("td", {}, vm.account || "–") : null,
      h("td", { class: "muted" }, when(vm.created)),
    ),
  );
  const table = vms.length
    ? h(
        "table",
        { class: "grid", id: "instances" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["Name", "State", "Host", "Offering", "NICs", session.isAdmin ? "Account" : null, "Created"]
              .filter(Boolean)
              .map((title) => h("th", {}, title)),
          ),
        ),
        h("tbody", {}, rows),
      )
    : h("p", { class: "muted" }, "No instances yet.");
  replace(
    main,
    pageHeader("Instances", h("span", { class: "muted" }, `${vms.length} ${vms.length === 1 ? "instance" : "instances"}`)),
    card(null, table),
  );
}
