// The web-chat widget on a clinic's site (loaded by /widget.js): a launcher button and a panel in a Shadow DOM
// of its own. It shows the practice's departments that are visible in the app (public availability), the
// chosen department's greeting, a banner while chat is offline and a pop-up after hours (the practice's
// message and when it opens, in the practice's time zone); it leaves the pet owner's message when the
// department takes messages now, says so politely when it does not, and shows the staff's replies as they come
// (the client's view of the API and the WebSocket as the pet owner).
//
// Who the pet owner is (the API needs a `client` token): on AWS the OAuth 2.0 code flow with PKCE against the
// practice's pet-owner issuer (data-issuer, data-client-id); locally the development sign-in with role client
// for a visitor id made up in this tab. The token and that id are kept in sessionStorage (this tab, this
// site), never in localStorage, a cookie or a URL; the OAuth ?code= leaves the address before it is used.

import { request } from "../api.js";
import { h, uid } from "../dom.js";
import { liveUpdates } from "../live.js";
import { claimsOf, finishCodeFlow, isCodeFlowReturn, randomString, SignInError, startCodeFlow } from "../pkce.js";
import { explain } from "../words.js";

// A token that ends within this margin is treated as ended.
const MARGIN_MS = 30_000;

// ---- words ------------------------------------------------------------------------------------------

function dateKey(instant, timeZone) {
  return new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).format(instant);
}

// "today at 9:00 AM EST", "tomorrow at 9:00 AM EST", "on Monday, December 7 at 9:00 AM EST": the practice's
// clock, whatever the visitor's.
export function opensInWords(opensAt, timeZone, now = new Date()) {
  const at = new Date(opensAt);
  const time = new Intl.DateTimeFormat("en-US", { timeZone, hour: "numeric", minute: "2-digit", timeZoneName: "short" }).format(at);
  const day = dateKey(at, timeZone);
  if (day === dateKey(now, timeZone)) return `today at ${time}`;
  if (day === dateKey(new Date(now.getTime() + 86_400_000), timeZone)) return `tomorrow at ${time}`;
  const date = new Intl.DateTimeFormat("en-US", { timeZone, weekday: "long", month: "long", day: "numeric" }).format(at);
  return `on ${date} at ${time}`;
}

function statusWords(d, timeZone) {
  if (d.reason === "offline") return "offline";
  if (d.open) return "open now";
  return d.opens_at ? `closed, opens ${opensInWords(d.opens_at, timeZone)}` : "closed";
}

// A refusal of POST /inbound in words, with what the error body carries (the after-hours message, the
// opening time).
function refusalWords(error, timeZone) {
  const lines = [explain(error)];
  if (error.code === "after_hours" || error.code === "offline") {
    const d = error.details ?? {};
    if (d.after_hours_message) lines.push(d.after_hours_message);
    if (d.opens_at) lines.push(`We open again ${opensInWords(d.opens_at, timeZone)}.`);
  }
  if (error.code === "rate_limited") lines[0] = "You are sending messages very fast. Wait a moment and send again.";
  if (error.code === "unauthenticated") lines[0] = "Your chat sign-in has ended. Send again to sign in anew.";
  return lines;
}

// ---- the pet owner's sign-in ------------------------------------------------------------------------

class Identity {
  constructor(options) {
    this.options = options;
    this.key = `vetchat.widget.${options.practice}`;
    this.pending = `${this.key}.oauth`;
  }

  get redirectUri() {
    return this.options.auth.redirect_uri ?? `${location.origin}${location.pathname}`;
  }

  current() {
    try {
      const kept = JSON.parse(sessionStorage.getItem(this.key) ?? "null");
      if (kept?.token && Date.parse(kept.expires_at) > Date.now() + MARGIN_MS) return kept;
    } catch {
      // an unreadable entry is no sign-in
    }
    return null;
  }

  keep(token, expiresAt) {
    const claims = claimsOf(token);
    const kept = { token, sub: claims.sub, expires_at: expiresAt ?? new Date((claims.exp ?? 0) * 1000).toISOString() };
    sessionStorage.setItem(this.key, JSON.stringify(kept));
    return kept;
  }

  forget() {
    sessionStorage.removeItem(this.key);
  }

