// Settings > Conversations > Departments/Providers: every department collapsed under its name, the caret to
// see and hide its settings, the Online/Offline switch and the trash can on its row, Add New Department,
// and per department the settings of the help article, saved with If-Match so that nobody's changes are
// overwritten. Admins change everything; staff see the settings and may switch a department online/offline.

import { apiFor } from "./api.js";
import { config } from "./config.js";
import { clearFieldErrors, errorSlot, field, h, present, removeButton, showFieldError, uid } from "./dom.js";
import { explainHours, hoursEditor } from "./hours.js";
import { explainOverride, overridesEditor } from "./overrides.js";
import { requireSession, signOut } from "./session.js";
import { explain } from "./words.js";

const session = requireSession();
const $ = (id) => document.getElementById(id);

const VISIBLE_HINT =
  "App users can start a chat with, and receive a chat greeting from, this department. Recommended for internal departments that take chats during working hours (grooming, boarding/lodging, specialty teams).";
const HIDDEN_HINT =
  "App users cannot start a chat with, or receive a chat greeting from, this department, so it needs no chat hours. Anyone messaging from it in the dashboard can start their own chats at any time and answer chats transferred to it. Recommended for a veterinarian doing scheduled telehealth consultations.";
const DEFAULT_VISIBLE_HINT =
  "This department is always visible in the mobile app. All incoming text messages are delivered here, because text users cannot choose a department.";
const ALLOWED_HINT =
  "App users who write outside chat hours get this message as an automatic reply, and their message waits for you.";
const REFUSED_HINT =
  "App users who try to start a chat outside chat hours see this message, and no chat is started.";
const OUTSIDE_US_CA =
  "Practices outside the U.S. and Canada will not be able to receive text messages for incoming new chats or department change alerts.";

// Fields that change without an edit of the settings: a save never compares them.
const VOLATILE = ["etag", "open_conversations"];

function without(department, keys) {
  const copy = { ...department };
  for (const k of [...VOLATILE, ...keys]) delete copy[k];
  return JSON.stringify(copy);
}

function openChats(n) {
  return n === 1 ? "1 open chat" : `${n} open chats`;
}

const ICONS = {
  caret: () =>
    svg("0 0 16 16", "M6 3.5 10.5 8 6 12.5", { class: "caret-icon", fill: "none", stroke: "currentColor", "stroke-width": 2 }),
  trash: () =>
    svg(
      "0 0 24 24",
      "M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13M10 11v6M14 11v6",
      { fill: "none", stroke: "currentColor", "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round" },
    ),
  lock: () =>
    svg(
      "0 0 24 24",
      "M7 11V8a5 5 0 0 1 10 0v3M5 11h14v10H5z",
      { fill: "none", stroke: "currentColor", "stroke-width": 2, "stroke-linejoin": "round" },
    ),
};

function svg(viewBox, d, attrs) {
  const ns = "http://www.w3.org/2000/svg";
  const el = document.createElementNS(ns, "svg");
  el.setAttribute("viewBox", viewBox);
  el.setAttribute("aria-hidden", "true");
  el.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  for (const [k, v] of Object.entries(attrs)) (k === "class" ? el : path).setAttribute(k, String(v));
  el.append(path);
  return el;
}

class Page {
  constructor(api, settings) {
    this.api = api;
    this.settings = settings;
    this.admin = session.role === "admin";
    this.cards = [];
    this.list = $("departments");
    this.status = $("page-status");
    this.alert = $("page-alert");
    this.dialog = $("remove-dialog");
  }

  say(text) {
    this.status.textContent = text;
  }

  warn(text, action) {
    this.alert.replaceChildren();
    if (!text) return;
    this.alert.append(h("p", null, text, action ? " " : null, action));
  }

  // The refusals that are about the session or the service, not about a field: shown at the top.
  pageLevel(error) {
    if (error.code === "unauthenticated") {
      this.warn(explain(error), h("a", { href: `/?next=${encodeURIComponent(location.pathname)}` }, "Sign in"));
      return true;
    }
    if (["network", "unavailable", "forbidden", "rate_limited"].includes(error.code)) {
      this.warn(explain(error));
      return true;
    }
    return false;
  }

