// The Conversation Business Hours editor: a row per weekday, ticked when the department takes chats that
// day, each day with its hours as windows (opens–closes). A day is written to the API as null (not
// ticked), one window {start, end}, or a list of windows (split shifts, docs/api.md "Departments"); how many a
// day may hold is config.max_windows_per_day. The same window list serves a Working Day's own hours
// (overrides.js).

import { DAY_NAMES } from "./words.js";
import { errorSlot, h, uid } from "./dom.js";

export const DAYS = Object.keys(DAY_NAMES);
// What a newly ticked day starts with (the article: "By default all start times will be 09:00 and all end
// times will be 18:00").
const NEW_WINDOW = { start: "09:00", end: "18:00" };

export function windowsOf(day) {
  if (!day) return [];
  return Array.isArray(day) ? day.map((w) => ({ start: w.start, end: w.end })) : [{ start: day.start, end: day.end }];
}

export function dayValue(windows) {
  if (windows.length === 0) return null;
  return windows.length === 1 ? windows[0] : windows;
}

function minutes(time) {
  const [hh, mm] = String(time).split(":").map(Number);
  return Number.isFinite(hh) && Number.isFinite(mm) ? hh * 60 + mm : null;
}

function clock(total) {
  return `${String(Math.floor(total / 60)).padStart(2, "0")}:${String(total % 60).padStart(2, "0")}`;
}

// A first guess for another window of a day, to edit: from an hour after the last one closes, for an hour.
function nextWindow(last) {
  if (!last) return { ...NEW_WINDOW };
  const start = Math.min((minutes(last.end) ?? 17 * 60) + 60, 23 * 60);
  return { start: clock(start), end: clock(Math.min(start + 60, 24 * 60)) };
}

// "9:00" → "09:00", "930" → "09:30"; anything else is left for the API to judge.
export function normaliseTime(raw) {
  const text = String(raw ?? "").trim();
  const m = /^(\d{1,2})[:.h]?(\d{2})$/.exec(text);
  if (!m) return text;
  return `${m[1].padStart(2, "0")}:${m[2]}`;
}

const TIME = /^(([01]\d|2[0-3]):[0-5]\d|24:00)$/;

// A precise sentence for an invalid window of `windows` (window `index`, or any when undefined), worked out
// from the values sent; `what` names the day ("Monday", "This Working Day").
export function explainWindows(what, windows, index) {
  const picked = index === undefined ? windows.map((w, i) => [w, i]) : [[windows[index], index]];
  for (const [w, i] of picked) {
    if (!w) continue;
    if (!TIME.test(w.start ?? "") || !TIME.test(w.end ?? "")) {
      return `${what}: write times as HH:MM, e.g. 09:00 (24:00 is midnight at the end of the day).`;
    }
    if (w.start === "24:00") return `${what}: hours cannot open at 24:00; use 00:00 of the next day.`;
    if (w.start >= w.end) return `${what}: the opening time (${w.start}) must be before the closing time (${w.end}).`;
    const prev = windows[i - 1];
    if (!prev) continue;
    if (w.start < prev.start) return `${what}: put the hours in order, from morning to evening.`;
    if (w.start < prev.end) return `${what}: ${w.start}–${w.end} overlaps ${prev.start}–${prev.end}.`;
    if (w.start === prev.end) return `${what}: ${w.start}–${w.end} touches ${prev.start}–${prev.end}; make them one.`;
  }
  if (windows.length > 4) return `${what}: at most 4 sets of hours a day.`;
  return `${what}: check these hours.`;
}

// For an invalid_hours refusal at `field` (hours.mon, hours.mon[1], hours.mon.start).
export function explainHours(field, hours) {
  const m = /^hours\.(\w+)(?:\[(\d+)\])?/.exec(field ?? "");
  if (!m || !DAY_NAMES[m[1]]) return null;
  return explainWindows(DAY_NAMES[m[1]], windowsOf(hours?.[m[1]]), m[2] === undefined ? undefined : Number(m[2]));
}

function timeInput(id, value, disabled) {
  return h("input", {
    id,
    class: "time",
    type: "text",
    inputmode: "numeric",
    autocomplete: "off",
    spellcheck: "false",
    maxlength: 5,
    size: 5,
    placeholder: "HH:MM",
    value,
    disabled,
  });
}