  // The issuer sent the browser back to this page for the widget's sign-in.
  returning() {
    return this.options.auth.mode === "oauth" && isCodeFlowReturn(this.pending);
  }

  async finish() {
    const { token, expiresAt } = await finishCodeFlow(this.options.auth, { pending: this.pending, redirectUri: this.redirectUri });
    return this.keep(token, expiresAt);
  }

  // Locally: a token for this tab's visitor, from the development sign-in. On AWS: off to the issuer (the
  // page comes back with ?code=, and the widget opens again).
  async signIn() {
    if (this.options.auth.mode === "oauth") {
      await startCodeFlow(this.options.auth, { pending: this.pending, redirectUri: this.redirectUri, keep: null });
      return null;
    }
    const visitor = sessionStorage.getItem(`${this.key}.visitor`) ?? `visitor-${randomString(9)}`;
    sessionStorage.setItem(`${this.key}.visitor`, visitor);
    const { body } = await request("POST", "/_local/token", {
      base: this.options.api,
      body: { practice_id: this.options.practice, role: "client", sub: visitor },
    });
    return this.keep(body.token, body.expires_at);
  }
}

// ---- the widget -------------------------------------------------------------------------------------

const CHAT_ICON = "M4 5h16v11H9l-5 4z";

function icon(d) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "none");
  path.setAttribute("stroke", "currentColor");
  path.setAttribute("stroke-width", "2");
  path.setAttribute("stroke-linejoin", "round");
  svg.append(path);
  return svg;
}

class Widget {
  constructor(options) {
    this.options = options;
    this.identity = new Identity(options);
    this.availability = null;
    this.departmentId = null;
    this.conversation = null; // the client's view of its latest conversation
    this.messages = new Map(); // seq → message
    this.dismissed = new Set(); // the closed periods (department@opens_at) whose after-hours pop-up was closed
    this.live = null;
    this.refreshTimer = null;
    this.key = null; // the Idempotency-Key of the message being sent (the same on every try)
    this.build();
  }

  get timeZone() {
    return this.availability?.practice?.timezone ?? "UTC";
  }

  get department() {
    return this.availability?.departments.find((d) => d.id === this.departmentId) ?? null;
  }

  get hasOpenConversation() {
    return this.conversation?.status === "open";
  }

