// Building the page without ever parsing markup: every value from the api becomes a text node or
// an attribute value, so nothing a user or vCenter named can turn into HTML or script.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "text") {
      element.textContent = String(value);
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** An HTML element: h("a", {href: "#/pools", class: "nav"}, "Pools"). */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** An SVG element, same call shape as h(). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Replace everything inside an element. */
export function replace(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

/** A route link; every part is URI-encoded so an id can never leave its path segment. */
export function route(...parts) {
  return "#/" + parts.map((part) => encodeURIComponent(String(part))).join("/");
}

export function bytes(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let size = n;
  let unit = 0;
  while (Math.abs(size) >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size >= 100 || unit === 0 ? size.toFixed(0) : size.toFixed(1)} ${units[unit]}`;
}

export function duration(ms) {
  const n = Number(ms);
  if (!Number.isFinite(n)) return "–";
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60000) return `${(n / 1000).toFixed(n < 10000 ? 2 : 1)} s`;
  return `${Math.floor(n / 60000)} min ${Math.round((n % 60000) / 1000)} s`;
}

/** CloudStack dates ("2025-03-01T10:15:00+0000") as the browser's local time. */
export function parseDate(value) {
  if (!value) return null;
  const iso = String(value).replace(/([+-]\d\d)(\d\d)$/, "$1:$2");
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

export function when(value) {
  const date = parseDate(value);
  if (!date) return "–";
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
}

/** A state as a coloured badge (class from a fixed list, never from the value itself). */
export function stateBadge(state) {
  const known = {
    running: "ok",
    ready: "ok",
    up: "ok",
    implemented: "ok",
    allocated: "neutral",
    stopped: "neutral",
    starting: "busy",
    stopping: "busy",
    creating: "busy",
    reverting: "busy",
    seeding: "busy",
    error: "bad",
    destroyed: "bad",
    expunging: "bad",
  };
  const tone = known[String(state || "").toLowerCase()] || "neutral";
  return h("span", { class: `badge badge-${tone}`, "data-state": state || "" }, state || "unknown");
}
