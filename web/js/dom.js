// Building elements without innerHTML (no text of the API is ever parsed as HTML), and the one way every
// page shows a refusal of the API next to the field it names.

let counter = 0;

// A page-unique id for label/for and aria-* links.
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// h("button", {type: "button", class: "x", onclick: f}, "text", child…). Attributes set to null, undefined
// or false are left out; true sets an empty attribute.
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// replaceChildren/append would write a null child out as the text "null".
export function present(...children) {
  return children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
}

export function describe(control, id, on) {
  const ids = new Set((control.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean));
  if (on) ids.add(id);
  else ids.delete(id);
  if (ids.size) control.setAttribute("aria-describedby", [...ids].join(" "));
  else control.removeAttribute("aria-describedby");
}

// "alerts.sms_numbers[1]" → ["alerts.sms_numbers[1]", "alerts.sms_numbers", "alerts"]: the most precise
// place first, then each enclosing one.
export function fieldPath(field) {
  const out = [];
  let rest = String(field);
  while (rest) {
    out.push(rest);
    const cut = Math.max(rest.lastIndexOf("."), rest.lastIndexOf("["));
    rest = cut > 0 ? rest.slice(0, cut) : "";
  }
  return out;
}

// A wrapper marked data-field="<json path>" holds the control(s) of that value and a p.error slot.
export function errorSlot(id) {
  return h("p", { class: "error", id, hidden: true });
}

// Shows `text` at the place `field` names inside `root` (or its nearest enclosing place). Returns the
// control to focus, or null when no place matched.
export function showFieldError(root, field, text) {
  for (const path of fieldPath(field)) {
    const place = root.querySelector(`[data-field="${CSS.escape(path)}"]`);
    if (!place) continue;
    const slot = place.querySelector(":scope > .error") ?? place.querySelector(".error");
    const control = place.matches("input, select, textarea, button")
      ? place
      : place.querySelector("input:not([type=hidden]), select, textarea");
    if (slot) {
      slot.textContent = text;
      slot.hidden = false;
    }
    place.classList.add("has-error");
    if (control) {
      control.setAttribute("aria-invalid", "true");
      if (slot) describe(control, slot.id, true);
    }
    return control ?? place;
  }
  return null;
}

export function clearFieldErrors(root) {
  for (const slot of root.querySelectorAll(".error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const place of root.querySelectorAll(".has-error")) place.classList.remove("has-error");
  for (const control of root.querySelectorAll("[aria-invalid]")) {
    control.removeAttribute("aria-invalid");
    for (const slot of root.querySelectorAll(".error")) describe(control, slot.id, false);
  }
}

// The "Remove" of a line in a list (a phone number, a date): `what` completes its name for screen readers.
export function removeButton(what, onremove) {
  return h(
    "button",
    { type: "button", class: "link-button", onclick: onremove },
    "Remove",
    h("span", { class: "visually-hidden" }, ` ${what}`),
  );
}

// One labelled control with an optional hint, marked with its JSON path.
export function field({ name, label, control, hint, extraClass }) {
  const id = control.id || uid("f");
  control.id = id;
  const hintId = hint ? `${id}-hint` : null;
  if (hintId) describe(control, hintId, true);
  const inline = control.type === "checkbox" || control.type === "radio";
  const labelEl = h("label", { for: id }, label);
  return h(
    "div",
    { class: `field${inline ? " inline" : ""}${extraClass ? ` ${extraClass}` : ""}`, "data-field": name },
    inline ? [control, labelEl] : [labelEl, control],
    hint ? h("p", { class: "hint", id: hintId }, hint) : null,
    errorSlot(`${id}-error`),
  );
}