  build() {
    this.host = h("div", { "data-vetchat-widget": "" });
    const root = this.host.attachShadow({ mode: "open" });
    const styles = h("link", { rel: "stylesheet", href: new URL("css/widget.css", this.options.base).href });
    const panelId = uid("vetchat-panel");
    const titleId = uid("vetchat-title");
    this.launcher = h(
      "button",
      { type: "button", class: "launcher", "aria-expanded": "false", "aria-controls": panelId, hidden: true },
      icon(CHAT_ICON),
      h("span", { class: "launcher-text" }, "Chat with us"),
    );
    this.title = h("h2", { id: titleId, class: "title" }, "Chat with us");
    this.closeButton = h("button", { type: "button", class: "close", "aria-label": "Close chat" }, "×");
    this.banner = h("p", { class: "banner", role: "status", hidden: true });
    this.picker = h("div", { class: "picker" });
    this.greeting = h("p", { class: "greeting", hidden: true });
    this.list = h("ol", { class: "messages" });
    // A log region around the list (a list given role=log would be no list any more).
    this.thread = h("div", { class: "thread", role: "log", "aria-label": "Messages", tabindex: "0", hidden: true }, this.list);
    this.ended = h("p", { class: "note", hidden: true }, "This chat has ended. Write again to start a new one.");
    this.text = h("textarea", { id: uid("vetchat-text"), rows: 3, maxlength: 4000 });
    this.why = h("p", { class: "why", id: uid("vetchat-why") });
    this.text.setAttribute("aria-describedby", this.why.id);
    this.send = h("button", { type: "submit", class: "send" }, "Send");
    this.alert = h("div", { class: "alert", role: "alert" });
    this.form = h(
      "form",
      { class: "compose", novalidate: true },
      h("label", { for: this.text.id }, "Your message"),
      this.text,
      this.why,
      this.alert,
      h("div", { class: "actions" }, this.send),
    );
    this.popup = h("div", { class: "popup-layer", hidden: true });
    this.panel = h(
      "section",
      { id: panelId, class: "panel", role: "dialog", "aria-modal": "false", "aria-labelledby": titleId, hidden: true },
      h("header", { class: "head" }, this.title, this.closeButton),
      h("div", { class: "body" }, this.banner, this.picker, this.greeting, this.thread, this.ended, this.form),
      this.popup,
    );
    root.append(styles, h("div", { class: "root" }, this.panel, this.launcher));
    // Shown once its styles are in: never a bare button in the corner of the clinic's page.
    styles.addEventListener("load", () => {
      this.launcher.hidden = false;
    });
    styles.addEventListener("error", () => {
      this.launcher.hidden = false;
    });

    this.launcher.addEventListener("click", () => (this.panel.hidden ? this.open() : this.close()));
    this.closeButton.addEventListener("click", () => this.close());
    this.panel.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.stopPropagation();
      if (!this.popup.hidden) this.closePopup();
      else this.close();
    });
    this.text.addEventListener("input", () => {
      this.key = null;
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.sendMessage();
    });
    document.body.append(this.host);
  }

  async start() {
    if (this.identity.returning()) {
      try {
        await this.identity.finish();
      } catch (error) {
        this.say([error instanceof SignInError ? error.message : "The sign-in did not finish. Try again."]);
      }
      await this.open();
    }
    // The name on the launcher, and the session this tab already had.
    await this.refresh();
    if (this.identity.current()) this.signedIn();
  }

  async open() {
    this.panel.hidden = false;
    this.launcher.setAttribute("aria-expanded", "true");
    this.host.toggleAttribute("data-open", true);
    this.closeButton.focus();
    await this.refresh();
    // The message box when a message can be written now, else the close button keeps the focus.
    if (!this.text.disabled) this.text.focus();
    clearInterval(this.refreshTimer);
    // While the panel is open the availability is re-read (the API lets the browser revalidate it cheaply):
    // the banner follows the Online/Offline switch within one refresh. So is the chat's state: the end of a
    // chat sends the owner no frame.
    this.refreshTimer = setInterval(async () => {
      const before = this.department;
      this.syncConversation();
      await this.refresh();
      // The department closed while the panel was open (its hours ended, a non-working day was set): the
      // owner gets the pop-up as if the chat had just been opened.
      const after = this.department;
      if (before?.id === after?.id && before?.open && !after.open) this.maybePopup();
    }, this.options.refreshSeconds * 1000);
    this.maybePopup();
  }

  close() {
    this.panel.hidden = true;
    this.closePopup(false);
    this.launcher.setAttribute("aria-expanded", "false");
    this.host.toggleAttribute("data-open", false);
    clearInterval(this.refreshTimer);
    this.launcher.focus();
  }

  say(lines) {
    this.alert.replaceChildren(...lines.map((line) => h("p", null, line)));
  }

  async refresh() {
    try {
      const { body } = await request("GET", `/public/practices/${encodeURIComponent(this.options.practice)}/availability`, {
        base: this.options.api,
        cache: "no-cache",
      });
      this.availability = body;
    } catch (error) {
      if (!this.availability) {
        this.availability = { practice: null, departments: [] };
        if (error.status !== 404) this.say([explain(error)]);
      }
    }
    this.render();
  }

  render() {
    const a = this.availability;
    const name = a.practice?.name;
    this.title.textContent = name ? `Chat with ${name}` : "Chat with us";
    this.launcher.querySelector(".launcher-text").textContent = name ? `Chat with ${name}` : "Chat with us";
    const departments = a.departments;
    // The department of the open conversation, else the one chosen, else the default.
    const wanted = this.hasOpenConversation ? this.conversation.department.id : this.departmentId;
    if (!departments.some((d) => d.id === wanted)) {
      this.departmentId = (departments.find((d) => d.is_default) ?? departments[0])?.id ?? null;
    } else {
      this.departmentId = wanted;
    }
    this.renderPicker();
    const d = this.department;

    // The banner: chat is offline (the department's switch), or there is nobody to chat with.
    const offline = !d || d.reason === "offline";
    this.banner.hidden = !offline;
    this.banner.textContent = !d
      ? "Chat is not available on this site right now."
      : `Chat is offline right now: ${d.name} is not taking chats on the website.`;
    this.host.toggleAttribute("data-offline", offline);

    this.greeting.hidden = !d?.greeting;
    this.greeting.textContent = d?.greeting ?? "";
    this.ended.hidden = !this.conversation || this.hasOpenConversation;

    const canSend = Boolean(d) && (this.hasOpenConversation || d.accepts_messages_now);
    this.text.disabled = !canSend;
    this.send.disabled = !canSend;
    if (!d) this.why.textContent = "";
    else if (this.hasOpenConversation) this.why.textContent = "";
    else if (d.reason === "offline") this.why.textContent = "Messages cannot be sent while chat is offline.";
    else if (!d.open && d.accepts_messages_now) this.why.textContent = "We are closed now: leave a message and we will answer when we open.";
    else if (!d.open) this.why.textContent = `Messages can be sent when we open${d.opens_at ? `, ${opensInWords(d.opens_at, this.timeZone)}` : ""}.`;
    else this.why.textContent = "";
    if (this.options.auth.mode === "oauth" && !this.identity.current()) {
      this.send.textContent = "Sign in and send";
    } else {
      this.send.textContent = "Send";
    }
  }

  renderPicker() {
    const departments = this.availability.departments;
    const locked = this.hasOpenConversation;
    if (departments.length <= 1 || locked) {
      const d = this.department;
      this.picker.replaceChildren(
        d ? h("p", { class: "department-line" }, h("strong", null, d.name), ` · ${statusWords(d, this.timeZone)}`) : "",
      );
      return;
    }
    const name = uid("vetchat-dept");
    const legend = h("legend", null, "Who would you like to chat with?");
    const options = departments.map((d) => {
      const id = uid("vetchat-opt");
      const radio = h("input", { type: "radio", name, id, value: d.id, checked: d.id === this.departmentId });
      radio.addEventListener("change", () => {
        this.departmentId = d.id;
        this.render();
        this.maybePopup();
      });
      return h(
        "div",
        { class: "option" },
        radio,
        h("label", { for: id }, h("span", { class: "option-name" }, d.name), h("span", { class: "option-status" }, statusWords(d, this.timeZone))),
      );
    });
    // Keep the focus on the radio a keyboard user is on.
    const focused = this.picker.querySelector("input:focus")?.value;
    this.picker.replaceChildren(h("fieldset", null, legend, ...options));
    if (focused) this.picker.querySelector(`input[value="${CSS.escape(focused)}"]`)?.focus();
  }

  // After hours (outside the hours, a non-working day; not the switch: that is the banner), once per
  // department and closed period until the page is left: the practice's message and when it opens.
  maybePopup() {
    const d = this.department;
    if (this.panel.hidden || !d || d.open || d.reason === "offline" || this.hasOpenConversation) return;
    const period = `${d.id}@${d.opens_at ?? ""}`;
    if (this.dismissed.has(period) || !this.popup.hidden) return;
    const titleId = uid("vetchat-popup-title");
    const textId = uid("vetchat-popup-text");
    const buttons = [];
    if (d.accepts_messages_now) {
      const leave = h("button", { type: "button", class: "send" }, "Leave a message");
      leave.addEventListener("click", () => this.closePopup());
      buttons.push(leave);
    }
    const ok = h("button", { type: "button", class: "secondary" }, d.accepts_messages_now ? "Not now" : "OK");
    ok.addEventListener("click", () => this.closePopup());
    buttons.push(ok);
    const when = d.opens_at ? `We open again ${opensInWords(d.opens_at, this.timeZone)}.` : "";
    this.popup.replaceChildren(
      h(
        "div",
        { class: "popup", role: "alertdialog", "aria-modal": "true", "aria-labelledby": titleId, "aria-describedby": textId },
        h("h3", { id: titleId }, `${d.name} is closed right now`),
        h(
          "div",
          { id: textId },
          d.after_hours_message ? h("p", { class: "popup-message" }, d.after_hours_message) : null,
          when ? h("p", { class: "popup-opens" }, when) : null,
          d.accepts_messages_now ? null : h("p", null, "Messages cannot be left outside chat hours."),
        ),
        h("div", { class: "actions" }, ...buttons),
      ),
    );
    this.popup.hidden = false;
    this.popupFor = period;
    buttons[0].focus();
  }

  closePopup(focus = true) {
    if (this.popup.hidden) return;
    this.popup.hidden = true;
    this.popup.replaceChildren();
    if (this.popupFor) this.dismissed.add(this.popupFor);
    if (focus && !this.panel.hidden) (this.text.disabled ? this.closeButton : this.text).focus();
  }

  // ---- the conversation ---------------------------------------------------------------------------

  api() {
    const kept = this.identity.current();
    return kept?.token;
  }

  signedIn() {
    if (this.live) return;
    this.live = liveUpdates({
      ticket: async () => (await request("POST", "/realtime/tickets", { base: this.options.api, token: this.api() })).body,
      onFrame: (frame) => {
        if (frame.type !== "message.created") return;
        if (frame.conversation_id === this.conversation?.id) this.syncMessages();
        else this.syncConversation();
      },
      onSync: () => this.syncConversation(),
      pollSeconds: this.options.refreshSeconds,
    });
    this.syncConversation();
  }

  async syncConversation() {
    const token = this.api();
    if (!token) return;
    try {
      const { body } = await request("GET", "/client/conversations", { base: this.options.api, token });
      const latest = body.conversations.find((c) => c.status === "open") ?? body.conversations[0] ?? null;
      if (latest?.id !== this.conversation?.id) this.messages = new Map();
      this.conversation = latest;
      if (latest) await this.syncMessages();
      this.render();
    } catch (error) {
      if (error.code === "unauthenticated") this.identity.forget();
    }
  }

  async syncMessages() {
    const token = this.api();
    const id = this.conversation?.id;
    if (!token || !id) return;
    let after = Math.max(0, ...this.messages.keys());
    let body;
    do {
      ({ body } = await request("GET", `/client/conversations/${encodeURIComponent(id)}/messages?after=${after}`, {
        base: this.options.api,
        token,
      }));
      if (this.conversation?.id !== id) return;
      for (const m of body.messages) this.messages.set(m.seq, m);
      after = body.next_after ?? after;
    } while (body.next_after);
    this.renderThread();
  }

  renderThread() {
    const who = (m) => {
      switch (m.author.kind) {
        case "client":
          return "You";
        case "staff":
          return m.author.department_name ?? "The practice";
        case "auto":
          return `${m.author.department_name ?? "The practice"} (automatic reply)`;
        default:
          return null;
      }
    };
    const items = [...this.messages.values()]
      .sort((a, b) => a.seq - b.seq)
      .map((m) =>
        h(
          "li",
          { class: `message from-${m.author.kind}`, "data-seq": m.seq },
          who(m) ? h("p", { class: "author" }, who(m)) : null,
          h("p", { class: "text" }, m.body),
        ),
      );
    this.list.replaceChildren(...items);
    this.thread.hidden = items.length === 0;
    this.thread.scrollTop = this.thread.scrollHeight;
  }

  async sendMessage() {
    this.say([]);
    const body = this.text.value.trim();
    if (!body) {
      this.say(["Write a message first."]);
      this.text.focus();
      return;
    }
    this.send.disabled = true;
    try {
      const kept = this.identity.current() ?? (await this.identity.signIn());
      if (!kept) return; // on its way to the issuer
      this.key ??= randomString(16);
      const message = { channel: "web", body };
      if (!this.hasOpenConversation && this.departmentId) message.department_id = this.departmentId;
      const { body: answer } = await request("POST", "/inbound", {
        base: this.options.api,
        token: kept.token,
        body: message,
        idempotencyKey: this.key,
      });
      this.key = null;
      this.text.value = "";
      if (answer.conversation_id !== this.conversation?.id) {
        this.conversation = { id: answer.conversation_id, status: "open", department: { id: answer.department_id } };
        this.messages = new Map();
      }
      this.signedIn();
      await this.syncMessages();
      this.render();
      this.text.focus();
    } catch (error) {
      if (error.code === "unauthenticated") this.identity.forget();
      this.say(refusalWords(error, this.timeZone));
      // What the refusal says about the department (offline, closed) shows at once.
      if (["after_hours", "offline", "department_not_visible", "not_found"].includes(error.code)) await this.refresh();
    } finally {
      this.render();
    }
  }
}

export async function mount(options) {
  const widget = new Widget(options);
  await widget.start();
  return widget;
}
