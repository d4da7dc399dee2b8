// The ticket sidebar panel: asks the sessions API for captures of what the requester saw,
// lists the ticket's captures and follows them while any is open. It talks to the host only
// through the documented ZAF client (ZAFClient, loaded by iframe.html) and to the bridge only
// through client.request, whose secure requests Zendesk's proxy completes with the token.
import {
  CAPTURE_TYPES,
  NO_API_URL,
  NO_REQUESTER,
  actionName,
  askedAt,
  cancelRequest,
  createRequest,
  failureWords,
  isOpen,
  listRequest,
  mayHaveLanded,
  newKey,
  pollDelay,
  requesterOf,
  safeLinks,
  sourceName,
  statusWords,
} from "./logic.js";

const $ = (id) => document.getElementById(id);
const ui = {
  form: $("request-form"),
  type: $("capture-type"),
  description: $("description"),
  news: $("news"),
  alert: $("alert"),
  list: $("captures"),
  empty: $("no-captures"),
};

const state = {
  client: null,
  apiUrl: "",
  ticketId: null,
  requester: null,
  sessions: [],
  inFlight: new Set(), // actions whose POST has not been answered yet
  repeated: new Set(), // actions clicked again while in flight (the answer then says so)
  keys: new Map(), // action -> {key, data}: an Idempotency-Key kept until surely answered
  visible: true,
  timer: null,
  round: 0,
  lastSeen: "",
};

function say(text) {
  ui.news.textContent = text;
}

// What each part of the panel has to tell the agent: the set-up (settings, requester), the last
// action (request, cancel) and the last read of the list. Each part clears only its own, so a
// failed list read never hides why a request failed.
const alerts = { action: "", refresh: "", setup: "" };

/** Set or clear (`text` empty) one part's alert; the alert region (role=alert) shows them all. */
function alertAgent(text, from = "action") {
  alerts[from] = text || "";
  const shown = [...new Set([alerts.action, alerts.refresh, alerts.setup].filter(Boolean))];
  ui.alert.replaceChildren(
    ...shown.map((line) => {
      const paragraph = document.createElement("p");
      paragraph.textContent = line;
      return paragraph;
    }),
  );
  ui.alert.hidden = shown.length === 0;
  resize();
}

function resize() {
  if (!state.client) return;
  // The sidebar iframe does not grow by itself: tell the host how tall the content is.
  const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
  state.client.invoke("resize", { width: "100%", height: `${height}px` });
}

function renderCapture(session) {
  const item = document.createElement("li");
  item.className = `capture capture--${session.status}`;
  item.dataset.sessionId = session.sessionId;

  const title = document.createElement("p");
  title.className = "capture__title";
  title.textContent = `${sourceName(session.provider)} · ${actionName(session.action)}`;

  const status = document.createElement("p");
  status.className = "capture__status";
  status.textContent = statusWords(session);

  const when = document.createElement("p");
  when.className = "capture__when";
  const time = document.createElement("time");
  time.dateTime = session.createdAt;
  time.textContent = askedAt(session.createdAt);
  when.append("Asked for ", time);

  item.append(title, status, when);

  const links = safeLinks(session);
  if (links.length) {
    const row = document.createElement("p");
    row.className = "capture__links";
    for (const { name, url } of links) {
      const link = document.createElement("a");
      link.href = url;
      link.target = "_blank"; // the report opens beside Zendesk, never inside the sidebar
      link.rel = "noopener noreferrer";
      link.textContent = `Open ${name}`;
      row.append(link, " ");
    }
    item.append(row);
  }
  if (isOpen(session)) {
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "button button--secondary";
    cancel.textContent = "Cancel capture";
    cancel.addEventListener("click", () => cancelCapture(session, cancel));
    item.append(cancel);
  }
  return item;
}

function render() {
  // Keep keyboard focus on the same capture's button across a redraw.
  const focused = document.activeElement && document.activeElement.closest(".capture");
  const focusedId = focused && focused.dataset.sessionId;
  ui.list.replaceChildren(...state.sessions.map(renderCapture));
  ui.empty.hidden = state.sessions.length > 0;
  if (focusedId) {
    const item = ui.list.querySelector(`[data-session-id="${CSS.escape(focusedId)}"]`);
    const again = item && item.querySelector("button, a");
    if (again) again.focus();
  }
  resize();
}

async function call(options) {
  // With httpCompleteResponse the answer is {status, headers, responseText, responseJSON}.
  const answer = await state.client.request(options);
  if (answer.responseJSON !== undefined) return answer.responseJSON;
  return JSON.parse(answer.responseText || "null");
}

