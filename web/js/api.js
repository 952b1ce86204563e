// The one client of the HTTP API for every page (settings, the inbox, and the web-chat widget, which names its
// API's base itself since it runs on a clinic's site):
// JSON in and out, the bearer token, If-Match, and the contract's error body
// {"error": {"code", "message", "field"}} turned into an ApiError. Pages never call fetch on the API
// themselves, and nothing here ever logs a token or a body.

import { config } from "./config.js";

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message ?? error.code);
    this.name = "ApiError";
    this.status = status;
    this.code = error.code;
    // The JSON path of the value the API refused ("alerts.emails", "hours.mon", "date_overrides[2]").
    this.field = error.field ?? null;
    // The whole error member: some codes carry more (after_hours_message, opens_at, opted_out_at).
    this.details = error;
  }
}

// `base`: the API's base URL (default: config.json's api_base); `idempotencyKey`: the same key on every try
// of one message, so that a retry is never a second message; `cache`: "no-cache" for what the API lets
// browsers revalidate (public availability, with its ETag).
export async function request(method, path, { token, body, ifMatch, idempotencyKey, base, cache } = {}) {
  const api_base = base ?? (await config()).api_base;
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (ifMatch) headers["if-match"] = ifMatch;
  if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
  let response;
  try {
    response = await fetch(api_base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: cache ?? "no-store",
    });
  } catch {
    throw new ApiError(0, { code: "network", message: "the service could not be reached" });
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = data?.error ?? { code: `http_${response.status}`, message: response.statusText };
    throw new ApiError(response.status, error);
  }
  return { status: response.status, body: data, etag: response.headers.get("etag") };
}

// The API as one signed-in user calls it (`base`: see request).
export function apiFor(session, base) {
  const token = session?.token;
  return {
    get: (path) => request("GET", path, { token, base }),
    post: (path, body, options) => request("POST", path, { token, body, base, ...options }),
    put: (path, body) => request("PUT", path, { token, body, base }),
    patch: (path, body, ifMatch) => request("PATCH", path, { token, body, ifMatch, base }),
    delete: (path) => request("DELETE", path, { token, base }),
  };
}
