// The staff inbox: the open conversations (one department's, or all), newest activity first; a
// conversation's messages and transfers; reply, transfer with a note, end. Live over the WebSocket
// (live.js), refreshed every few seconds while it cannot connect. Staff and admins.

import { apiFor } from "./api.js";
import { config } from "./config.js";
import { field, h, present, uid } from "./dom.js";
import { liveUpdates } from "./live.js";
import { randomString } from "./pkce.js";
import { requireSession, signOut } from "./session.js";
import { explain } from "./words.js";

const session = requireSession();
const $ = (id) => document.getElementById(id);

const CHANNELS = { app: "App", web: "Web chat", sms: "SMS", whatsapp: "WhatsApp" };
const DELIVERY = {
  queued: "Queued",
  sending: "Sending",
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  failed: "Not delivered",
  unconfirmed: "Not confirmed",
};
const REASONS = {
  opted_out: "the owner opted out of texts",
  invalid_number: "not a number that takes texts",
  carrier_unreachable: "the carrier could not be reached",
  expired: "it expired before it could be delivered",
  throttled_too_long: "held back too long by the carrier",
};

const state = {
  api: apiFor(session),
  departments: [], // every department, for names and the transfer list
  filter: { department_id: "", status: "open" },
  conversations: [],
  cursor: null,
  selected: null, // {conversation, messages: Map seq → message, transfers, lastSeq}
};

function departmentName(id) {
  return state.departments.find((d) => d.id === id)?.name ?? id;
}

function when(instant) {
  const at = new Date(instant);
  const today = new Date().toDateString() === at.toDateString();
  return at.toLocaleString("en-US", today ? { timeStyle: "short" } : { dateStyle: "medium", timeStyle: "short" });
}

function alertText(error) {
  if (error.code === "not_found") return "This conversation no longer exists. Choose another one.";
  return explain(error);
}

function showAlert(error) {
  if (!error) {
    $("page-alert").textContent = "";
    return;
  }
  if (error.code === "unauthenticated") {
    $("page-alert").replaceChildren(
      h("p", null, explain(error), " ", h("a", { href: `/?next=${encodeURIComponent(location.pathname)}` }, "Sign in again")),
    );
    return;
  }
  $("page-alert").textContent = alertText(error);
}

// ---- the list ---------------------------------------------------------------------------------------

function filters() {
  const department = h("select", { id: "filter-department" }, h("option", { value: "" }, "All departments"));
  for (const d of state.departments) department.append(h("option", { value: d.id }, d.name));
  const status = h(
    "select",
    { id: "filter-status" },
    h("option", { value: "open" }, "Open"),
    h("option", { value: "resolved" }, "Ended"),
  );
  department.value = state.filter.department_id;
  status.value = state.filter.status;
  const changed = () => {
    state.filter = { department_id: department.value, status: status.value };
    refreshList();
  };
  department.addEventListener("change", changed);
  status.addEventListener("change", changed);
  $("filters").replaceChildren(
    field({ name: "department_id", label: "Department", control: department }),
    field({ name: "status", label: "Show", control: status }),
  );
}

function listQuery(cursor) {
  const q = new URLSearchParams({ status: state.filter.status });
  if (state.filter.department_id) q.set("department_id", state.filter.department_id);
  if (cursor) q.set("cursor", cursor);
  return `/conversations?${q}`;
}

function conversationItem(c) {
  const selected = state.selected?.conversation.id === c.id;
  return h(
    "li",
    null,
    h(
      "button",
      {
        type: "button",
        class: "conversation",
        "data-id": c.id,
        "aria-current": selected ? "true" : null,
        onclick: () => select(c.id),
      },
      h("span", { class: "conversation-who" }, c.client_id),
      h("span", { class: "conversation-meta" }, `${c.department_name ?? departmentName(c.department_id)} · ${CHANNELS[c.channel] ?? c.channel}`),
      h("span", { class: "conversation-when" }, h("span", { class: "visually-hidden" }, "last activity "), when(c.last_message_at)),
    ),
  );
}