// A day's windows: from–to inputs for each, Remove when there are several, Add hours up to `maxWindows`.
// `name` is what the labels say the hours are of ("Monday"). With `allowEmpty`, the list may be emptied and
// started again (a Working Day without hours of its own). `mark(field)` names the windows' places for
// refusals: window i is `${field}[i]`.
export function windowList({ name, windows, maxWindows, disabled, onchange, allowEmpty = false }) {
  let list = windows.map((w) => ({ ...w }));
  let field = null;
  const element = h("div", { class: "windows" });

  function render() {
    element.replaceChildren();
    list.forEach((w, i) => {
      const startId = uid("start");
      const endId = uid("end");
      const nth = list.length > 1 ? ` (hours ${i + 1})` : "";
      const start = timeInput(startId, w.start, disabled);
      const end = timeInput(endId, w.end, disabled);
      for (const [input, part] of [[start, "start"], [end, "end"]]) {
        input.addEventListener("input", () => {
          w[part] = input.value;
          onchange?.();
        });
        input.addEventListener("change", () => {
          input.value = normaliseTime(input.value);
          w[part] = input.value;
          onchange?.();
        });
      }
      const removable = !disabled && (list.length > 1 || allowEmpty);
      element.append(
        h(
          "div",
          { class: "window" },
          h("label", { for: startId }, h("span", { class: "visually-hidden" }, `${name}${nth} `), "from"),
          start,
          h("label", { for: endId }, h("span", { class: "visually-hidden" }, `${name}${nth} `), "to"),
          end,
          removable
            ? h(
                "button",
                {
                  type: "button",
                  class: "icon-button",
                  "aria-label": `Remove ${name} hours ${i + 1}`,
                  onclick: () => {
                    list.splice(i, 1);
                    render();
                    onchange?.();
                    (element.querySelector("input") ?? element.querySelector("button"))?.focus();
                  },
                },
                h("span", { "aria-hidden": "true" }, "×"),
              )
            : null,
          errorSlot(uid("window-error")),
        ),
      );
    });
    markFields();
    if (!disabled && (list.length > 0 || allowEmpty) && list.length < maxWindows) {
      element.append(
        h(
          "button",
          {
            type: "button",
            class: "link-button",
            onclick: () => {
              list.push(nextWindow(list[list.length - 1]));
              render();
              onchange?.();
              const inputs = element.querySelectorAll("input");
              inputs[inputs.length - 2]?.focus();
            },
          },
          "Add hours",
          h("span", { class: "visually-hidden" }, ` on ${name}`),
        ),
      );
    }
  }

  // A refusal names a window of a list (`${field}[i]`); a day of one window is named by the day itself.
  function markFields() {
    element.querySelectorAll(":scope > .window").forEach((div, i) => {
      if (field && list.length > 1) div.dataset.field = `${field}[${i}]`;
      else delete div.dataset.field;
    });
  }

  render();
  return {
    element,
    get windows() {
      return list.map((w) => ({ start: normaliseTime(w.start), end: normaliseTime(w.end) }));
    },
    set(next) {
      list = next.map((w) => ({ ...w }));
      render();
    },
    mark(next) {
      field = next;
      markFields();
    },
  };
}

// `hours`: the department's hours as the API returns them. Returns {element, read(), set(hours)}.
export function hoursEditor({ hours, maxWindows, disabled, onchange }) {
  const days = new Map();
  const element = h("div", { class: "hours", "data-field": "hours" }, errorSlot(uid("hours-error")));

  function set(next) {
    element.querySelectorAll(".day").forEach((row) => row.remove());
    days.clear();
    for (const key of DAYS) {
      const windows = windowsOf(next?.[key]);
      const tickId = uid(`${key}-open`);
      const tick = h("input", { type: "checkbox", id: tickId, checked: windows.length > 0, disabled });
      const list = windowList({ name: DAY_NAMES[key], windows, maxWindows, disabled, onchange });
      list.mark(`hours.${key}`);
      const closed = h("span", { class: "closed", hidden: windows.length > 0 }, "No chats this day");
      // Unticking keeps the hours here, so ticking the day again brings them back.
      let kept = windows.length ? windows : [{ ...NEW_WINDOW }];
      tick.addEventListener("change", () => {
        if (tick.checked) list.set(kept);
        else {
          kept = list.windows;
          list.set([]);
        }
        closed.hidden = tick.checked;
        onchange?.();
      });
      days.set(key, list);
      element.append(
        h(
          "div",
          { class: "day", role: "group", "aria-labelledby": `${tickId}-label`, "data-field": `hours.${key}` },
          h("div", { class: "day-name" }, tick, h("label", { for: tickId, id: `${tickId}-label` }, DAY_NAMES[key])),
          list.element,
          closed,
          errorSlot(uid(`${key}-error`)),
        ),
      );
    }
  }

  function read() {
    const out = {};
    for (const [key, list] of days) out[key] = dayValue(list.windows);
    return out;
  }

  set(hours);
  return { element, read, set };
}
