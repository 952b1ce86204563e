// The front page: sign in (the local development sign-in, or OAuth with PKCE on AWS), finish an OAuth
// sign-in coming back with ?code=, and lead to the screens.

import { config } from "./config.js";
import { clearFieldErrors, field, h, showFieldError } from "./dom.js";
import { currentSession, finishOAuth, safeNext, signInLocal, signOut, startOAuth } from "./session.js";
import { explain } from "./words.js";

const $ = (id) => document.getElementById(id);
// Where a sign-in without ?next= leads: admins to the settings, staff to the inbox.
function defaultNext(role) {
  return role === "staff" ? "/inbox.html" : "/settings/departments.html";
}

function next() {
  return safeNext(new URLSearchParams(location.search).get("next"));
}

function showSignedIn(session) {
  $("signed-in").hidden = false;
  $("who").textContent = `Signed in as ${session.sub} (${session.role}) of practice ${session.practice_id}.`;
  $("sign-out").addEventListener("click", () => signOut());
}

function localForm() {
  const form = $("local-form");
  const practice = h("input", { type: "text", value: "prc_demo", autocomplete: "off", spellcheck: "false" });
  const role = h(
    "select",
    null,
    h("option", { value: "admin" }, "Admin (practice settings)"),
    h("option", { value: "staff" }, "Staff (dashboard)"),
  );
  const user = h("input", { type: "text", value: "admin-1", autocomplete: "username", spellcheck: "false" });
  let userTyped = false;
  user.addEventListener("input", () => {
    userTyped = true;
  });
  role.addEventListener("change", () => {
    if (!userTyped) user.value = `${role.value}-1`;
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
  form.append(
    field({ name: "practice_id", label: "Practice ID", control: practice, hint: "Letters, digits, _ or -, e.g. prc_demo." }),
    field({ name: "role", label: "Role", control: role }),
    field({ name: "sub", label: "User", control: user, hint: "Any name: it is who the service sees as signed in." }),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearFieldErrors(form);
    submit.disabled = true;
    try {
      await signInLocal({ practice_id: practice.value.trim(), role: role.value, sub: user.value.trim() });
      location.assign(next() ?? defaultNext(role.value));
    } catch (error) {
      const place = error.field ? showFieldError(form, error.field, explain(error)) : null;
      if (place) place.focus();
      else $("signin-alert").textContent = explain(error);
    } finally {
      submit.disabled = false;
    }
  });
}

async function main() {
  const settings = await config();
  const params = new URLSearchParams(location.search);
  if (settings.auth.mode === "oauth" && (params.has("code") || params.has("error"))) {
    $("signin-status").textContent = "Signing in…";
    try {
      const to = await finishOAuth();
      location.replace(to ?? defaultNext(currentSession()?.role));
      return;
    } catch (error) {
      $("signin-status").textContent = "";
      $("signin-alert").textContent = error.message;
    }
  }
  const session = currentSession();
  if (session) {
    showSignedIn(session);
  } else if (settings.auth.mode === "oauth") {
    $("oauth-signin").hidden = false;
    $("oauth-button").addEventListener("click", async () => {
      try {
        await startOAuth(next());
      } catch (error) {
        $("signin-alert").textContent = error.message;
      }
    });
  } else {
    $("local-signin").hidden = false;
    localForm();
  }
  document.body.dataset.ready = "true";
}

main();
