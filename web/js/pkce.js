// The OAuth 2.0 authorization code flow with PKCE (S256), for the staff pages (session.js) and the web-chat
// widget on a clinic's site (widget/main.js): one implementation, told where to keep its pending state and
// where the issuer sends the browser back. Nothing here writes a token anywhere: the caller keeps it.

export class SignInError extends Error {}

export function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function randomString(bytes) {
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

async function endpoints(auth) {
  if (auth.authorization_endpoint && auth.token_endpoint) return auth;
  const issuer = String(auth.issuer ?? "").replace(/\/+$/, "");
  let response;
  try {
    response = await fetch(`${issuer}/.well-known/openid-configuration`);
  } catch {
    response = null;
  }
  if (!response?.ok) throw new SignInError("The sign-in service cannot be reached. Try again in a moment.");
  return { ...auth, ...(await response.json()) };
}

// Sends the browser to the issuer. `pending` names the sessionStorage entry that keeps the verifier and the
// state until the browser comes back; `keep` is carried through (where to go next).
export async function startCodeFlow(auth, { pending, redirectUri, keep }) {
  const found = await endpoints(auth);
  const verifier = randomString(32);
  const state = randomString(16);
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  sessionStorage.setItem(pending, JSON.stringify({ verifier, state, keep, token_endpoint: found.token_endpoint }));
  const url = new URL(found.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: auth.client_id,
    redirect_uri: redirectUri,
    scope: auth.scope ?? "openid",
    state,
    code_challenge: base64url(new Uint8Array(digest)),
    code_challenge_method: "S256",
  }).toString();
  location.assign(url.toString());
}

// Whether this address is the issuer coming back to a flow started under `pending` (a ?code= of someone
// else's, e.g. the clinic site's own sign-in, is not ours to take).
export function isCodeFlowReturn(pending) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const started = JSON.parse(sessionStorage.getItem(pending) ?? "null");
  return Boolean(started && params.get("state") === started.state);
}

// The issuer sent the browser back with ?code=&state= (or ?error=): the code leaves the address and the
// history first, then is exchanged with the verifier. Returns {token, expiresAt, keep}.
export async function finishCodeFlow(auth, { pending, redirectUri }) {
  const params = new URLSearchParams(location.search);
  const got = Object.fromEntries(["code", "state", "error", "error_description"].map((k) => [k, params.get(k)]));
  // The page's own query (a clinic page's ?utm=…) stays; what the issuer added goes.
  for (const name of ["code", "state", "error", "error_description", "session_state", "iss"]) params.delete(name);
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  const started = JSON.parse(sessionStorage.getItem(pending) ?? "null");
  sessionStorage.removeItem(pending);
  if (got.error) {
    throw new SignInError(`The sign-in service refused: ${got.error_description ?? got.error}.`);
  }
  if (!started || got.state !== started.state) {
    throw new SignInError("This sign-in was not started from this page. Sign in again.");
  }
  let response;
  try {
    response = await fetch(started.token_endpoint, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: auth.client_id,
        code: got.code ?? "",
        redirect_uri: redirectUri,
        code_verifier: started.verifier,
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
  return { token, expiresAt, keep: started.keep };
}