function renderList() {
  $("conversations").replaceChildren(...state.conversations.map(conversationItem));
  const empty = state.conversations.length === 0;
  $("empty").hidden = !empty;
  $("empty").textContent = state.filter.status === "open" ? "No open conversations." : "No ended conversations.";
  $("more").hidden = !state.cursor;
}

let listTimer = null;
// Several frames in a row (a message and its conversation's update) make one re-read.
function refreshListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(refreshList, 150);
}

async function refreshList() {
  try {
    const { body } = await state.api.get(listQuery());
    state.conversations = body.conversations;
    state.cursor = body.next_cursor;
    renderList();
  } catch (error) {
    showAlert(error);
  }
}

async function more() {
  try {
    const { body } = await state.api.get(listQuery(state.cursor));
    const seen = new Set(state.conversations.map((c) => c.id));
    state.conversations.push(...body.conversations.filter((c) => !seen.has(c.id)));
    state.cursor = body.next_cursor;
    renderList();
  } catch (error) {
    showAlert(error);
  }
}

// ---- one conversation -------------------------------------------------------------------------------

function author(message, conversation) {
  switch (message.author?.kind) {
    case "client":
      return conversation.client_id;
    case "staff":
      return message.author.id === session.sub ? `You (${session.sub})` : `Staff: ${message.author.id}`;
    case "auto":
      return "Automatic reply";
    default:
      return "Vet chat";
  }
}

function deliveryBadge(delivery) {
  if (!delivery) return null;
  const words = DELIVERY[delivery.status] ?? delivery.status;
  const why = delivery.reason ? `: ${REASONS[delivery.reason] ?? delivery.reason.replace(/_/g, " ")}` : "";
  return h(
    "span",
    { class: `delivery delivery-${delivery.status}`, "data-delivery": delivery.status },
    h("span", { class: "visually-hidden" }, "Delivery: "),
    `${words}${why}`,
  );
}

function messageItem(message, conversation) {
  const kind = message.author?.kind ?? "system";
  return h(
    "li",
    { class: `message from-${kind}`, "data-message-id": message.id, "data-seq": message.seq },
    h(
      "p",
      { class: "message-head" },
      h("span", { class: "message-author" }, author(message, conversation)),
      h("time", { datetime: message.at }, when(message.at)),
    ),
    h("p", { class: "message-body" }, message.body),
    h("p", { class: "message-delivery" }, deliveryBadge(message.delivery)),
  );
}

function transferItem(t) {
  return h(
    "li",
    { class: "transfer" },
    h(
      "p",
      { class: "message-head" },
      h("span", null, `Transferred from ${departmentName(t.from)} to ${departmentName(t.to)} by ${t.by}`),
      h("time", { datetime: t.at }, when(t.at)),
    ),
    t.note ? h("p", { class: "transfer-note" }, h("strong", null, "Note: "), t.note) : null,
  );
}

