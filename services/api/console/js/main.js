// The console shell: the top bar, hash routes to pages, and what every page shares.

import { LoggedOut, Session } from "./api.js";
import { h, replace, route } from "./dom.js";
import * as deploy from "./pages/deploy.js";
import * as instance from "./pages/instance.js";
import * as instances from "./pages/instances.js";
import * as job from "./pages/job.js";
import * as login from "./pages/login.js";
import * as pools from "./pages/pools.js";
import * as trail from "./pages/trail.js";
import { problem } from "./ui.js";

const ROUTES = [
  [/^$/, instances.render],
  [/^instances$/, instances.render],
  [/^instances\/([^/]+)$/, instance.render, ["vm"]],
  [/^instances\/([^/]+)\/snapshots\/([^/]+)$/, instance.render, ["vm", "snapshot"]],
  [/^instances\/([^/]+)\/trail$/, trail.render, ["vm"]],
  [/^snapshots\/([^/]+)\/deploy$/, deploy.render, ["snapshot"]],
  [/^jobs\/([^/]+)$/, job.render, ["job"]],
  [/^pools$/, pools.render],
];

const app = document.getElementById("app");
let session = Session.restore();
let current = null; // AbortController of the page on screen

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = raw.split("?");
  return { path, query: Object.fromEntries(new URLSearchParams(search)) };
}

function topBar(active) {
  const link = (href, label, name) =>
    h("a", { href, class: active === name ? "nav-link active" : "nav-link" }, label);
  return h(
    "header",
    { class: "topbar" },
    h("a", { class: "brand", href: route("instances") }, h("span", { class: "brand-mark" }), "snapdeploy"),
    h(
      "nav",
      {},
      link(route("instances"), "Instances", "instances"),
      session.isAdmin ? link(route("pools"), "Storage pools", "pools") : null,
    ),
    h(
      "div",
      { class: "who" },
      h("span", { class: "who-name", "data-user": session.username }, session.username),
      h("span", { class: "who-account" }, session.isAdmin ? "root admin" : `account ${session.account}`),
      h(
        "button",
        {
          class: "link-button",
          type: "button",
          onclick: async () => {
            await session.logout();
            session = null;
            show();
          },
        },
        "Log out",
      ),
    ),
  );
}

async function show() {
  current?.abort();
  current = new AbortController();
  const { signal } = current;
  const { path, query } = parseHash();
  if (!session) {
    replace(app, h("main", { class: "page page-narrow" }));
    login.render({
      main: app.firstChild,
      query,
      signedIn: (fresh) => {
        session = fresh;
        show();
      },
    });
    return;
  }
  const [pattern, render, names = []] = ROUTES.find(([re]) => re.test(path)) || [];
  const main = h("main", { class: "page" });
  replace(app, topBar(path.split("/")[0] || "instances"), main);
  if (!render) {
    replace(main, h("div", { class: "notice" }, "There is no such page. ", h("a", { href: route("instances") }, "Instances")));
    return;
  }
  const values = pattern.exec(path).slice(1).map(decodeURIComponent);
  const params = Object.fromEntries(names.map((name, i) => [name, values[i]]));
  // A finished job replaces its own page in the history: Back does not poll it again.
  const go = (hash, { replace: inPlace = false } = {}) => {
    if (inPlace) location.replace(hash);
    else location.hash = hash;
  };
  try {
    await render({ session, params, query, signal, main, go });
  } catch (error) {
    if (signal.aborted) return;
    if (error instanceof LoggedOut) {
      session.forget();
      session = null;
      show();
      return;
    }
    main.append(problem(error, "This page could not be loaded."));
  }
}

window.addEventListener("hashchange", show);
show();