  async load() {
    if (!["admin", "staff"].includes(session.role)) {
      this.warn("This page is for practice staff. Sign in as an admin or a staff member.");
      return;
    }
    try {
      this.practice = (await this.api.get("/practice")).body;
    } catch (error) {
      if (error.code === "not_found") return this.showSetup();
      if (!this.pageLevel(error)) this.warn(explain(error));
      return;
    }
    try {
      const { body } = await this.api.get("/departments");
      this.render(body);
    } catch (error) {
      if (error.code === "practice_not_set_up") return this.showSetup();
      if (!this.pageLevel(error)) this.warn(explain(error));
    }
  }

  get smsAllowed() {
    return ["US", "CA"].includes(this.practice?.country);
  }

  render(departments) {
    this.list.replaceChildren();
    this.cards = departments.map((d) => new Card(this, d));
    for (const card of this.cards) this.list.append(card.element);
    if (!this.admin) {
      this.say("");
      this.list.before(
        h("p", { class: "notice" }, "You can switch departments online and offline. Only a practice admin can change their settings."),
      );
    }
    $("add").hidden = !this.admin;
  }

  showSetup() {
    const section = $("setup");
    section.hidden = false;
    const form = $("setup-form");
    form.replaceChildren();
    if (!this.admin) {
      form.append(h("p", null, "A practice admin must set up the practice first."));
      return;
    }
    const name = h("input", { type: "text", autocomplete: "organization", maxlength: 80 });
    const zones = Intl.supportedValuesOf?.("timeZone") ?? ["UTC"];
    const here = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const zone = h(
      "select",
      null,
      zones.map((z) => h("option", { value: z, selected: z === here }, z.replace(/_/g, " "))),
    );
    const country = h("input", { type: "text", autocomplete: "country", maxlength: 2, size: 3, value: "US" });
    const submit = h("button", { type: "submit", class: "primary" }, "Set up practice");
    form.append(
      field({ name: "name", label: "Practice name", control: name, hint: 'The default department is called "<Practice name> Team".' }),
      field({ name: "timezone", label: "Time zone", control: zone, hint: "Business hours are in this time zone." }),
      field({ name: "country", label: "Country", control: country, hint: "Two-letter code: US, CA, GB…" }),
      errorSlot("setup-error"),
      h("div", { class: "actions" }, submit),
    );
    form.onsubmit = async (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      submit.disabled = true;
      try {
        await this.api.put("/practice", {
          name: name.value,
          timezone: zone.value,
          country: country.value.trim().toUpperCase(),
        });
        section.hidden = true;
        this.say("The practice is set up.");
        await this.load();
        this.cards[0]?.caret.focus();
      } catch (error) {
        if (!this.pageLevel(error)) {
          const place = error.field ? showFieldError(form, error.field, explain(error)) : null;
          if (place) place.focus();
          else showFieldError(form, "name", explain(error))?.focus();
        }
      } finally {
        submit.disabled = false;
      }
    };
    name.focus();
  }

  setUpAdd() {
    const button = $("add-button");
    const form = $("add-form");
    const name = h("input", { type: "text", maxlength: 80, autocomplete: "off" });
    const visible = h("input", { type: "checkbox" });
    const submit = h("button", { type: "submit", class: "primary" }, "Add department");
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    form.append(
      h("h2", null, "Add New Department"),
      field({
        name: "name",
        label: "Department name",
        control: name,
        hint: "App users see this name when they choose which department to send a message to, and during the chat.",
      }),
      field({ name: "visible_in_app", label: "Make this department/provider visible in mobile app", control: visible, hint: VISIBLE_HINT }),
      h("p", { class: "hint" }, "Its alerts, reminder, hours and chat preferences are set once it is added."),
      h("div", { class: "actions" }, submit, cancel),
    );
    const visibleHint = form.querySelector(`#${visible.id}-hint`);
    visible.addEventListener("change", () => {
      visibleHint.textContent = visible.checked ? VISIBLE_HINT : HIDDEN_HINT;
    });
    visibleHint.textContent = HIDDEN_HINT;
    const close = () => {
      form.hidden = true;
      button.setAttribute("aria-expanded", "false");
      clearFieldErrors(form);
      button.focus();
    };
    button.onclick = () => {
      const open = form.hidden;
      form.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      if (open) name.focus();
    };
    cancel.onclick = close;
    form.addEventListener("keydown", (event) => {
      if (event.key === "Escape") close();
    });
    form.onsubmit = async (event) => {
      event.preventDefault();
      clearFieldErrors(form);
      submit.disabled = true;
      try {
        const { body } = await this.api.post("/departments", { name: name.value, visible_in_app: visible.checked });
        const card = new Card(this, body);
        this.cards.push(card);
        this.list.append(card.element);
        name.value = "";
        visible.checked = false;
        close();
        card.setExpanded(true);
        card.caret.focus();
        this.say(`${body.name} was added. Set its alerts, reminder and hours below, then Save.`);
      } catch (error) {
        if (!this.pageLevel(error)) (showFieldError(form, error.field ?? "name", explain(error)) ?? name).focus();
      } finally {
        submit.disabled = false;
      }
    };
  }

