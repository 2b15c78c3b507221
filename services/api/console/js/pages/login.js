// Log in with a username and password through the api's own `login` command.

import { Session } from "../api.js";
import { h, replace } from "../dom.js";
import { problem } from "../ui.js";

export function render({ main, signedIn }) {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true, maxlength: 255 });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
    maxlength: 255,
  });
  const domain = h("input", { id: "domain", name: "domain", value: "/", maxlength: 255 });
  const message = h("div", { class: "form-message" });
  const submit = h("button", { type: "submit", class: "primary" }, "Log in");
  const form = h(
    "form",
    {
      class: "card login",
      onsubmit: async (event) => {
        event.preventDefault();
        submit.disabled = true;
        replace(message);
        try {
          signedIn(await Session.login(username.value.trim(), password.value, domain.value.trim()));
        } catch (error) {
          replace(message, problem(error, "Could not log in."));
          password.select();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h("div", { class: "login-brand" }, h("span", { class: "brand-mark" }), "snapdeploy"),
    h("p", { class: "muted" }, "Deploy VMs straight from VM snapshots."),
    h("label", { for: "username" }, "Username"),
    username,
    h("label", { for: "password" }, "Password"),
    password,
    h("details", { class: "domain" }, h("summary", {}, "Domain"), domain),
    message,
    submit,
  );
  replace(main, form);
  username.focus();
}
