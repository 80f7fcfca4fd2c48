// The HTTP API of the origin that served the page: JSON calls and the run event stream.
// The API token lives in the session's storage (never in the URL) and goes out as
// `Authorization: Bearer <token>` on every call.

const TOKEN_KEY = "superstep.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer of the API other than 2xx: its status and problem (RFC 9457) if any. */
export class ApiError extends Error {
  constructor(status, problem) {
    const detail = problem && (problem.detail || problem.title);
    super(detail ? `${status}: ${detail}` : `the API answered ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function headers(extra = {}) {
  const out = { Accept: "application/json", ...extra };
  const t = token();
  if (t) out.Authorization = `Bearer ${t}`;
  return out;
}

async function failure(response) {
  let problem = null;
  try {
    problem = await response.json();
  } catch {
    problem = null;
  }
  return new ApiError(response.status, problem);
}

/** Calls the API; resolves to the JSON answer (null for 204). */
export async function api(path, { method = "GET", body, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  return response.json();
}

/** The console's own settings (open: whether the API wants a token). */
export async function consoleSettings() {
  const response = await fetch("/console/settings.json", { headers: { Accept: "application/json" } });
  if (!response.ok) return { token_required: false };
  return response.json();
}

export const runPath = (runId) => `/runs/${encodeURIComponent(runId)}`;

/**
 * Follows a run's Server-Sent Events with fetch() (EventSource cannot send the token):
 * calls `onEvents(batch)` with each read's events (the event's JSON and its `id`) and resolves when
 * the stream ends. Resumes after `lastId` (the `Last-Event-ID` header). Resolves to
 * "ended" when the server closed the stream, "done" when it answered 204 (the run has
 * ended and every event is read).
 */
export async function readEvents(runId, { lastId, signal, onEvents }) {
  const extra = { Accept: "text/event-stream" };
  if (lastId) extra["Last-Event-ID"] = lastId;
  const response = await fetch(`${runPath(runId)}/events`, { headers: headers(extra), signal });
  if (response.status === 204) return "done";
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    const batch = [];
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseBlock(block);
      if (event) batch.push(event);
    }
    if (batch.length) onEvents(batch);
  }
  return "ended";
}

function parseBlock(block) {
  let id = null;
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") id = value;
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  // the event's JSON (type, data, executor_id, superstep, request_id, details) and its id
  return { type, ...JSON.parse(data.join("\n")), id };
}