  // The trash can's question, answered by the dialog.
  confirmRemove(card) {
    const d = card.base;
    $("remove-title").textContent = `Remove ${d.name}?`;
    $("remove-open").textContent = d.open_conversations
      ? `${d.name} has ${openChats(d.open_conversations)} right now: end them or transfer them first.`
      : "";
    return new Promise((resolve) => {
      const done = (answer) => {
        this.dialog.removeEventListener("close", onClose);
        resolve(answer);
      };
      const onClose = () => done(this.dialog.returnValue === "remove");
      $("remove-confirm").onclick = () => this.dialog.close("remove");
      $("remove-cancel").onclick = () => this.dialog.close("cancel");
      this.dialog.returnValue = "cancel";
      this.dialog.addEventListener("close", onClose);
      this.dialog.showModal();
      $("remove-cancel").focus();
    });
  }

  async remove(card) {
    const name = card.base.name;
    if (!(await this.confirmRemove(card))) {
      card.trash?.focus();
      return;
    }
    try {
      await this.api.delete(`/departments/${encodeURIComponent(card.id)}`);
      this.cards.splice(this.cards.indexOf(card), 1);
      card.element.remove();
      this.say(`${name} was removed.`);
      $("add-button").focus();
    } catch (error) {
      if (this.pageLevel(error)) return;
      if (error.code === "department_has_open_conversations") {
        // Say how many, as the service counts them now.
        try {
          card.adopt((await this.api.get(`/departments/${encodeURIComponent(card.id)}`)).body, []);
        } catch {
          // the count stays as it was
        }
        const n = card.base.open_conversations;
        card.warn(
          `${name} cannot be removed: it still has ${n ? openChats(n) : "open chats"}. End those chats, or transfer them to another department, first.`,
        );
      } else if (error.code === "not_found") {
        this.cards.splice(this.cards.indexOf(card), 1);
        card.element.remove();
        this.say(`${name} was already removed.`);
        return;
      } else {
        card.warn(explain(error));
      }
      card.trash?.focus();
    }
  }
}

class Card {
  constructor(page, department) {
    this.page = page;
    this.base = department;
    this.dirty = false;
    const key = uid("dep");
    this.bodyId = `${key}-body`;
    this.nameId = `${key}-name`;
    this.caret = h(
      "button",
      { type: "button", class: "caret", "aria-expanded": "false", "aria-controls": this.bodyId },
      ICONS.caret(),
      h("span", { class: "name", id: this.nameId }),
    );
    this.badges = h("span", { class: "badges" });
    this.switchState = h("span", { class: "switch-state", id: `${key}-state` });
    this.onlineSwitch = h(
      "button",
      {
        type: "button",
        role: "switch",
        class: "switch",
        "aria-labelledby": `${this.nameId} ${key}-chat ${key}-state`,
        onclick: () => this.toggleOnline(),
      },
      h("span", { class: "visually-hidden", id: `${key}-chat` }, "chat:"),
      h("span", { class: "track", "aria-hidden": "true" }, h("span", { class: "knob" })),
      this.switchState,
    );
    if (department.is_default) {
      this.trash = null;
      this.lock = h("span", { class: "locked" }, ICONS.lock(), "Cannot be deleted or renamed");
    } else {
      this.trash = h(
        "button",
        { type: "button", class: "icon-button danger", hidden: !page.admin, onclick: () => page.remove(this) },
        ICONS.trash(),
        h("span", { class: "visually-hidden" }, `Remove ${department.name}`),
      );
    }
    this.statusEl = h("p", { class: "card-status", role: "status" });
    this.alertEl = h("div", { class: "card-alert", role: "alert" });
    this.body = h("div", { class: "department-body", id: this.bodyId, hidden: true });
    this.caret.addEventListener("click", () => this.setExpanded(this.body.hidden));
    this.element = h(
      "article",
      { class: `department${department.is_default ? " is-default" : ""}`, "aria-labelledby": this.nameId, "data-id": department.id },
      h(
        "div",
        { class: "department-head" },
        h("h2", { class: "department-title" }, this.caret),
        this.badges,
        h("div", { class: "head-actions" }, this.onlineSwitch, this.trash ?? this.lock),
      ),
      this.alertEl,
      this.statusEl,
      this.body,
    );
    this.renderHead();
    this.renderBody();
  }

