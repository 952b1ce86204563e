// Signing in and the signed-in session. The token is kept in sessionStorage (this tab only, gone when it
// closes): never in localStorage, a cookie, a URL or a log.
//   Locally: the development sign-in asks the local server for a token (POST /_local/token, which only the
//   local server has) for the practice, role and user typed in.
//   On AWS: the OAuth 2.0 authorization code flow with PKCE (S256) against the JWT issuer (a Cognito user
//   pool's hosted UI, say); the `?code=` the issuer sends back is taken out of the address before it is used.

import { config } from "./config.js";
import { request } from "./api.js";
import { claimsOf, finishCodeFlow, startCodeFlow } from "./pkce.js";

export { claimsOf, SignInError } from "./pkce.js";

const SESSION = "vetchat.session";
const PENDING = "vetchat.oauth";
// A token that ends within this margin is treated as ended: a save must not fail half way.
const MARGIN_MS = 30_000;

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

export async function startOAuth(next) {
  const { auth } = await config();
  await startCodeFlow(auth, { pending: PENDING, redirectUri: redirectUri(auth), keep: safeNext(next) });
}

// The issuer sent the browser back with ?code=&state= (or ?error=). Returns where to go next.
export async function finishOAuth() {
  const { auth } = await config();
  const { token, expiresAt, keep: next } = await finishCodeFlow(auth, { pending: PENDING, redirectUri: redirectUri(auth) });
  keep(token, expiresAt);
  return safeNext(next);
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
