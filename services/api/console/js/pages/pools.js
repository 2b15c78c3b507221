// Storage pools: capacity as bars (used, allocated, the over-provisioning limit), and the seeded
// templates on each pool with the VMs whose root disks hang from them.

import { bytes, h, replace, route, s, stateBadge, when } from "../dom.js";
import { card, loading, pageHeader } from "../ui.js";

const BAR_W = 1080;

/** Used, allocated and the limit (total × over-provisioning factor) on one scale. */
export function capacityBar(pool) {
  const total = Number(pool.disksizetotal) || 0;
  const factor = Number(pool.overprovisionfactor) || 1;
  const limit = total * factor;
  const used = Number(pool.disksizeused) || 0;
  const allocated = Number(pool.disksizeallocated) || 0;
  const top = Math.max(limit, allocated, used, 1);
  const w = (value) => Math.max(0, Math.min(BAR_W, (BAR_W * value) / top));
  // Two lanes on one scale, allocated above used, so neither hides the other.
  return s(
    "svg",
    { class: "capacity", width: BAR_W + 2, height: 54, viewBox: `0 0 ${BAR_W + 2} 54`, role: "img", "aria-label": `Capacity of ${pool.name}` },
    s("rect", { class: "cap-track", x: 1, y: 6, width: BAR_W, height: 30, rx: 4 }),
    s("rect", { class: "cap-physical", x: 1, y: 6, width: w(total), height: 30, rx: 4 }),
    s("rect", { class: allocated > limit ? "cap-allocated cap-over" : "cap-allocated", x: 1, y: 9, width: w(allocated), height: 11, rx: 2 }, s("title", {}, `Allocated ${bytes(allocated)}`)),
    s("rect", { class: "cap-used", x: 1, y: 22, width: w(used), height: 11, rx: 2 }, s("title", {}, `Used ${bytes(used)}`)),
    s("line", { class: "cap-total", x1: 1 + w(total), x2: 1 + w(total), y1: 2, y2: 40 }),
    s("line", { class: "cap-limit", x1: 1 + w(limit), x2: 1 + w(limit), y1: 0, y2: 42 }),
    factor !== 1 ? s("text", { class: "cap-label", x: 1 + w(total), y: 52, "text-anchor": "middle" }, "disk size") : null,
    s("text", { class: "cap-label", x: w(limit), y: 52, "text-anchor": "end" }, `limit ×${factor}`),
  );
}

function legend(pool) {
  const total = Number(pool.disksizetotal) || 0;
  const factor = Number(pool.overprovisionfactor) || 1;
  const item = (cls, label, value) => h("span", { class: "legend-item" }, h("span", { class: `swatch ${cls}` }), `${label} `, h("strong", {}, value));
  return h(
    "div",
    { class: "legend" },
    item("cap-used", "Used", bytes(pool.disksizeused)),
    item("cap-allocated", "Allocated", bytes(pool.disksizeallocated)),
    item("cap-physical", "Disk size", bytes(total)),
    item("cap-limit-swatch", "Limit", `${bytes(total * factor)} (×${factor})`),
  );
}

function seedTree(seeds, vmNames) {
  if (!seeds.length) return h("p", { class: "muted" }, "No seeded templates on this pool yet: the first deployment from a VM snapshot seeds one.");
  return h(
    "ul",
    { class: "seeds" },
    seeds.map((seed) =>
      h(
        "li",
        { class: "seed", "data-seed": seed.vmsnapshotname || seed.id },
        h(
          "div",
          { class: "seed-head" },
          h("span", { class: "seed-icon" }),
          h("strong", {}, `Seed of ${seed.vmsnapshotname || seed.vmsnapshotid}`),
          stateBadge(seed.state),
          h("span", { class: "muted" }, ` ${bytes(seed.size)} · ${when(seed.created)}`),
        ),
        h("div", { class: "mono muted seed-path" }, seed.installpath || ""),
        (seed.virtualmachineids || []).length
          ? h(
              "ul",
              { class: "seed-vms" },
              seed.virtualmachineids.map((id) => h("li", {}, h("a", { href: route("instances", id) }, vmNames.get(id) || id))),
            )
          : h("p", { class: "muted seed-none" }, "No VM hangs from it."),
      ),
    ),
  );
}

export async function render({ session, main, signal }) {
  replace(main, pageHeader("Storage pools"), loading("Loading pools…"));
  const [pools, vms] = await Promise.all([
    session.list("listStoragePools", "storagepool", {}, { signal }),
    session.list("listVirtualMachines", "virtualmachine", session.scope(), { signal }),
  ]);
  const vmNames = new Map(vms.map((vm) => [vm.id, vm.name]));
  pools.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const seeds = await Promise.all(pools.map((pool) => session.list("listSeededTemplates", "seededtemplate", { storageid: pool.id }, { signal })));
  replace(
    main,
    pageHeader("Storage pools", h("span", { class: "muted" }, `${pools.length} pools`)),
    pools.map((pool, index) =>
      h(
        "section",
        { class: "card pool", "data-pool": pool.name },
        h("div", { class: "pool-head" }, h("h2", {}, pool.name), stateBadge(pool.state), h("span", { class: "muted" }, [pool.type, pool.zonename, pool.clustername].filter(Boolean).join(" · "))),
        capacityBar(pool),
        legend(pool),
        h("h3", {}, `Seeded templates (${seeds[index].length})`),
        seedTree(seeds[index], vmNames),
      ),
    ),
  );
}
