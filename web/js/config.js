// What the pages read at start: /config.json. The local server's copy says "sign in locally, the API is
// on this origin"; scripts/deploy-web writes the deployed copy from the stack's outputs (the API's URL, the
// JWT issuer and the app client id of the OAuth sign-in). Fields:
//   api_base             the API's base URL without a trailing slash; "" for this origin
//   auth.mode            "local" (development sign-in, POST /_local/token) or "oauth"
//   auth.issuer, auth.client_id, auth.scope, auth.token ("access_token" or "id_token"),
//   auth.authorization_endpoint, auth.token_endpoint (else read from the issuer's discovery document),
//   auth.logout_endpoint, auth.redirect_uri (default: this origin's /)
//   max_windows_per_day  business-hours windows a day may hold in the editor (docs/api.md: up to 4; 1 for an API
//                        of one window a day)
//   refresh_seconds      how often the inbox re-reads while its live updates cannot connect (default 15)

let loaded = null;

export function config() {
  loaded ??= fetch("/config.json", { cache: "no-cache" })
    .then((response) => {
      if (!response.ok) throw new Error(`/config.json answered ${response.status}`);
      return response.json();
    })
    .then((raw) => ({
      api_base: String(raw.api_base ?? "").replace(/\/+$/, ""),
      auth: { mode: "local", ...(raw.auth ?? {}) },
      max_windows_per_day: Math.max(1, Math.min(4, Number(raw.max_windows_per_day) || 1)),
      refresh_seconds: Math.max(1, Number(raw.refresh_seconds) || 15),
    }));
  return loaded;
}
