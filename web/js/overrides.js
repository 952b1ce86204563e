// The date overrides of a department, in the article's two lists:
//   "Disable Specific Date Range": from–to, closed every date of it (non_working);
//   "Enable/Disable Specific Dates": one date, a Non-Working Day or a Working Day (with its own hours, or
//   the weekday's hours when left empty).
// The API keeps one list (date_overrides); this editor splits it on load and joins it on save, ranges first.
// A multi-day working override (possible through the API) is shown among the dates with its last date. A
// Working Day's own hours are windows, as a weekday's (none: the weekday's hours).

import { errorSlot, h, removeButton, uid } from "./dom.js";
import { explainWindows, windowList } from "./hours.js";

const EDITED = ["start_date", "end_date", "kind", "start", "end", "windows"];
const WORKING_DAY = "this Working Day";

function rest(override) {
  // Members this editor does not know are sent back as they came.
  const out = { ...override };
  for (const k of EDITED) delete out[k];
  return out;
}

function ownWindows(o) {
  if (Array.isArray(o.windows)) return o.windows.map((w) => ({ start: w.start, end: w.end }));
  return o.start !== undefined || o.end !== undefined ? [{ start: o.start ?? "", end: o.end ?? "" }] : [];
}

export function explainOverride(field, sent) {
  const m = /^date_overrides\[(\d+)\](?:\.(\w+))?(?:\[(\d+)\])?/.exec(field ?? "");
  if (!m) return field === "date_overrides" ? "At most 400 date overrides." : null;
  const o = sent?.[Number(m[1])];
  if (!o) return null;
  if (!o.start_date || !o.end_date || m[2] === "start_date") return "Choose a date.";
  if (m[2] === "end_date") {
    return o.end_date < o.start_date
      ? "The last date must be on or after the first date."
      : "A date range covers at most 366 days.";
  }
  if (o.kind === "working" && (m[2] === "windows" || ownWindows(o).length)) {
    const windows = ownWindows(o);
    const index = m[3] === undefined ? undefined : Number(m[3]);
    const said = explainWindows("This Working Day", windows, index);
    if (m[2] === "windows" || !said.endsWith("check these hours.")) return said;
  }
  return "A date can have only one override: this one overlaps another date or date range.";
}

function dateInput(id, value, disabled) {
  return h("input", { id, type: "date", value: value ?? "", disabled });
}

