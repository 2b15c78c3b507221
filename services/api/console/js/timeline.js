// A deployment's trail as bars on one time axis: every command from when it was sent until its
// reply, every vCenter task as vCenter timed it; events are ticks on the bottom lane.

import { duration, parseDate, s } from "./dom.js";

const LABEL = 300;
const CHART = 720;
const ROW = 26;
const AXIS = 28;
const PAD = 10;

function ms(entry) {
  return parseDate(entry.at)?.getTime();
}

/** Bars and ticks from trail entries: commands start at `at`; tasks, replies and actions end there. */
export function bars(entries) {
  const items = [];
  const open = [];
  const ticks = [];
  for (const entry of entries) {
    const at = ms(entry);
    if (at === undefined) continue;
    const took = Number(entry.durationms);
    const known = Number.isFinite(took) && entry.durationms !== null;
    if (entry.kind === "command") {
      const bar = { entry, start: at, end: known ? at + took : null, lane: "command", failed: false };
      items.push(bar);
      open.push(bar);
    } else if (entry.kind === "task") {
      items.push({ entry, start: known ? at - took : at, end: at, lane: "task", failed: String(entry.state).toLowerCase() === "error" });
    } else if (entry.kind === "reply") {
      const command = String(entry.name).replace(/(Succeeded|Failed)$/, "");
      const bar = [...open].reverse().find((b) => b.entry.name === command && b.start <= at);
      if (bar) {
        open.splice(open.indexOf(bar), 1);
        bar.end = bar.end ?? at;
        bar.failed = /Failed$/.test(entry.name);
        bar.reply = entry;
      }
    } else {
      ticks.push({ entry, at });
    }
  }
  return { items: items.sort((a, b) => a.start - b.start), ticks };
}

function niceStep(span) {
  const rough = span / 6;
  const power = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough) || power * 10;
}

function shorten(text, limit) {
  const value = String(text ?? "");
  return value.length > limit ? `${value.slice(0, limit - 1)}…` : value;
}

/** The SVG timeline; `origin` and `end` bound the axis (epoch ms). */
export function timeline(entries) {
  const { items, ticks } = bars(entries);
  const times = [...items.flatMap((b) => [b.start, b.end ?? b.start]), ...ticks.map((t) => t.at)];
  const origin = Math.min(...times);
  const last = Math.max(...times);
  const span = Math.max(last - origin, 1);
  const scale = (t) => LABEL + (CHART * (t - origin)) / span;
  const step = niceStep(span);
  const rows = items.length + (ticks.length ? 1 : 0);
  const height = AXIS + rows * ROW + PAD * 2;
  const width = LABEL + CHART + 90;
  const grid = [];
  for (let t = 0; t <= span; t += step) {
    const gx = scale(origin + t);
    grid.push(s("line", { class: "tl-grid", x1: gx, x2: gx, y1: AXIS - 6, y2: height - PAD }));
    grid.push(s("text", { class: "tl-axis", x: gx, y: AXIS - 10, "text-anchor": "middle" }, duration(t)));
  }
  const rowsDrawn = items.map((bar, index) => {
    const top = AXIS + PAD + index * ROW;
    const x1 = scale(bar.start);
    const x2 = Math.max(scale(bar.end ?? last), x1 + 2);
    const service = bar.lane === "task" ? "vcenter" : String(bar.entry.service || "other").toLowerCase().replace(/[^a-z-]/g, "");
    const took = bar.end === null ? "no reply" : duration(bar.end - bar.start);
    return s(
      "g",
      { class: `tl-row tl-${bar.lane}${bar.failed ? " tl-failed" : ""}`, "data-name": bar.entry.name, "data-kind": bar.entry.kind },
      s("title", {}, `${bar.entry.name} (${bar.lane === "task" ? "vCenter task" : `command from ${bar.entry.service}`}) ${took}${bar.entry.description ? `\n${bar.entry.description}` : ""}${bar.reply?.description ? `\n${bar.reply.description}` : ""}`),
      index % 2 ? s("rect", { class: "tl-stripe", x: 0, y: top - 3, width, height: ROW }) : null,
      s("text", { class: "tl-label", x: bar.lane === "task" ? 22 : 8, y: top + 14 }, shorten(bar.entry.name, 28)),
      s("text", { class: "tl-service", x: LABEL - 10, y: top + 14, "text-anchor": "end" }, bar.lane === "task" ? "vCenter" : bar.entry.service || ""),
      s("rect", { class: `tl-bar tl-svc-${service}`, x: x1, y: top + 2, width: x2 - x1, height: ROW - 10, rx: 3 }),
      s("text", { class: "tl-duration", x: x2 + 6, y: top + 14 }, took),
    );
  });
  const tickLane = ticks.length
    ? s(
        "g",
        { class: "tl-events" },
        s("text", { class: "tl-label", x: 8, y: AXIS + PAD + items.length * ROW + 14 }, `Events (${ticks.length})`),
        ticks.map((tick) => {
          const tx = scale(tick.at);
          const ty = AXIS + PAD + items.length * ROW + 10;
          return s("path", { class: "tl-tick", d: `M${tx},${ty - 6} L${tx + 5},${ty} L${tx},${ty + 6} L${tx - 5},${ty} Z` }, s("title", {}, `${tick.entry.name}${tick.entry.description ? `: ${tick.entry.description}` : ""}`));
        }),
      )
    : null;
  return s(
    "svg",
    { class: "timeline", id: "timeline", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "Deployment timeline" },
    s("g", {}, grid),
    s("g", {}, rowsDrawn),
    tickLane,
  );
}

// The saga's steps in words, by the command that does each one.
const PHASES = {
  GetVmSnapshotConfigs: "reading the snapshot's configuration",
  SeedTemplateFromVmSnapshot: "seeding the template",
  SeedTemplate: "seeding the template",
  AllocateRootVolume: "allocating the root volume",
  CloneFromSnapshot: "cloning",
  ReconfigureVm: "reconfiguring",
  RecordVirtualMachine: "recording the root volume",
  AttachNic: "adding NICs",
  PowerOnVm: "powering on",
};

/**
 * Where the time went: the outermost bars (not inside another bar but the whole job's), summed
 * per step, longest first, as [{phase, ms, share}] of the whole.
 */
export function phases(entries) {
  const measured = bars(entries).items.filter((b) => b.end !== null);
  if (!measured.length) return [];
  const root = measured.reduce((a, b) => (b.end - b.start > a.end - a.start ? b : a));
  const contains = (outer, inner) =>
    outer !== inner &&
    outer !== root &&
    outer.start <= inner.start &&
    inner.end <= outer.end &&
    (outer.end - outer.start > inner.end - inner.start || measured.indexOf(outer) < measured.indexOf(inner));
  const outermost = measured.filter((b) => b !== root && !measured.some((other) => contains(other, b)));
  const total = root.end - root.start || 1;
  const sums = new Map();
  for (const bar of outermost) {
    const phase = PHASES[bar.entry.name] || bar.entry.name;
    sums.set(phase, (sums.get(phase) || 0) + (bar.end - bar.start));
  }
  const steps = [...sums].map(([phase, ms]) => ({ phase, ms, share: ms / total })).sort((a, b) => b.ms - a.ms);
  // What no step accounts for: messages on their way and waiting in queues between steps.
  const between = total - steps.reduce((sum, step) => sum + step.ms, 0);
  return between > 0 ? [...steps, { phase: "between steps (the bus)", ms: between, share: between / total, gap: true }] : steps;
}
