// The one client of the HTTP API for every page (settings today; the inbox and the web-chat widget next):
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

export async function request(method, path, { token, body, ifMatch } = {}) {
  const { api_base } = await config();
  const headers = { accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (ifMatch) headers["if-match"] = ifMatch;
  let response;
  try {
    response = await fetch(api_base + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
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

// The API as one signed-in user calls it.
export function apiFor(session) {
  const token = session?.token;
  return {
    get: (path) => request("GET", path, { token }),
    post: (path, body) => request("POST", path, { token, body }),
    put: (path, body) => request("PUT", path, { token, body }),
    patch: (path, body, ifMatch) => request("PATCH", path, { token, body, ifMatch }),
    delete: (path) => request("DELETE", path, { token }),
  };
}