export function overridesEditor({ overrides, maxWindows, disabled, onchange }) {
  const ranges = [];
  const dates = [];
  const rangeList = h("ul", { class: "override-list" });
  const dateList = h("ul", { class: "override-list" });

  function drop(rows, row, focusAfter) {
    rows.splice(rows.indexOf(row), 1);
    row.el.remove();
    onchange?.();
    focusAfter.focus();
  }

  function rangeRow(o) {
    const fromId = uid("range-from");
    const toId = uid("range-to");
    const row = {
      from: dateInput(fromId, o.start_date, disabled),
      to: dateInput(toId, o.end_date, disabled),
      rest: rest(o),
    };
    row.el = h(
      "li",
      { class: "override" },
      h("div", { class: "field", "data-role": "start" }, h("label", { for: fromId }, "From"), row.from, errorSlot(uid("e"))),
      h("div", { class: "field", "data-role": "end" }, h("label", { for: toId }, "To"), row.to, errorSlot(uid("e"))),
      disabled ? null : removeButton("this date range", () => drop(ranges, row, addRange)),
      errorSlot(uid("e")),
    );
    row.read = () => ({ ...row.rest, start_date: row.from.value, end_date: row.to.value, kind: "non_working" });
    ranges.push(row);
    rangeList.append(row.el);
    return row;
  }

  function dateRow(o) {
    const dayId = uid("date");
    const throughId = uid("date-through");
    const kindName = uid("kind");
    const multiDay = o.end_date && o.start_date && o.end_date !== o.start_date;
    const row = {
      day: dateInput(dayId, o.start_date, disabled),
      through: multiDay ? dateInput(throughId, o.end_date, disabled) : null,
      nonWorking: h("input", { type: "radio", name: kindName, id: `${kindName}-off`, value: "non_working", checked: o.kind !== "working", disabled }),
      working: h("input", { type: "radio", name: kindName, id: `${kindName}-on`, value: "working", checked: o.kind === "working", disabled }),
      hours: windowList({ name: WORKING_DAY, windows: ownWindows(o), maxWindows, disabled, onchange, allowEmpty: true }),
      rest: rest(o),
    };
    const hoursHintId = uid("hours-hint");
    const hoursEl = h(
      "div",
      { class: "override-hours", role: "group", "aria-label": "Hours of this Working Day", "aria-describedby": hoursHintId },
      row.hours.element,
      h("p", { class: "hint", id: hoursHintId }, "Without hours of its own, a Working Day has that weekday's hours (09:00–18:00 on a day without hours)."),
    );
    const showHours = () => {
      hoursEl.hidden = !row.working.checked;
    };
    for (const input of [row.nonWorking, row.working]) {
      input.addEventListener("change", () => {
        showHours();
        onchange?.();
      });
    }
    row.el = h(
      "li",
      { class: "override" },
      h("div", { class: "field", "data-role": "start" }, h("label", { for: dayId }, "Date"), row.day, errorSlot(uid("e"))),
      row.through
        ? h("div", { class: "field", "data-role": "end" }, h("label", { for: throughId }, "Through"), row.through, errorSlot(uid("e")))
        : null,
      h(
        "fieldset",
        { class: "kind" },
        h("legend", { class: "visually-hidden" }, "This date is a"),
        h("span", { class: "choice" }, row.nonWorking, h("label", { for: row.nonWorking.id }, "Non-Working Day")),
        h("span", { class: "choice" }, row.working, h("label", { for: row.working.id }, "Working Day")),
      ),
      hoursEl,
      disabled ? null : removeButton("this date", () => drop(dates, row, addDate)),
      errorSlot(uid("e")),
    );
    showHours();
    row.read = (i) => {
      const out = { ...row.rest, start_date: row.day.value, end_date: row.through ? row.through.value : row.day.value };
      out.kind = row.working.checked ? "working" : "non_working";
      const windows = row.working.checked ? row.hours.windows : [];
      // One window is written as start/end (a refusal then names the row); several as a list.
      row.hours.mark(`date_overrides[${i}].windows`);
      if (windows.length === 1) Object.assign(out, windows[0]);
      else if (windows.length > 1) out.windows = windows;
      return out;
    };
    dates.push(row);
    dateList.append(row.el);
    return row;
  }

  const addRange = h(
    "button",
    {
      type: "button",
      class: "secondary",
      hidden: disabled,
      onclick: () => {
        const row = rangeRow({});
        onchange?.();
        row.from.focus();
      },
    },
    "Add date range",
  );
  const addDate = h(
    "button",
    {
      type: "button",
      class: "secondary",
      hidden: disabled,
      onclick: () => {
        const row = dateRow({ kind: "non_working" });
        onchange?.();
        row.day.focus();
      },
    },
    "Add date",
  );

  for (const o of overrides ?? []) {
    if (o.kind === "non_working" && o.start_date !== o.end_date) rangeRow(o);
    else dateRow(o);
  }

  const element = h(
    "div",
    { class: "overrides", "data-field": "date_overrides" },
    errorSlot(uid("e")),
    h(
      "section",
      { class: "subsection" },
      h("h4", null, "Disable Specific Date Range"),
      h("p", { class: "hint" }, "Chat is closed on every date of the range (e.g. a holiday closure): app users receive the after-hours message."),
      rangeList,
      addRange,
    ),
    h(
      "section",
      { class: "subsection" },
      h("h4", null, "Enable/Disable Specific Dates"),
      h(
        "p",
        { class: "hint" },
        "A Non-Working Day means app users receive the after hours pop-up message if they try to start a chat; a Working Day means app users can send a chat message even if it is not a normal day for chat hours.",
      ),
      dateList,
      addDate,
    ),
  );

  // The list to send, in order; each row is marked with its place in it (date_overrides[i]) so that a
  // refusal naming that place is shown on that row.
  function read() {
    const rows = [...ranges, ...dates];
    return rows.map((row, i) => {
      row.el.dataset.field = `date_overrides[${i}]`;
      row.el.querySelector('[data-role="start"]').dataset.field = `date_overrides[${i}].start_date`;
      const end = row.el.querySelector('[data-role="end"]');
      if (end) end.dataset.field = `date_overrides[${i}].end_date`;
      return row.read(i);
    });
  }

  return { element, read };
}
