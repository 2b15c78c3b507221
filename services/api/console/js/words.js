// CloudStack error codes and snapdeploy failure texts, said in plain words.

const CODES = {
  401: "You are not logged in, or your session has ended.",
  429: "Too many requests: wait a moment and try again.",
  430: "The request was malformed.",
  431: "The request was refused: a value is missing or not valid.",
  432: "This action is not supported here.",
  530: "The operation failed.",
  531: "Refused: it belongs to another account, or your role may not do this.",
  532: "Refused: the account has reached one of its limits.",
  533: "There is not enough capacity: no host or storage pool has room for it.",
  534: "A resource it needs is unavailable.",
  535: "A resource could not be allocated.",
  536: "Refused: the resource is in use.",
};

export function codeInWords(code) {
  return CODES[Number(code)] || `The operation failed (error ${code}).`;
}

// The planner's reason names the step: "deployment of web-1 failed while cloning: <why>".
const DEPLOY_FAILURE = /^deployment of (.+?) failed while (.+?): ([\s\S]*)$/i;

/** {vm, step, why} from a deployment's reason, or null when it is some other text. */
export function deploymentFailure(text) {
  const match = DEPLOY_FAILURE.exec(String(text || "").trim());
  return match ? { vm: match[1], step: match[2], why: match[3] } : null;
}

export const COMMAND_TITLES = {
  deployVirtualMachine: "Deploy VM from VM snapshot",
  createVolumeFromVmSnapshot: "Create volume from VM snapshot",
  seedTemplateFromVmSnapshot: "Seed template from VM snapshot",
};

/** What a refused command leaves behind, said plainly. */
export const NOTHING_MADE = {
  deployVirtualMachine: "Nothing was deployed.",
  createVolumeFromVmSnapshot: "No volume was made.",
  seedTemplateFromVmSnapshot: "No template was seeded.",
};
