// An async job live: its saga steps as they complete (jobprocstatus = steps done, jobprocstep = the
// current one), ending in the new VM's page, or in the failure said in plain words: which step,
// what vCenter answered, and where that leaves the VM.

import { followJob } from "../api.js";
import { bytes, duration, h, replace, route, stateBadge } from "../dom.js";
import { card, facts, pageHeader } from "../ui.js";
import { COMMAND_TITLES, NOTHING_MADE, codeInWords, deploymentFailure } from "../words.js";

class Steps {
  constructor() {
    this.steps = []; // {index, name, started, ended}
  }

  /** Steps below `done` are finished; `name` is the one running now. */
  see(done, name) {
    const now = performance.now();
    for (const step of this.steps) if (step.index < done && step.ended === undefined) step.ended = now;
    if (name && !this.steps.some((step) => step.index === done)) {
      this.steps.push({ index: done, name, started: now });
    }
  }

  /**
   * The job failed in the step named (or, unnamed, the last one seen): mark it, and the steps
   * seen after it (the planner undoing what it had made) as the undo.
   */
  failedAt(name) {
    this.finish();
    let at = -1;
    this.steps.forEach((step, index) => {
      if (name === undefined || step.name === name) at = index;
    });
    if (at < 0) {
      if (name === undefined) return;
      const now = performance.now();
      this.steps.push({ index: Infinity, name, started: now, ended: now, failed: true });
      return;
    }
    this.steps[at].failed = true;
    for (const step of this.steps.slice(at + 1)) step.undo = true;
  }

  finish() {
    const now = performance.now();
    for (const step of this.steps) if (step.ended === undefined) step.ended = now;
  }

  view(done, running) {
    const items = this.steps.map((step) => {
      const state = step.failed ? "failed" : step.undo ? "undo" : step.ended === undefined ? "running" : "done";
      return h(
        "li",
        { class: `step step-${state}`, "data-step": step.name },
        h("span", { class: "step-mark" }, state === "running" ? h("span", { class: "spinner" }) : { failed: "✕", undo: "↶" }[state] || "✓"),
        h("span", { class: "step-name" }, state === "undo" ? `undoing: ${step.name}` : step.name),
        h("span", { class: "step-time" }, { running: "running…", failed: "failed" }[state] || duration(step.ended - step.started)),
      );
    });
    const unseen = done - this.steps.filter((step) => step.index < done).length;
    return h(
      "div",
      {},
      h("p", { class: "muted", id: "steps-done" }, `${done} ${done === 1 ? "step" : "steps"} completed${running ? "" : "."}`, unseen > 0 ? ` (${unseen} too quick to show)` : ""),
      h("ol", { class: "steps", id: "steps" }, items),
    );
  }
}

async function vmOf(session, job, signal) {
  const id = job.jobinstanceid || job.jobresult?.virtualmachine?.id;
  if (!id || (job.jobinstancetype && job.jobinstancetype !== "VirtualMachine")) return null;
  try {
    return (await session.call("listVirtualMachines", session.scope({ id }), { signal })).virtualmachine?.[0] || null;
  } catch {
    return null;
  }
}

async function failedTasks(session, job, signal) {
  try {
    const { trail } = await session.call("getDeploymentTrail", { jobid: job.jobid }, { signal });
    return (trail?.entries || []).filter((e) => e.kind === "task" && String(e.state).toLowerCase() === "error");
  } catch {
    return []; // no trail for this job (not a deployment, or audit not there): the reason stands alone
  }
}

async function failure(session, job, command, signal) {
  const title = COMMAND_TITLES[command] || "The job";
  const code = job.jobresult?.errorcode ?? job.jobresultcode;
  const text = job.jobresult?.errortext || "";
  const parsed = deploymentFailure(text);
  const [vm, tasks] = await Promise.all([vmOf(session, job, signal), failedTasks(session, job, signal)]);
  return h(
    "div",
    { class: "notice notice-bad failure", role: "alert", id: "failure" },
    h(
      "strong",
      { class: "failure-title" },
      parsed
        ? `The deployment of ${parsed.vm} failed while ${parsed.step}.`
        : // Refused before anything was made: no instance came of it.
          `${title} failed. ${!vm && NOTHING_MADE[command] ? NOTHING_MADE[command] : ""}`.trim(),
    ),
    // A reason that names its step says more than the code's words.
    parsed ? null : h("p", {}, codeInWords(code)),
    facts([
      ["Step", parsed?.step],
      ["Reason", parsed ? parsed.why : text],
      ...tasks.map((task) => ["vCenter task", `${task.name} failed${task.durationms === undefined ? "" : ` after ${duration(task.durationms)}`}`]),
      ["Error code", String(code ?? "")],
      ["The VM now", vm ? h("span", {}, h("a", { href: route("instances", vm.id) }, vm.name), " is ", stateBadge(vm.state)) : null],
    ]),
    vm ? h("p", {}, h("a", { href: route("instances", vm.id, "trail") }, "See the deployment's timeline →")) : null,
  );
}

function success(job) {
  const result = job.jobresult || {};
  if (result.volume) {
    const v = result.volume;
    return h("div", { class: "notice notice-ok", id: "success" }, h("strong", {}, `Volume ${v.name} is ${v.state}.`), facts([["Size", bytes(v.size)], ["Pool", v.storage], ["ID", v.id]]));
  }
  const seed = result.seededtemplate || result.template || result.vmsnapshottemplate;
  if (seed) {
    return h("div", { class: "notice notice-ok", id: "success" }, h("strong", {}, "The template is seeded."), facts([["Pool", seed.storage || seed.storageid], ["Size", bytes(seed.size)], ["Path", seed.installpath]]), h("p", {}, h("a", { href: route("pools") }, "Storage pools →")));
  }
  return h("div", { class: "notice notice-ok", id: "success" }, h("strong", {}, "Done."));
}

export async function render({ session, params, query, main, signal, go }) {
  const title = COMMAND_TITLES[query.command] || "Job";
  const heading = pageHeader(query.name ? `${title}: ${query.name}` : title);
  const status = h("div", { class: "job-status", id: "job-status" });
  const stepsBox = h("div", {});
  const outcome = h("div", {});
  replace(main, heading, card(null, status, stepsBox), outcome);
  const steps = new Steps();
  const started = performance.now();
  const job = await followJob(
    session,
    params.job,
    (answer) => {
      const done = Number(answer.jobprocstatus || 0);
      const running = Number(answer.jobstatus) === 0;
      steps.see(done, running ? answer.jobprocstep : null);
      if (!running) steps.finish();
      replace(
        status,
        running ? h("span", { class: "spinner" }) : null,
        running
          ? h("span", {}, "In progress", answer.jobprocstep ? [": ", h("strong", { id: "current-step" }, answer.jobprocstep)] : null)
          : h("span", {}, Number(answer.jobstatus) === 1 ? "Finished" : "Failed", ` after ${duration(performance.now() - started)}`),
      );
      replace(stepsBox, steps.view(done, running));
    },
    { signal },
  );
  if (Number(job.jobstatus) === 1) {
    const vm = job.jobresult?.virtualmachine;
    if (vm?.id) {
      go(`${route("instances", vm.id)}?deployed=${encodeURIComponent(job.jobid)}`, { replace: true });
      return;
    }
    replace(outcome, success(job));
    return;
  }
  steps.failedAt(deploymentFailure(job.jobresult?.errortext)?.step);
  replace(stepsBox, steps.view(Number(job.jobprocstatus || 0), false));
  replace(outcome, await failure(session, job, query.command, signal));
}