// Messages and transfers in the order they happened.
function renderThread() {
  const { conversation, messages, transfers } = state.selected;
  const items = [
    ...[...messages.values()].map((m) => ({ at: m.at, seq: m.seq, el: () => messageItem(m, conversation) })),
    ...transfers.map((t) => ({ at: t.at, seq: Infinity, el: () => transferItem(t) })),
  ].sort((a, b) => (a.at === b.at ? a.seq - b.seq : a.at < b.at ? -1 : 1));
  const log = $("thread-log");
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  $("thread").replaceChildren(...items.map((i) => i.el()));
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function renderHead() {
  const c = state.selected.conversation;
  $("detail-title").textContent = `Chat with ${c.client_id}`;
  const status = c.status === "open" ? "Open" : `Ended ${c.resolved_at ? when(c.resolved_at) : ""}`.trim();
  $("detail-meta").replaceChildren(
    h("span", null, CHANNELS[c.channel] ?? c.channel),
    h("span", null, c.department_name ?? departmentName(c.department_id)),
    h("span", null, `started ${when(c.started_at)}`),
    h("span", { class: `status status-${c.status}`, id: "detail-status" }, status),
  );
  const open = c.status === "open";
  for (const id of ["reply-form", "transfer-form", "end-button"]) $(id).hidden = !open;
  $("ended-note").hidden = open;
  const to = $("transfer-to");
  const before = to.value;
  to.replaceChildren(
    ...state.departments.filter((d) => d.id !== c.department_id).map((d) => h("option", { value: d.id }, d.name)),
  );
  if ([...to.options].some((o) => o.value === before)) to.value = before;
}

// Reads the conversation: everything (`full`), or only the messages after the last seq shown.
async function syncThread({ full = false } = {}) {
  const selected = state.selected;
  if (!selected) return;
  let after = full ? 0 : selected.lastSeq;
  const messages = full ? new Map() : selected.messages;
  let body;
  do {
    ({ body } = await state.api.get(`/conversations/${selected.conversation.id}?after=${after}`));
    for (const m of body.messages) messages.set(m.seq, m);
    after = body.next_after ?? after;
  } while (body.next_after);
  if (state.selected !== selected) return;
  const { messages: _m, transfers, next_after: _n, ...conversation } = body;
  Object.assign(selected, {
    conversation,
    messages,
    transfers: transfers ?? [],
    lastSeq: Math.max(0, ...messages.keys()),
  });
  renderHead();
  renderThread();
}

function replyForm() {
  const text = h("textarea", { id: "reply-text", rows: 3, maxlength: 4000, required: true });
  const send = h("button", { type: "submit", class: "primary" }, "Send reply");
  const alert = h("p", { class: "form-alert", role: "alert", id: uid("reply-alert") });
  let key = null; // one Idempotency-Key for every try of one reply
  text.addEventListener("input", () => {
    key = null;
  });
  const form = h(
    "form",
    { id: "reply-form", class: "reply", novalidate: true },
    field({ name: "body", label: "Reply", control: text }),
    alert,
    h("div", { class: "actions" }, send),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    const body = text.value.trim();
    if (!body) {
      alert.textContent = "Write a reply first.";
      text.focus();
      return;
    }
    key ??= randomString(16);
    send.disabled = true;
    try {
      await state.api.post(`/conversations/${state.selected.conversation.id}/messages`, { body }, { idempotencyKey: key });
      text.value = "";
      key = null;
      await syncThread();
      text.focus();
    } catch (error) {
      alert.textContent = alertText(error);
    } finally {
      send.disabled = false;
    }
  });
  return form;
}

function transferForm() {
  const to = h("select", { id: "transfer-to" });
  const note = h("textarea", { id: "transfer-note", rows: 2, maxlength: 1000 });
  const go = h("button", { type: "submit", class: "secondary" }, "Transfer");
  const alert = h("p", { class: "form-alert", role: "alert" });
  const done = h("p", { class: "card-status", role: "status" });
  const form = h(
    "form",
    { id: "transfer-form", class: "transfer-form", novalidate: true },
    h("h3", null, "Transfer to another department"),
    field({ name: "department_id", label: "Transfer to", control: to }),
    field({
      name: "note",
      label: "Note for the department",
      control: note,
      hint: "Seen by staff only, never by the pet owner.",
    }),
    alert,
    done,
    h("div", { class: "actions" }, go),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.textContent = "";
    done.textContent = "";
    const target = to.value;
    go.disabled = true;
    try {
      await state.api.post(`/conversations/${state.selected.conversation.id}/transfer`, {
        department_id: target,
        note: note.value.trim(),
      });
      note.value = "";
      done.textContent = `Transferred to ${departmentName(target)}.`;
      await syncThread({ full: true });
      refreshListSoon();
    } catch (error) {
      alert.textContent = alertText(error);
    } finally {
      go.disabled = false;
    }
  });
  return form;
}

