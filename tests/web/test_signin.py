"""Signing in: the local development sign-in, and the OAuth 2.0 authorization code flow with PKCE against an
issuer (a small fake of one here, speaking the protocol: discovery, authorize, token). No token is ever in a
URL, in localStorage or in the console."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from conftest import new_page, sign_in, wait_for_path


def stored(page):
    return page.evaluate("() => ({session: {...sessionStorage}, local: {...localStorage}, cookie: document.cookie})")


def test_the_local_sign_in_keeps_the_token_in_this_tab_only(page, api, practice, page_errors):
    api.setup_practice(practice)
    urls = []
    page.on("request", lambda r: urls.append(r.url))
    # A page that needs a session sends to the sign-in, which brings the user back to it.
    page.goto("/settings/departments.html")
    page.wait_for_url("**/?next=%2Fsettings%2Fdepartments.html")
    page.get_by_label("Practice ID").fill(practice)
    page.get_by_label("Role").select_option("staff")
    expect(page.get_by_label("User")).to_have_value("staff-1")
    page.get_by_role("button", name="Sign in").click()
    wait_for_path(page, "/settings/departments.html")
    expect(page.get_by_role("article", name="Happy Paws Team")).to_be_visible()
    expect(page.locator("#who")).to_have_text(f"staff-1 · staff · {practice}")

    s = stored(page)
    session = json.loads(s["session"]["vetchat.session"])
    assert (session["practice_id"], session["role"], session["sub"]) == (practice, "staff", "staff-1")
    token = session["token"]
    assert s["local"] == {} and s["cookie"] == ""
    assert all(token not in u for u in urls), "a token went into a URL"
    assert all(token not in line for line in page_errors.console), "a token was logged"

    # Another tab has no session.
    other = page.context.new_page()
    other.goto("/settings/departments.html")
    other.wait_for_url("**/?next=*")
    other.close()

    page.get_by_role("button", name="Sign out").click()
    wait_for_path(page, "/")
    expect(page.get_by_role("heading", name="Development sign-in")).to_be_visible()
    assert stored(page)["session"] == {}


def test_a_refused_sign_in_is_shown_next_to_its_field(page):
    page.goto("/")
    page.get_by_label("Practice ID").fill("not a practice id!")
    page.get_by_role("button", name="Sign in").click()
    practice = page.get_by_label("Practice ID")
    expect(practice).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field", has=page.get_by_label("Practice ID")).locator(".error")).to_contain_text("Check this value")
    assert page.url.endswith("/")


def test_an_open_redirect_is_refused(page, practice):
    sign_in(page, practice, next_path="/settings/departments.html")
    page.evaluate("sessionStorage.clear()")
    page.goto("/?next=//evil.example/")
    page.get_by_label("Practice ID").fill(practice)
    page.get_by_role("button", name="Sign in").click()
    wait_for_path(page, "/settings/departments.html")


class FakeIssuer:
    """An OAuth 2.0 / OpenID Connect issuer on loopback: discovery, /authorize (answers at once with a code,
    as a hosted UI does once the user signed in), /token (checks the PKCE verifier against the challenge)."""

    def __init__(self, mint):
        self.mint = mint
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.codes: dict[str, dict] = {}
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body=None, headers=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("access-control-allow-origin", "*")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if body is not None:
                    self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                q = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/.well-known/openid-configuration":
                    return self.reply(
                        200,
                        {"issuer": issuer.url, "authorization_endpoint": f"{issuer.url}/authorize", "token_endpoint": f"{issuer.url}/token"},
                    )
                if url.path == "/authorize":
                    issuer.authorize_requests.append(q)
                    code = secrets.token_urlsafe(16)
                    issuer.codes[code] = q
                    target = f"{q['redirect_uri']}?{urllib.parse.urlencode({'code': code, 'state': q['state']})}"
                    return self.reply(302, headers={"location": target})
                self.reply(404, {"error": "not_found"})

            def do_POST(self):
                form = dict(urllib.parse.parse_qsl(self.rfile.read(int(self.headers["content-length"])).decode()))
                issuer.token_requests.append(form)
                asked = issuer.codes.pop(form.get("code"), None)
                challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(b"=").decode()
                if (
                    asked is None
                    or form.get("grant_type") != "authorization_code"
                    or form.get("client_id") != asked["client_id"]
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or challenge != asked["code_challenge"]
                ):
                    return self.reply(400, {"error": "invalid_grant"})
                self.reply(200, {"access_token": issuer.mint(), "id_token": "not-used", "token_type": "Bearer", "expires_in": 3600})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def issuer(api, practice):
    fake = FakeIssuer(lambda: api.token(practice, "admin", "dr-ng@happypaws.example"))
    yield fake
    fake.close()


def test_the_oauth_sign_in_uses_pkce_and_leaves_no_code_or_token_in_the_history(browser, server, api, practice, issuer, page_errors):
    api.setup_practice(practice)
    # The issuer is another origin: this test lifts the pages' Content-Security-Policy, which on AWS names
    # the issuer through template.yaml's connect-src.
    page = new_page(browser, server, page_errors, bypass_csp=True)
    config = {"api_base": "", "auth": {"mode": "oauth", "issuer": issuer.url, "client_id": "web-client", "scope": "openid email"}}
    page.route("**/config.json", lambda route: route.fulfill(json=config))
    urls = []
    page.on("framenavigated", lambda f: urls.append(f.url) if f == page.main_frame else None)
    page.goto("/?next=/settings/departments.html")
    page.get_by_role("button", name="Sign in").click()
    wait_for_path(page, "/settings/departments.html")
    expect(page.get_by_role("article", name="Happy Paws Team")).to_be_visible()
    expect(page.locator("#who")).to_contain_text("dr-ng@happypaws.example · admin")

    (asked,) = issuer.authorize_requests
    assert asked["response_type"] == "code" and asked["client_id"] == "web-client" and asked["scope"] == "openid email"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert asked["redirect_uri"] == f"{server.url}/"
    (exchange,) = issuer.token_requests
    assert 43 <= len(exchange["code_verifier"]) <= 128

    s = stored(page)
    token = json.loads(s["session"]["vetchat.session"])["token"]
    assert "vetchat.oauth" not in s["session"], "the PKCE verifier outlived the sign-in"
    assert s["local"] == {}
    assert all(token not in u for u in urls)
    assert all(token not in line for line in page_errors.console)
    # The address with ?code= was replaced: going back does not lead to it.
    page.go_back()
    assert "code=" not in page.url and "state=" not in page.url
    page.context.close()
    assert not page_errors.errors


def test_an_oauth_answer_this_page_did_not_ask_for_is_refused(browser, server, practice, issuer, page_errors):
    page = new_page(browser, server, page_errors, bypass_csp=True)
    config = {"api_base": "", "auth": {"mode": "oauth", "issuer": issuer.url, "client_id": "web-client"}}
    page.route("**/config.json", lambda route: route.fulfill(json=config))
    page.goto("/?code=stolen&state=forged")
    expect(page.get_by_role("alert")).to_contain_text("This sign-in was not started from this page")
    assert "code=" not in page.url
    assert issuer.token_requests == []
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.context.close()
    assert not page_errors.errors
