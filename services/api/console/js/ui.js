// Pieces every page uses: cards, facts, notices, the loading line.

import { ApiError } from "./api.js";
import { h } from "./dom.js";
import { codeInWords } from "./words.js";

export function card(title, ...children) {
  return h("section", { class: "card" }, title ? h("h2", {}, title) : null, ...children);
}

/** A definition list of [label, value] pairs; empty values are left out. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}

export function loading(what) {
  return h("p", { class: "loading" }, h("span", { class: "spinner" }), what);
}

/** A refusal or failure from the api, in words first and the api's own text after. */
export function problem(error, what) {
  const code = error instanceof ApiError ? error.code : null;
  const detail = error?.text || error?.message;
  return h(
    "div",
    { class: "notice notice-bad", role: "alert", "data-error-code": code || "" },
    h("strong", {}, what),
    h("p", {}, code ? codeInWords(code) : "The console could not reach the api."),
    detail ? h("p", { class: "detail" }, detail) : null,
  );
}

export function pageHeader(title, ...extra) {
  return h("div", { class: "page-header" }, h("h1", {}, title), ...extra);
}