  get id() {
    return this.base.id;
  }

  get path() {
    return `/departments/${encodeURIComponent(this.id)}`;
  }

  say(text) {
    this.statusEl.textContent = text;
  }

  warn(text, action) {
    this.alertEl.replaceChildren();
    if (text) this.alertEl.append(h("p", null, text, action ? " " : null, action ?? null));
  }

  setExpanded(open) {
    this.body.hidden = !open;
    this.caret.setAttribute("aria-expanded", String(open));
    this.element.classList.toggle("expanded", open);
  }

  renderHead() {
    const d = this.base;
    this.element.querySelector(".name").textContent = d.name;
    this.badges.replaceChildren(
      ...present(
        d.is_default ? h("span", { class: "badge" }, "Default") : null,
        h("span", { class: "badge" }, d.visible_in_app ? "Visible in mobile app" : "Not in mobile app"),
        d.open_conversations ? h("span", { class: "badge" }, openChats(d.open_conversations)) : null,
        this.dirty ? h("span", { class: "badge unsaved" }, "Unsaved changes") : null,
      ),
    );
    this.onlineSwitch.setAttribute("aria-checked", String(d.online));
    this.switchState.textContent = d.online ? "Online" : "Offline";
    this.element.classList.toggle("offline", !d.online);
  }

  // The server's copy after our own change of `keys` (the switch, the hours reset): its etag is taken only
  // if nothing else changed since we read it, so that a later Save still finds out about anyone else's edit.
  adopt(fresh, keys) {
    if (without(this.base, keys) === without(fresh, keys)) {
      this.base = fresh;
    } else {
      const next = { ...this.base, open_conversations: fresh.open_conversations };
      for (const k of keys) next[k] = fresh[k];
      this.base = next;
    }
    this.renderHead();
  }

  async toggleOnline() {
    const online = !this.base.online;
    this.onlineSwitch.disabled = true;
    this.warn("");
    try {
      const { body } = await this.page.api.put(`${this.path}/online`, { online });
      this.adopt(body, ["online"]);
      this.say(
        online
          ? `${body.name} is online: it takes new chats during its hours.`
          : `${body.name} is offline: it takes no new web or app chats until it is switched back online. Texts still arrive.`,
      );
    } catch (error) {
      if (!this.page.pageLevel(error)) this.warn(explain(error));
    } finally {
      this.onlineSwitch.disabled = false;
      this.onlineSwitch.focus();
    }
  }

  markDirty() {
    const dirty = JSON.stringify(this.collect()) !== this.initial;
    if (dirty !== this.dirty) {
      this.dirty = dirty;
      this.renderHead();
    }
  }