async function refresh() {
  if (!state.apiUrl || state.ticketId === null) return;
  clearTimeout(state.timer);
  ui.list.setAttribute("aria-busy", "true"); // being read again: announce the result, not each step
  try {
    const page = await call(listRequest(state.apiUrl, state.ticketId));
    // Anything new or changed starts the schedule again from its quick end.
    const seen = JSON.stringify(page.sessions.map((s) => [s.sessionId, s.status, s.updatedAt]));
    if (seen !== state.lastSeen) state.round = 0;
    state.lastSeen = seen;
    state.sessions = page.sessions;
    alertAgent("", "refresh");
    render();
  } catch (failure) {
    alertAgent(failureWords(failure, "reading the ticket's captures"), "refresh");
  }
  schedule();
  ui.list.setAttribute("aria-busy", "false");
}

/** Plan the next re-read: only while a capture is open and the app is visible. */
function schedule() {
  clearTimeout(state.timer);
  state.timer = null;
  if (!state.visible || !state.sessions.some(isOpen)) return;
  const delay = pollDelay(state.round);
  state.round += 1;
  state.timer = setTimeout(refresh, delay);
}

async function requestCapture(event) {
  event.preventDefault();
  const action = ui.type.value;
  const label = actionName(action).toLowerCase();
  if (!state.requester) {
    alertAgent(NO_REQUESTER, "setup");
    return;
  }
  const open = state.sessions.find(
    (s) => s.provider === "bugpilot" && s.action === action && isOpen(s),
  );
  if (state.inFlight.has(action)) {
    state.repeated.add(action);
    say(`A ${label} is already on its way: nothing new was started.`);
    return;
  }
  if (open) {
    say(`A ${label} is already open for this ticket: nothing new was started.`);
    return;
  }
  state.inFlight.add(action);
  say(`Asking for a ${label}…`); // at once: the agent knows the click was taken
  const request = (key) =>
    createRequest(state.apiUrl, {
      ticketId: state.ticketId,
      requester: state.requester,
      action,
      description: ui.description.value,
      key,
    });
  // The key of a request that may have landed is reused for the very same request only: the
  // API answers a key with another body 409.
  const kept = state.keys.get(action);
  const same = kept && kept.data === request("").data;
  const key = same ? kept.key : newKey(state.ticketId, action);
  const options = request(key);
  state.keys.set(action, { key, data: options.data });
  try {
    const session = await call(options);
    state.keys.delete(action);
    const again = state.repeated.has(action) ? " The second click started nothing." : "";
    say(`${actionName(action)} requested (${statusWords(session)}).${again}`);
    ui.description.value = "";
    alertAgent("", "action");
    state.round = 0;
  } catch (failure) {
    // A request that may have landed keeps its key: the next click is then the same request.
    if (!mayHaveLanded(failure)) state.keys.delete(action);
    say("");
    alertAgent(failureWords(failure, `the ${label} request`));
  } finally {
    state.inFlight.delete(action);
    state.repeated.delete(action);
  }
  await refresh();
}

async function cancelCapture(session, button) {
  button.setAttribute("aria-disabled", "true");
  say(`Cancelling the ${actionName(session.action).toLowerCase()}…`);
  try {
    await call(cancelRequest(state.apiUrl, session.sessionId));
    say(`The ${actionName(session.action).toLowerCase()} is cancelled.`);
    alertAgent("", "action");
  } catch (failure) {
    say("");
    alertAgent(failureWords(failure, "the cancellation"));
  }
  state.round = 0;
  await refresh();
}

async function start(client) {
  state.client = client;
  for (const { action, label } of CAPTURE_TYPES) ui.type.add(new Option(label, action));
  ui.form.addEventListener("submit", requestCapture);
  client.on("app.deactivated", () => {
    state.visible = false;
    clearTimeout(state.timer); // no reads while the agent cannot see the panel
    state.timer = null;
  });
  client.on("app.activated", () => {
    state.visible = true;
    state.round = 0;
    refresh();
  });
  new ResizeObserver(resize).observe(document.body);

  const [metadata, data] = await Promise.all([
    client.metadata(),
    client.get(["ticket.id", "ticket.requester.email", "ticket.requester.externalId"]),
  ]);
  state.apiUrl = ((metadata.settings || {}).api_url || "").trim();
  state.ticketId = data["ticket.id"];
  state.requester = requesterOf({
    email: data["ticket.requester.email"],
    externalId: data["ticket.requester.externalId"],
  });
  if (!state.apiUrl) {
    alertAgent(NO_API_URL, "setup");
    return;
  }
  if (!state.requester) alertAgent(NO_REQUESTER, "setup");
  await refresh();
}

const client = window.ZAFClient && window.ZAFClient.init();
if (client) {
  client.on("app.registered", () => {
    start(client).catch(() =>
      alertAgent("The app could not start: reload the ticket to try again.", "setup"),
    );
  });
} else {
  const where = "This page runs inside Zendesk's ticket sidebar: install it as a Zendesk app.";
  alertAgent(where, "setup");
}
