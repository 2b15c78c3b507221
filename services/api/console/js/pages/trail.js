// A deployment's audit trail as a timeline, then every entry as a table for reading.

import { ApiError } from "../api.js";
import { duration, h, parseDate, replace, route, s, stateBadge } from "../dom.js";
import { phases, timeline } from "../timeline.js";
import { card, loading, pageHeader } from "../ui.js";

function clock(value) {
  const date = parseDate(value);
  if (!date) return "–";
  const time = date.toLocaleTimeString(undefined, { hour12: false, hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return `${time}.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

function span(entries) {
  const times = entries.map((e) => parseDate(e.at)?.getTime()).filter((t) => t !== undefined);
  return times.length ? Math.max(...times) - Math.min(...times) : 0;
}

function entryTable(entries) {
  return h(
    "table",
    { class: "grid compact", id: "trail-entries" },
    h("thead", {}, h("tr", {}, ["Time", "Kind", "Service", "Name", "State", "Took", "Description"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      entries.map((e) =>
        h(
          "tr",
          { class: String(e.state).toLowerCase() === "error" || /Failed$/.test(e.name) ? "row-bad" : "" },
          h("td", { class: "mono" }, clock(e.at)),
          h("td", {}, e.kind === "task" ? "vCenter task" : e.kind),
          h("td", {}, e.service || "–"),
          h("td", { class: "mono" }, e.name),
          h("td", {}, e.state || ""),
          h("td", { class: "num" }, e.durationms === null || e.durationms === undefined ? "" : duration(e.durationms)),
          h("td", { class: "description" }, e.description || ""),
        ),
      ),
    ),
  );
}

function glanceTable(steps) {
  const widest = Math.max(...steps.map((step) => step.share), 0.01);
  return h(
    "table",
    { class: "glance", id: "where-the-time-went" },
    h(
      "tbody",
      {},
      steps.map((step) =>
        h(
          "tr",
          { "data-phase": step.phase, class: step.gap ? "glance-gap" : null },
          h("td", { class: "glance-phase" }, step.phase),
          h("td", { class: "glance-bar" }, s("svg", { width: 260, height: 12, viewBox: "0 0 260 12" }, s("rect", { class: "glance-fill", x: 0, y: 1, width: Math.max(2, (258 * step.share) / widest), height: 10, rx: 3 }))),
          h("td", { class: "num" }, duration(step.ms)),
          h("td", { class: "num muted" }, `${Math.round(step.share * 100)}%`),
        ),
      ),
    ),
  );
}

export async function render({ session, params, main, signal }) {
  replace(main, loading("Loading the deployment's trail…"));
  const [vm] = (await session.call("listVirtualMachines", session.scope({ id: params.vm }), { signal })).virtualmachine || [];
  let entries = [];
  try {
    const { trail } = await session.call("getDeploymentTrail", { virtualmachineid: params.vm }, { signal });
    entries = trail?.entries || [];
  } catch (error) {
    // 431: the VM was adopted or made some other way, so no deployment of it was recorded.
    if (!(error instanceof ApiError) || error.code !== 431) throw error;
  }
  const name = vm?.name || params.vm;
  const crumbs = h("p", { class: "crumbs" }, h("a", { href: route("instances") }, "Instances"), " / ", h("a", { href: route("instances", params.vm) }, name), " / timeline");
  if (!entries.length) {
    replace(main, crumbs, pageHeader(`Timeline of ${name}`), card(null, h("p", { class: "muted" }, "No trail is recorded for this instance.")));
    return;
  }
  const total = span(entries);
  const steps = phases(entries);
  const tasks = entries.filter((e) => e.kind === "task").length;
  const commands = entries.filter((e) => e.kind === "command").length;
  const glance = steps.length ? glanceTable(steps) : null;
  replace(
    main,
    crumbs,
    pageHeader(`Timeline of ${name}`, vm ? stateBadge(vm.state) : null),
    card(
      null,
      h("p", { class: "lead", id: "trail-summary" }, `${duration(total)} from the first command to the last event: ${commands} commands, ${tasks} vCenter tasks.`),
      glance ? [h("h3", {}, "Where the time went"), glance] : null,
      h("h3", {}, "Every command and vCenter task"),
      h(
        "div",
        { class: "legend" },
        ["api", "planner", "storage", "agent", "vcenter"].map((svc) => h("span", { class: "legend-item" }, h("span", { class: `swatch tl-svc-${svc}` }), svc === "vcenter" ? "vCenter task" : `command from ${svc}`)),
        h("span", { class: "legend-item" }, h("span", { class: "swatch swatch-failed" }), "failed"),
      ),
      h("div", { class: "timeline-scroll" }, timeline(entries)),
    ),
    card(null, h("details", { class: "entries" }, h("summary", {}, `Every entry of the trail (${entries.length})`), entryTable(entries))),
  );
}