function endButton() {
  const button = h("button", { type: "button", class: "danger", id: "end-button" }, "End conversation");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await state.api.post(`/conversations/${state.selected.conversation.id}/end`);
      await syncThread({ full: true });
      refreshListSoon();
      $("detail-title").focus();
    } catch (error) {
      showAlert(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

async function select(id) {
  showAlert(null);
  const title = h("h2", { id: "detail-title", tabindex: "-1" }, "Loading the conversation…");
  $("detail").replaceChildren(
    title,
    h("p", { class: "detail-meta", id: "detail-meta" }),
    // A log region around the list (a list given role=log would be no list any more).
    h("div", { id: "thread-log", class: "thread", role: "log", "aria-label": "Messages and transfers", tabindex: "0" }, h("ol", { id: "thread" })),
    h("p", { id: "ended-note", class: "notice", hidden: true }, "This conversation has ended. A new message from the pet owner starts a new one."),
    replyForm(),
    h("div", { class: "detail-actions" }, transferForm(), h("div", { class: "end" }, endButton())),
  );
  const listed = state.conversations.find((c) => c.id === id);
  state.selected = { conversation: listed ?? { id }, messages: new Map(), transfers: [], lastSeq: 0 };
  renderList();
  try {
    await syncThread({ full: true });
  } catch (error) {
    showAlert(error);
  }
  $("reply-text")?.focus();
}

// ---- live updates -----------------------------------------------------------------------------------

function onFrame(frame) {
  const selectedId = state.selected?.conversation.id;
  switch (frame.type) {
    case "message.created":
      if (frame.conversation_id === selectedId && frame.seq > state.selected.lastSeq) syncThread().catch(showAlert);
      refreshListSoon();
      break;
    case "message.delivery": {
      const message = state.selected && [...state.selected.messages.values()].find((m) => m.id === frame.message_id);
      if (message) {
        message.delivery = frame.delivery;
        const slot = document.querySelector(`[data-message-id="${CSS.escape(frame.message_id)}"] .message-delivery`);
        slot?.replaceChildren(...present(deliveryBadge(frame.delivery)));
      }
      break;
    }
    case "conversation.updated":
      if (frame.conversation?.id === selectedId) syncThread({ full: true }).catch(showAlert);
      refreshListSoon();
      break;
    default:
      break;
  }
}

function onSync() {
  refreshList();
  syncThread({ full: true }).catch(showAlert);
}

function onState(name, seconds) {
  const status = $("live-status");
  status.dataset.live = name;
  status.textContent =
    name === "live"
      ? "Live: new messages show as they arrive."
      : name === "connecting"
        ? "Connecting the live updates…"
        : `Live updates are not connected: refreshing every ${seconds === 1 ? "second" : `${seconds} seconds`}.`;
}

async function main() {
  if (!session) return;
  $("who").textContent = `${session.sub} · ${session.role}`;
  $("sign-out").addEventListener("click", () => signOut());
  $("more").addEventListener("click", more);
  const settings = await config();
  try {
    state.departments = (await state.api.get("/departments")).body ?? [];
  } catch (error) {
    if (error.code === "practice_not_set_up") {
      $("page-alert").textContent = "The practice is not set up yet: an admin sets it up in Settings.";
      document.body.dataset.ready = "true";
      return;
    }
    showAlert(error);
  }
  filters();
  await refreshList();
  onState("connecting", settings.refresh_seconds);
  liveUpdates({
    ticket: async () => (await state.api.post("/realtime/tickets")).body,
    onFrame,
    onSync,
    onState: (name) => onState(name, settings.refresh_seconds),
    pollSeconds: settings.refresh_seconds,
  });
  document.body.dataset.ready = "true";
}

main();
