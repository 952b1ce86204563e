// Signing in and the signed-in session. The token is kept in sessionStorage (this tab only, gone when it
// closes): never in localStorage, a cookie, a URL or a log.
//   Locally: the development sign-in asks the local server for a token (POST /_local/token, which only the
//   local server has) for the practice, role and user typed in.
//   On AWS: the OAuth 2.0 authorization code flow with PKCE (S256) against the JWT issuer (a Cognito user
//   pool's hosted UI, say); the `?code=` the issuer sends back is taken out of the address before it is used.

import { config } from "./config.js";
import { request } from "./api.js";

const SESSION = "vetchat.session";
const PENDING = "vetchat.oauth";
// A token that ends within this margin is treated as ended: a save must not fail half way.
const MARGIN_MS = 30_000;

export class SignInError extends Error {}

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes) {
  const buffer = new Uint8Array(bytes);
  crypto.getRandomValues(buffer);
  return base64url(buffer);
}

// The claims of a JWT, for showing who is signed in. Not a check: the API verifies every token.
export function claimsOf(token) {
  const part = String(token).split(".")[1] ?? "";
  const padded = part.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(part.length / 4) * 4, "=");
  const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function keep(token, expiresAt) {
  const claims = claimsOf(token);
  const session = {
    token,
    practice_id: claims.practice_id ?? null,
    role: claims.role ?? null,
    sub: claims.sub ?? null,
    expires_at: expiresAt ?? new Date((claims.exp ?? 0) * 1000).toISOString(),
  };
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  return session;
}

export function currentSession() {
  const raw = sessionStorage.getItem(SESSION);
  if (!raw) return null;
  try {
    const session = JSON.parse(raw);
    if (session.token && Date.parse(session.expires_at) > Date.now() + MARGIN_MS) return session;
  } catch {
    // fall through: an unreadable session is no session
  }
  sessionStorage.removeItem(SESSION);
  return null;
}

// The session of a page that needs one; without it, off to the sign-in, which brings the user back here.
export function requireSession() {
  const session = currentSession();
  if (!session) location.replace(`/?next=${encodeURIComponent(location.pathname)}`);
  return session;
}

// Only a path of this site may be where a sign-in leads (no open redirect).
export function safeNext(next) {
  return typeof next === "string" && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\")
    ? next
    : null;
}

export async function signInLocal({ practice_id, role, sub }) {
  const { body } = await request("POST", "/_local/token", { body: { practice_id, role, sub } });
  return keep(body.token, body.expires_at);
}

function redirectUri(auth) {
  return auth.redirect_uri ?? `${location.origin}/`;
}

async function endpoints(auth) {
  if (auth.authorization_endpoint && auth.token_endpoint) return auth;
  const issuer = String(auth.issuer ?? "").replace(/\/+$/, "");
  const response = await fetch(`${issuer}/.well-known/openid-configuration`);
  if (!response.ok) throw new SignInError("The sign-in service cannot be reached. Try again in a moment.");
  return { ...auth, ...(await response.json()) };
}

export async function startOAuth(next) {
  const { auth } = await config();
  const found = await endpoints(auth);
  const verifier = randomString(32);
  const state = randomString(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(
    PENDING,
    JSON.stringify({ verifier, state, next: safeNext(next), token_endpoint: found.token_endpoint }),
  );
  const url = new URL(found.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: auth.client_id,
    redirect_uri: redirectUri(auth),
    scope: auth.scope ?? "openid",
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

// The issuer sent the browser back with ?code=&state= (or ?error=). Returns where to go next.
export async function finishOAuth() {
  const params = new URLSearchParams(location.search);
  // First of all, the code leaves the address bar and the history.
  history.replaceState(null, "", location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null");
  sessionStorage.removeItem(PENDING);
  if (params.has("error")) {
    throw new SignInError(`The sign-in service refused: ${params.get("error_description") ?? params.get("error")}.`);
  }
  if (!pending || params.get("state") !== pending.state) {
    throw new SignInError("This sign-in was not started from this page. Sign in again.");
  }
  const { auth } = await config();
  let response;
  try {
    response = await fetch(pending.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: auth.client_id,
        code: params.get("code") ?? "",
        redirect_uri: redirectUri(auth),
        code_verifier: pending.verifier,
      }),
    });
  } catch {
    throw new SignInError("The sign-in service cannot be reached. Try again in a moment.");
  }
  if (!response.ok) throw new SignInError("The sign-in service did not accept this sign-in. Sign in again.");
  const tokens = await response.json();
  const token = tokens[auth.token ?? "access_token"];
  if (!token) throw new SignInError("The sign-in service sent no token. Sign in again.");
  const expiresAt = tokens.expires_in ? new Date(Date.now() + tokens.expires_in * 1000).toISOString() : undefined;
  keep(token, expiresAt);
  return pending.next;
}

export async function signOut() {
  sessionStorage.removeItem(SESSION);
  const { auth } = await config();
  if (auth.mode === "oauth" && auth.logout_endpoint) {
    // Cognito's hosted UI ends its own session too, then sends the browser back here.
    const url = new URL(auth.logout_endpoint);
    url.search = new URLSearchParams({ client_id: auth.client_id, logout_uri: redirectUri(auth) }).toString();
    location.assign(url.toString());
    return;
  }
  location.assign("/");
}