  renderBody() {
    const d = this.base;
    const admin = this.page.admin;
    const onchange = () => this.markDirty();
    const c = {};
    this.controls = c;

    // 1. Name and visibility.
    c.name = h("input", { type: "text", value: d.name, maxlength: 80, autocomplete: "off", readonly: d.is_default });
    c.visible = h("input", { type: "checkbox", checked: d.visible_in_app, disabled: d.is_default });
    const visibleField = field({
      name: "visible_in_app",
      label: "Make this department/provider visible in mobile app",
      control: c.visible,
      hint: d.is_default ? DEFAULT_VISIBLE_HINT : d.visible_in_app ? VISIBLE_HINT : HIDDEN_HINT,
    });

    // 2. New message alert.
    c.alerts = h("input", { type: "checkbox", checked: d.alerts.enabled });
    c.emails = h("input", { type: "text", value: d.alerts.emails.join(", "), autocomplete: "off", spellcheck: "false" });
    c.phones = [];
    const phoneList = h("ul", { class: "phone-list" });
    const phonesField = h("div", { class: "field", "data-field": "alerts.sms_numbers" });
    const addPhone = (value) => {
      const id = uid("phone");
      const input = h("input", { id, type: "tel", value, autocomplete: "off" });
      const item = h(
        "li",
        { class: "phone" },
        h("label", { for: id, class: "visually-hidden" }, "Phone number"),
        input,
        admin
          ? removeButton("this phone number", () => {
              c.phones.splice(c.phones.indexOf(entry), 1);
              item.remove();
              onchange();
              addNew.focus();
            })
          : null,
        errorSlot(uid("e")),
      );
      const entry = { input, item };
      c.phones.push(entry);
      phoneList.append(item);
      return input;
    };
    const addNew = h(
      "button",
      { type: "button", class: "secondary", hidden: !admin, onclick: () => { addPhone("").focus(); onchange(); } },
      "Add New",
      h("span", { class: "visually-hidden" }, " phone number"),
    );
    if (this.page.smsAllowed) {
      for (const n of d.alerts.sms_numbers) addPhone(n);
      const phonesLabel = uid("phones");
      phoneList.setAttribute("aria-labelledby", phonesLabel);
      phonesField.append(
        h("span", { class: "label", id: phonesLabel }, "Phone numbers for text alerts"),
        h("p", { class: "hint" }, "One phone number per line. To add another, click Add New."),
        phoneList,
        addNew,
        errorSlot(uid("e")),
      );
    } else {
      phonesField.append(h("p", { class: "notice" }, OUTSIDE_US_CA));
    }

    // 3. Reminder for unresolved conversations.
    c.reminder = h("input", { type: "checkbox", checked: d.unresolved_reminder.enabled });
    c.reminderAt = h("input", {
      type: "text",
      class: "time",
      inputmode: "numeric",
      autocomplete: "off",
      maxlength: 5,
      size: 5,
      placeholder: "HH:MM",
      value: d.unresolved_reminder.at ?? "",
    });

    // 4. Conversation Business Hours and the date overrides.
    c.hours = hoursEditor({ hours: d.hours, maxWindows: this.page.settings.max_windows_per_day, disabled: !admin, onchange });
    c.overrides = overridesEditor({
      overrides: d.date_overrides,
      maxWindows: this.page.settings.max_windows_per_day,
      disabled: !admin,
      onchange,
    });

    // 5. App Chat Preferences.
    c.greeting = h("textarea", { rows: 2, maxlength: 1000 }, d.chat.greeting ?? "");
    c.allowAfter = h("input", { type: "checkbox", checked: d.chat.allow_messages_after_hours });
    c.afterMessage = h("textarea", { rows: 2, maxlength: 1000 }, d.chat.after_hours_message ?? "");
    const afterField = field({
      name: "chat.after_hours_message",
      label: "Message outside chat hours",
      control: c.afterMessage,
      hint: d.chat.allow_messages_after_hours ? ALLOWED_HINT : REFUSED_HINT,
    });

    const forApp = [
      h(
        "section",
        { class: "group" },
        h("h3", null, "Conversation Business Hours"),
        h(
          "p",
          { class: "hint" },
          "Tick the days of the week this department accepts incoming conversations, and set its hours for each day (24-hour times; 24:00 is midnight at the end of the day). An unticked day has no chat.",
        ),
        c.hours.element,
        h(
          "p",
          { class: "hint" },
          "Disable Specific Date Range and Enable/Disable Specific Dates override the Conversation Business Hours for any specific date.",
        ),
        c.overrides.element,
      ),
      h(
        "section",
        { class: "group" },
        h("h3", null, "App Chat Preferences"),
        field({
          name: "chat.greeting",
          label: "Chat greeting",
          control: c.greeting,
          hint: "Sent automatically to the app user as soon as a chat message is sent from the mobile app. Leave empty for none.",
        }),
        field({ name: "chat.allow_messages_after_hours", label: "Allow app users to leave a message outside chat hours", control: c.allowAfter }),
        afterField,
      ),
    ];
    const notForApp = h(
      "p",
      { class: "notice" },
      "This department is not visible in the mobile app, so it needs no chat hours or chat preferences.",
    );

    this.conflictEl = h("div", { class: "conflict", role: "alert" });
    this.formAlert = h("p", { class: "form-alert", role: "alert" });
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    const resetHintId = uid("reset-hint");
    const reset = h(
      "button",
      { type: "button", class: "secondary", "aria-describedby": resetHintId, onclick: () => this.resetHours() },
      "Reset",
    );
    const resetHint = h(
      "p",
      { class: "hint", id: resetHintId },
      "Reset puts the Conversation Business Hours back to the default right away: 09:00–18:00 Monday to Friday, no chat at the weekend. Date overrides are kept.",
    );
    this.saveButton = save;
    this.resetButton = reset;

    const fieldset = h(
      "fieldset",
      { class: "plain", disabled: !admin },
      h("legend", { class: "visually-hidden" }, `Settings of ${d.name}`),
      h(
        "section",
        { class: "group" },
        h("h3", null, "Department"),
        field({
          name: "name",
          label: "Department name",
          control: c.name,
          hint: d.is_default
            ? "This is the default department: its name cannot be changed and it cannot be deleted. Its other settings can."
            : "App users see this name when they choose which department to send a message to, and during the chat.",
        }),
        visibleField,
      ),
      h(
        "section",
        { class: "group" },
        h("h3", null, "New message alert"),
        field({
          name: "alerts.enabled",
          label: "Enable a new message alert",
          control: c.alerts,
          hint: "An email and/or text message alerts of a new conversation in this department that needs attention: a new incoming conversation, or one transferred to this department.",
        }),
        field({
          name: "alerts.emails",
          label: "Emails",
          control: c.emails,
          hint: "Several emails can go on this line, separated with a comma.",
        }),
        phonesField,
      ),
      h(
        "section",
        { class: "group" },
        h("h3", null, "Reminder for unresolved conversations"),
        field({
          name: "unresolved_reminder.enabled",
          label: "Enable a reminder for unresolved conversations",
          control: c.reminder,
          hint: "Sends an email reminder near the end of each day to end any open conversations. It is important to end all open conversations at the end of each day to avoid receiving further incoming messages from open conversations after hours.",
        }),
        field({
          name: "unresolved_reminder.at",
          label: "Send the reminder at",
          control: c.reminderAt,
          hint: "24-hour time, e.g. 17:30. Leave empty to send it 30 minutes before that day's closing time (17:30 on a day without hours).",
        }),
      ),
      h("div", { class: "for-app" }, forApp),
      notForApp,
    );

    const form = h(
      "form",
      { class: "department-form", novalidate: true, "aria-labelledby": this.nameId },
      this.conflictEl,
      fieldset,
      admin ? h("div", { class: "form-footer" }, this.formAlert, h("div", { class: "actions" }, save, reset), resetHint) : null,
    );
    this.form = form;

    const showForApp = () => {
      const visible = c.visible.checked;
      form.querySelector(".for-app").hidden = !visible;
      notForApp.hidden = visible;
      reset.hidden = !visible;
      resetHint.hidden = !visible;
      if (!d.is_default) form.querySelector(`#${c.visible.id}-hint`).textContent = visible ? VISIBLE_HINT : HIDDEN_HINT;
    };
    c.visible.addEventListener("change", showForApp);
    c.allowAfter.addEventListener("change", () => {
      afterField.querySelector(".hint").textContent = c.allowAfter.checked ? ALLOWED_HINT : REFUSED_HINT;
    });
    c.reminderAt.addEventListener("change", () => {
      c.reminderAt.value = c.reminderAt.value.trim().replace(/^(\d):/, "0$1:");
    });
    form.addEventListener("input", onchange);
    form.addEventListener("change", onchange);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });

    this.body.replaceChildren(form);
    showForApp();
    this.initial = JSON.stringify(this.collect());
    this.dirty = false;
    this.renderHead();
  }

  // The merge patch Save sends: every setting of the form (the switch has its own endpoint).
  collect() {
    const c = this.controls;
    const sms = [];
    let line = 0;
    for (const { input, item } of c.phones) {
      const value = input.value.trim();
      delete item.dataset.field;
      if (!value) continue;
      // A refusal names the number's place in the list sent (alerts.sms_numbers[1]): mark that line.
      item.dataset.field = `alerts.sms_numbers[${line}]`;
      line += 1;
      sms.push(value);
    }
    const body = {
      name: c.name.value,
      visible_in_app: c.visible.checked,
      alerts: {
        enabled: c.alerts.checked,
        emails: c.emails.value,
        // Outside the U.S. and Canada there are no text alerts: any number left from before is cleared.
        sms_numbers: this.page.smsAllowed ? sms : [],
      },
      unresolved_reminder: { enabled: c.reminder.checked, at: c.reminderAt.value.trim() || null },
      hours: c.hours.read(),
      date_overrides: c.overrides.read(),
      chat: {
        greeting: c.greeting.value.trim() || null,
        allow_messages_after_hours: c.allowAfter.checked,
        after_hours_message: c.afterMessage.value.trim() || null,
      },
    };
    if (this.base.is_default) {
      // The default department keeps its name and is always visible: neither is sent.
      delete body.name;
      delete body.visible_in_app;
    }
    return body;
  }

  clearMessages() {
    clearFieldErrors(this.form);
    this.formAlert.textContent = "";
    this.conflictEl.replaceChildren();
    this.warn("");
    this.say("");
  }

  async save() {
    this.clearMessages();
    const sent = this.collect();
    this.saveButton.disabled = true;
    this.say("Saving…");
    try {
      const { body } = await this.page.api.patch(this.path, sent, this.base.etag);
      this.base = body;
      this.renderBody();
      this.say(`${body.name}: changes saved.`);
      this.saveButton.focus();
    } catch (error) {
      this.say("");
      this.showRefusal(error, sent);
    } finally {
      this.saveButton.disabled = false;
    }
  }

  showRefusal(error, sent) {
    if (error.code === "stale_etag") return this.showConflict();
    if (this.page.pageLevel(error)) return;
    let text = explain(error);
    if (error.code === "invalid_hours" && error.field?.startsWith("hours")) text = explainHours(error.field, sent.hours) ?? text;
    if (error.code === "invalid_date_override") text = explainOverride(error.field, sent.date_overrides) ?? text;
    const place = error.field ? showFieldError(this.form, error.field, text) : null;
    if (place) {
      this.formAlert.textContent = "Not saved: see the message next to the highlighted setting.";
      place.focus();
    } else {
      this.formAlert.textContent = `Not saved: ${text}`;
      this.saveButton.focus();
    }
  }

  // Someone else saved first (412): nothing was changed, the edits stay on the page, and Reload shows the
  // settings as saved now.
  showConflict() {
    const reload = h(
      "button",
      { type: "button", class: "primary", onclick: () => this.reload() },
      `Reload ${this.base.name}`,
    );
    this.conflictEl.replaceChildren(
      h("p", null, h("strong", null, "Not saved: "), `someone else saved changes to ${this.base.name} after you opened it. Nothing was overwritten.`),
      h("p", null, "Reload shows the settings as they are saved now; your changes on this page are then dropped, so note them first if you need them."),
      reload,
    );
    reload.focus();
  }

  async reload() {
    try {
      const { body } = await this.page.api.get(this.path);
      this.base = body;
      this.renderBody();
      this.say(`${body.name}: showing the saved settings.`);
      this.caret.focus();
    } catch (error) {
      if (error.code === "not_found") {
        this.page.cards.splice(this.page.cards.indexOf(this), 1);
        this.element.remove();
        this.page.say(`${this.base.name} was removed by someone else.`);
      } else if (!this.page.pageLevel(error)) this.warn(explain(error));
    }
  }

  async resetHours() {
    this.clearMessages();
    this.resetButton.disabled = true;
    try {
      const { body } = await this.page.api.post(`${this.path}/hours/reset`);
      this.adopt(body, ["hours"]);
      this.controls.hours.set(body.hours);
      // The form's starting point follows: the reset hours are saved, not an unsaved change.
      const start = JSON.parse(this.initial);
      start.hours = this.controls.hours.read();
      this.initial = JSON.stringify(start);
      this.markDirty();
      this.say(`${body.name}: business hours are back to 09:00–18:00, Monday to Friday.`);
    } catch (error) {
      if (!this.page.pageLevel(error)) {
        this.formAlert.textContent = explain(error);
      }
    } finally {
      this.resetButton.disabled = false;
      this.resetButton.focus();
    }
  }
}

async function main() {
  if (!session) return;
  $("who").textContent = `${session.sub} · ${session.role} · ${session.practice_id}`;
  $("sign-out").addEventListener("click", () => signOut());
  const page = new Page(apiFor(session), await config());
  page.setUpAdd();
  window.addEventListener("beforeunload", (event) => {
    if (page.cards.some((card) => card.dirty)) event.preventDefault();
  });
  await page.load();
  document.body.dataset.ready = "true";
}

main();
