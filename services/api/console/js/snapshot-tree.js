// A VM's snapshots drawn as a tree, parents above their children, like vSphere's snapshot
// manager: the current snapshot is marked and "You are here" hangs from it.

import { parseDate, s } from "./dom.js";

const W = 158;
const H = 46;
const COLUMN_GAP = 18; // between siblings
const LEVEL_GAP = 34; // between a parent and its children
const PAD = 14;

function created(snapshot) {
  return parseDate(snapshot.created)?.getTime() ?? 0;
}

/** A level (depth) and a column for every snapshot; a snapshot whose parent is not listed is a root. */
export function layout(snapshots) {
  const byId = new Map(snapshots.map((snap) => [snap.id, { snap, children: [] }]));
  const roots = [];
  for (const node of byId.values()) {
    const parent = byId.get(node.snap.parent);
    (parent && parent !== node ? parent.children : roots).push(node);
  }
  const order = (a, b) => created(a.snap) - created(b.snap) || String(a.snap.name).localeCompare(String(b.snap.name));
  const current = [...byId.values()].find((node) => node.snap.current === true || node.snap.current === "true");
  if (current) current.children.push({ here: true, children: [] });
  let nextRow = 0;
  let depth = 0;
  const placed = [];
  const place = (node, level) => {
    node.depth = level;
    depth = Math.max(depth, level);
    const children = node.here ? [] : node.children.filter((c) => !c.here).sort(order).concat(node.children.filter((c) => c.here));
    node.children = children;
    if (!children.length) {
      node.row = nextRow;
      nextRow += 1;
    } else {
      children.forEach((child) => place(child, level + 1));
      node.row = (children[0].row + children[children.length - 1].row) / 2;
    }
    placed.push(node);
  };
  roots.sort(order).forEach((root) => place(root, 0));
  return { nodes: placed, rows: nextRow, columns: depth + 1 };
}

// `row` counts leaves across, `depth` levels down.
const x = (node) => PAD + node.row * (W + COLUMN_GAP);
const y = (node) => PAD + node.depth * (H + LEVEL_GAP);

function shortName(name, limit = 15) {
  const text = String(name ?? "");
  return text.length > limit ? `${text.slice(0, limit - 1)}…` : text;
}

function shortTime(value) {
  const date = parseDate(value);
  return date ? date.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" }) : "";
}

function edge(parent, child) {
  const x1 = x(parent) + W / 2;
  const y1 = y(parent) + H;
  const x2 = x(child) + W / 2;
  const y2 = y(child) + (child.here ? 8 : 0);
  const mid = y1 + LEVEL_GAP / 2;
  return s("path", { class: child.here ? "tree-edge tree-edge-here" : "tree-edge", d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}` });
}

function hereNode(node) {
  const width = 112;
  const height = H - 16;
  return s(
    "g",
    { class: "tree-here", transform: `translate(${x(node) + (W - width) / 2},${y(node) + 8})` },
    s("rect", { width, height, rx: height / 2 }),
    s("text", { x: width / 2, y: height / 2 + 4, "text-anchor": "middle" }, "You are here"),
  );
}

function snapshotNode(node, { selected, href }) {
  const snap = node.snap;
  const current = snap.current === true || snap.current === "true";
  const classes = ["snap-node", current ? "current" : "", snap.id === selected ? "selected" : "", snap.state && snap.state !== "Ready" ? "not-ready" : ""];
  return s(
    "a",
    {
      href: href(snap),
      class: classes.filter(Boolean).join(" "),
      "data-snapshot-id": snap.id,
      "data-snapshot-name": snap.name,
      "aria-label": `VM snapshot ${snap.name}${current ? " (current)" : ""}`,
    },
    s("title", {}, `${snap.name}${snap.description ? ` — ${snap.description}` : ""}`),
    s("rect", { x: x(node), y: y(node), width: W, height: H, rx: 8 }),
    s("circle", { class: "snap-dot", cx: x(node) + 16, cy: y(node) + H / 2, r: 5 }),
    s("text", { class: "snap-name", x: x(node) + 30, y: y(node) + 19 }, shortName(snap.name)),
    s("text", { class: "snap-meta", x: x(node) + 30, y: y(node) + 35 }, snap.state && snap.state !== "Ready" ? snap.state : shortTime(snap.created)),
    current ? s("g", { class: "snap-current-tag" }, s("rect", { x: x(node) + W - 58, y: y(node) - 8, width: 54, height: 16, rx: 8 }), s("text", { x: x(node) + W - 31, y: y(node) + 3.5, "text-anchor": "middle" }, "current")) : null,
  );
}

/** The tree as an SVG element; `href(snapshot)` gives each node's link. */
export function snapshotTree(snapshots, { selected, href }) {
  const { nodes, rows, columns } = layout(snapshots);
  const width = PAD * 2 + rows * W + Math.max(0, rows - 1) * COLUMN_GAP;
  const height = PAD * 2 + columns * H + (columns - 1) * LEVEL_GAP;
  const edges = nodes.flatMap((node) => node.children.map((child) => edge(node, child)));
  return s(
    "svg",
    { class: "snapshot-tree", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "VM snapshot tree" },
    s("g", {}, edges),
    s("g", {}, nodes.map((node) => (node.here ? hereNode(node) : snapshotNode(node, { selected, href })))),
  );
}
