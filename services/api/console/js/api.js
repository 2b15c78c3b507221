// The console's only way to the api: its own CloudStack commands, through a login session.
// The session cookie is HttpOnly; the session key travels as the `sessionkey` parameter of every
// call too (CloudStack's CSRF protection), so a request forged from another site carries no key.

const ENDPOINT = "/client/api";
const STORE = "snapdeploy.console.session";
const PAGE_SIZE = 500;

export class ApiError extends Error {
  constructor(command, code, text) {
    super(text || `${command} failed (${code})`);
    this.command = command;
    this.code = code;
    this.text = text || "";
  }
}

/** The session expired or was never there: the router answers with the login page. */
export class LoggedOut extends ApiError {}

function unwrap(command, status, body) {
  const key = `${command.toLowerCase()}response`;
  const value = body?.[key] ?? body?.errorresponse;
  if (value && typeof value === "object" && value.errorcode !== undefined) {
    const ErrorType = Number(value.errorcode) === 401 ? LoggedOut : ApiError;
    throw new ErrorType(command, Number(value.errorcode), value.errortext);
  }
  if (status === 401) throw new LoggedOut(command, 401, "Your session has ended: log in again.");
  if (status >= 400 || value === undefined) {
    throw new ApiError(command, status, `The api answered ${command} with HTTP ${status}.`);
  }
  return value;
}

async function post(params, signal) {
  const response = await fetch(ENDPOINT, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(params),
    signal,
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return { status: response.status, body };
}

export class Session {
  constructor(data) {
    this.key = data.sessionkey;
    this.username = data.username;
    this.account = data.account;
    this.userid = data.userid;
    this.domainid = data.domainid;
    // loginresponse `type`: CloudStack's account type, 1 = root admin.
    this.isAdmin = String(data.type) === "1" || String(data.roletype).toLowerCase() === "admin";
  }

  static restore() {
    try {
      const data = JSON.parse(sessionStorage.getItem(STORE) || "null");
      return data?.sessionkey ? new Session(data) : null;
    } catch {
      return null;
    }
  }

  static async login(username, password, domain) {
    const params = { command: "login", username, password, domain: domain || "/", response: "json" };
    const { status, body } = await post(params);
    if (status === 531 || status === 401) {
      throw new ApiError("login", status, "The username or password is not right.");
    }
    const answer = unwrap("login", status, body);
    sessionStorage.setItem(STORE, JSON.stringify(answer));
    return new Session(answer);
  }

  async logout() {
    sessionStorage.removeItem(STORE);
    try {
      await post({ command: "logout", sessionkey: this.key, response: "json" });
    } catch {
      // The session is gone from this tab either way.
    }
  }

  forget() {
    sessionStorage.removeItem(STORE);
  }

  /** One command; answers the unwrapped `<command>response` value or throws ApiError. */
  async call(command, params = {}, { signal } = {}) {
    const clean = Object.fromEntries(
      Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ""),
    );
    const { status, body } = await post(
      { ...clean, command, response: "json", sessionkey: this.key },
      signal,
    );
    return unwrap(command, status, body);
  }

  /** Every object of a list command, page by page (count is the total before paging). */
  async list(command, key, params = {}, options = {}) {
    const all = [];
    for (let page = 1; ; page += 1) {
      const answer = await this.call(command, { ...params, page, pagesize: PAGE_SIZE }, options);
      const items = answer[key] || [];
      all.push(...items);
      if (items.length === 0 || all.length >= Number(answer.count || 0)) return all;
    }
  }

  /** Admins see every account's resources in lists; a user's lists are its account's anyway. */
  scope(params = {}) {
    return this.isAdmin ? { listall: true, ...params } : params;
  }
}

/**
 * Poll an async job until it ends, calling onChange with each answer that differs from the last.
 * Resolves with the final queryAsyncJobResult answer; an aborted signal stops it.
 */
export async function followJob(session, jobid, onChange, { signal, interval = 400 } = {}) {
  let last = "";
  for (;;) {
    const job = await session.call("queryAsyncJobResult", { jobid }, { signal });
    const seen = `${job.jobstatus}|${job.jobprocstatus}|${job.jobprocstep}`;
    if (seen !== last) {
      last = seen;
      onChange(job);
    }
    if (Number(job.jobstatus) !== 0) return job;
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, interval);
      signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(signal.reason);
      });
    });
  }
}
