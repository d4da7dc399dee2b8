// The panel's pure logic: words, schedules and request descriptions. No DOM and no ZAF here,
// so that each rule can be checked on its own (tests/browser/test_logic.py imports this module).

/** The capture types an agent can ask Bugpilot for, as the sessions API names them. */
export const CAPTURE_TYPES = [
  { action: "upload-session", label: "Session recording" },
  { action: "upload-screenshot", label: "Screenshot" },
  { action: "show-recording-ui", label: "Screen recording" },
];

const SOURCES = { bugpilot: "Bugpilot", lambdatest: "LambdaTest", notte: "Notte" };

/** Statuses after which a capture can change no more (openapi/sessions.yaml's Status). */
export const FINAL_STATUSES = new Set(["resolved", "failed", "timed_out", "cancelled"]);

export function isOpen(session) {
  return !FINAL_STATUSES.has(session.status);
}

export function sourceName(provider) {
  return SOURCES[provider] || provider;
}

export function actionName(action) {
  const known = CAPTURE_TYPES.find((type) => type.action === action);
  return known ? known.label : action;
}

/** A status in words an agent reads at a glance. */
export function statusWords(session) {
  const bugpilot = session.provider === "bugpilot";
  switch (session.status) {
    case "requested":
      return `requested, being sent to ${sourceName(session.provider)}`;
    case "waiting_for_user":
      return "waiting for the user to open the app";
    case "pending":
      return bugpilot ? "capturing, waiting for the report" : "waiting for the session to finish";
    case "resolved":
      return "report ready";
    case "failed":
      return session.data && session.data.error ? `failed: ${session.data.error}` : "failed";
    case "timed_out":
      return "timed out: no report came in time";
    case "cancelled":
      return "cancelled";
    default:
      return session.status;
  }
}

/** The links worth showing: only http(s) addresses, so no value can become a script link. */
export function safeLinks(session) {
  const links = (session.data && session.data.links) || {};
  return Object.entries(links)
    .filter(([, url]) => typeof url === "string" && /^https?:\/\//i.test(url))
    .map(([name, url]) => ({ name, url }));
}

// Live updates: every 5 s at first, then longer gaps up to 30 s while nothing changes.
export const FIRST_POLL_MS = 5000;
export const MAX_POLL_MS = 30000;

/** The wait before the `round`-th re-read (from 0) since the last change: 5, 5, 10, 20, 30… s */
export function pollDelay(round) {
  return Math.min(MAX_POLL_MS, FIRST_POLL_MS * 2 ** Math.max(0, round - 1));
}

/** Who to capture: the requester's external id, else their email; null when neither. */
export function requesterOf(ticket) {
  const externalId = (ticket.externalId || "").trim();
  if (externalId) return { userId: externalId };
  const email = (ticket.email || "").trim();
  if (email) return { userEmail: email };
  return null;
}

function sessionsUrl(apiUrl, path) {
  return apiUrl.replace(/\/+$/, "") + path;
}

// The token travels only as this placeholder; Zendesk's proxy fills it in for `secure` requests
// to the manifest's domainWhitelist, so the agent's browser never holds it.
const AUTHORIZATION = { Authorization: "Bearer {{setting.api_token}}" };

/** client.request options listing a ticket's captures, newest first. */
export function listRequest(apiUrl, ticketId) {
  const query = new URLSearchParams({ helpdesk: "zendesk", ticketId: String(ticketId) });
  return {
    url: sessionsUrl(apiUrl, `/sessions?${query}`),
    type: "GET",
    dataType: "json",
    headers: AUTHORIZATION,
    secure: true,
    httpCompleteResponse: true,
  };
}

/** client.request options starting one Bugpilot capture; `key` is its Idempotency-Key. */
export function createRequest(apiUrl, { ticketId, requester, action, description, key }) {
  const body = { helpdesk: "zendesk", ticketId: String(ticketId), provider: "bugpilot", action };
  Object.assign(body, requester);
  const text = (description || "").trim();
  if (text) body.description = text;
  return {
    url: sessionsUrl(apiUrl, "/sessions"),
    type: "POST",
    contentType: "application/json",
    dataType: "json",
    data: JSON.stringify(body),
    headers: { ...AUTHORIZATION, "Idempotency-Key": key },
    secure: true,
    httpCompleteResponse: true,
  };
}

/** client.request options cancelling a capture. */
export function cancelRequest(apiUrl, sessionId) {
  return {
    url: sessionsUrl(apiUrl, `/sessions/${encodeURIComponent(sessionId)}`),
    type: "DELETE",
    dataType: "json",
    headers: AUTHORIZATION,
    secure: true,
    httpCompleteResponse: true,
  };
}

/** Whether a failure may be tried again with the same Idempotency-Key (it may not have landed). */
export function mayHaveLanded(failure) {
  const status = failure && typeof failure.status === "number" ? failure.status : 0;
  return status === 0 || status >= 500;
}

function detailText(failure) {
  const body = failure && failure.responseJSON;
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((entry) => entry.msg).filter(Boolean).join("; ");
  return "";
}

/** A rejected client.request in words an agent can act on (never a stack trace). */
export function failureWords(failure, doing) {
  const status = failure && typeof failure.status === "number" ? failure.status : 0;
  if (status === 0 || status >= 500) {
    return (
      `The capture bridge cannot be reached, so ${doing} did not happen. ` +
      "Try again in a minute; if it goes on, ask your Zendesk admin to check the bridge."
    );
  }
  if (status === 401 || status === 403) {
    return (
      "The capture bridge refused the app's token: check the app's settings " +
      "(the API token must be the stack's SESSIONS_API_TOKEN)."
    );
  }
  const detail = detailText(failure);
  if (status === 409) {
    return detail || `The capture has already finished, so ${doing} did not happen.`;
  }
  if (status === 404) return "That capture no longer exists; the list is read again.";
  return `The capture bridge turned down ${doing}${detail ? `: ${detail}` : ""} (HTTP ${status}).`;
}

export const NO_REQUESTER =
  "This ticket's requester has no email address (and no external id), so no capture can be " +
  "asked for. Add an email to the requester's profile, then reload the app.";

export const NO_API_URL =
  "The app has no API URL: check the app's settings (the stack's SessionsApiUrl output).";

/** Words for a time the API gives (ISO 8601), in the agent's own locale and time zone. */
export function askedAt(iso) {
  const when = new Date(iso);
  if (Number.isNaN(when.getTime())) return iso;
  return when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** A fresh Idempotency-Key: random where the browser can, unique enough where it cannot. */
export function newKey(ticketId, action) {
  const random =
    globalThis.crypto && crypto.randomUUID
      ? crypto.randomUUID()
      : `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
  return `zendesk-${ticketId}-${action}-${random}`;
}
