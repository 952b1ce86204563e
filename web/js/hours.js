// The Conversation Business Hours editor: a row per weekday, ticked when the department takes chats that
// day, each day with its hours as windows (opens–closes). A day is written to the API as null (not
// ticked), one window {start, end}, or a list of windows (split shifts, API.md "Departments"); how many a
// day may hold is config.max_windows_per_day (1 until split shifts land in the API, then 4).

import { DAY_NAMES } from "./words.js";
import { errorSlot, h, uid } from "./dom.js";

export const DAYS = Object.keys(DAY_NAMES);
// What a newly ticked day starts with (the article: "By default all start times will be 09:00 and all end
// times will be 18:00").
const NEW_WINDOW = { start: "09:00", end: "18:00" };

export function windowsOf(day) {
  if (!day) return [];
  return Array.isArray(day) ? day.map((w) => ({ ...w })) : [{ start: day.start, end: day.end }];
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

// A precise sentence for an invalid_hours refusal at `field` (hours.mon, hours.mon[1], hours.mon.start),
// worked out from the hours that were sent.
export function explainHours(field, hours) {
  const m = /^hours\.(\w+)(?:\[(\d+)\])?/.exec(field ?? "");
  if (!m || !DAY_NAMES[m[1]]) return null;
  const day = DAY_NAMES[m[1]];
  const windows = windowsOf(hours?.[m[1]]);
  const suspects = m[2] === undefined ? windows : windows.slice(Number(m[2]), Number(m[2]) + 1);
  for (const w of suspects) {
    if (!TIME.test(w.start ?? "") || !TIME.test(w.end ?? "")) {
      return `${day}: write times as HH:MM, e.g. 09:00 (24:00 is midnight at the end of the day).`;
    }
    if (w.start === "24:00") return `${day}: hours cannot open at 24:00; use 00:00 of the next day.`;
    if (w.start >= w.end) {
      return `${day}: the opening time (${w.start}) must be before the closing time (${w.end}).`;
    }
  }
  return `${day}: the hours of one day must go from morning to evening without overlapping or touching.`;
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

// `hours`: the department's hours as the API returns them. Returns {element, read(), set(hours)}.
export function hoursEditor({ hours, maxWindows, disabled, onchange }) {
  const days = new Map();
  const element = h("div", { class: "hours", "data-field": "hours" }, errorSlot(uid("hours-error")));

  function renderDay(key) {
    const state = days.get(key);
    const dayName = DAY_NAMES[key];
    state.windowsEl.replaceChildren();
    state.windows.forEach((w, i) => {
      const startId = uid(`${key}-start`);
      const endId = uid(`${key}-end`);
      const nth = state.windows.length > 1 ? ` (hours ${i + 1})` : "";
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
      const remove =
        state.windows.length > 1 && !disabled
          ? h(
              "button",
              {
                type: "button",
                class: "icon-button",
                "aria-label": `Remove ${dayName} hours ${i + 1}`,
                onclick: () => {
                  state.windows.splice(i, 1);
                  renderDay(key);
                  onchange?.();
                  state.windowsEl.querySelector("input")?.focus();
                },
              },
              h("span", { "aria-hidden": "true" }, "×"),
            )
          : null;
      state.windowsEl.append(
        h(
          "div",
          { class: "window", "data-field": `hours.${key}[${i}]` },
          h("label", { for: startId }, h("span", { class: "visually-hidden" }, `${dayName}${nth} `), "from"),
          start,
          h("label", { for: endId }, h("span", { class: "visually-hidden" }, `${dayName}${nth} `), "to"),
          end,
          remove,
          errorSlot(uid("window-error")),
        ),
      );
    });
    if (!disabled && state.windows.length > 0 && state.windows.length < maxWindows) {
      const last = state.windows[state.windows.length - 1];
      state.windowsEl.append(
        h(
          "button",
          {
            type: "button",
            class: "link-button",
            onclick: () => {
              state.windows.push(nextWindow(last));
              renderDay(key);
              onchange?.();
              const inputs = state.windowsEl.querySelectorAll("input");
              inputs[inputs.length - 2]?.focus();
            },
          },
          `Add hours on ${dayName}`,
        ),
      );
    }
    state.closedEl.hidden = state.windows.length > 0;
  }

  function set(next) {
    element.querySelectorAll(".day").forEach((row) => row.remove());
    days.clear();
    for (const key of DAYS) {
      const windows = windowsOf(next?.[key]);
      const tickId = uid(`${key}-open`);
      const tick = h("input", { type: "checkbox", id: tickId, checked: windows.length > 0, disabled });
      const windowsEl = h("div", { class: "windows" });
      const closedEl = h("span", { class: "closed" }, "No chats this day");
      // Unticking keeps the hours here, so ticking the day again brings them back.
      const state = { windows, windowsEl, closedEl, kept: windows.length ? windows : [{ ...NEW_WINDOW }] };
      days.set(key, state);
      tick.addEventListener("change", () => {
        if (tick.checked) state.windows = state.kept.map((w) => ({ ...w }));
        else {
          state.kept = state.windows.map((w) => ({ ...w }));
          state.windows = [];
        }
        renderDay(key);
        onchange?.();
      });
      const row = h(
        "div",
        { class: "day", role: "group", "aria-labelledby": `${tickId}-label`, "data-field": `hours.${key}` },
        h("div", { class: "day-name" }, tick, h("label", { for: tickId, id: `${tickId}-label` }, DAY_NAMES[key])),
        windowsEl,
        closedEl,
        errorSlot(uid(`${key}-error`)),
      );
      element.append(row);
      renderDay(key);
    }
  }

  function read() {
    const out = {};
    for (const [key, state] of days) {
      out[key] = dayValue(state.windows.map((w) => ({ start: normaliseTime(w.start), end: normaliseTime(w.end) })));
    }
    return out;
  }

  set(hours);
  return { element, read, set };
}
