"""The staff pages in a real browser: Debian's Chromium driven by Playwright, against the local server (the
binary `cargo run` builds) on one store, started here once per run.

Run by scripts/web-test (which scripts/test calls on the embedded store and on DynamoDB Local). Environment:
  VETCHAT_LOCAL_BIN   the local server binary (default: $CARGO_TARGET_DIR/debug/local)
  VETCHAT_WEB_STORE   memory (default) or dynamo (needs AWS_ENDPOINT_URL_DYNAMODB: a fresh table is made)
  AXE_JS              axe-core's axe.min.js (scripts/lib/tools.sh installs it)
  CHROMIUM            the browser (default /usr/bin/chromium)
  VETCHAT_SCREENSHOTS where test_screenshots.py writes its PNGs (default: docs/screenshots of the repository)
Tests marked `store` run on both stores; the others (the page alone) on the embedded one only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]

# The flags this machine's Chromium needs (no sandbox as root, no GPU, no background calls to Google's hosts,
# which the closed network refuses).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

expect.set_options(timeout=10_000)


def pytest_configure(config):
    config.addinivalue_line("markers", "store: the test reads or writes what a store keeps; run on every store")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Reply:
    status: int
    body: object
    headers: dict


class Api:
    """The HTTP API as a test calls it, beside the page: to set up what the page shows and to check what it did."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, token: str | None = None, body=None, headers=None) -> Reply:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token:
            request.add_header("authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("content-type", "application/json")
        for k, v in (headers or {}).items():
            request.add_header(k, v)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                raw, status, hdrs = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as e:
            raw, status, hdrs = e.read(), e.code, dict(e.headers)
        return Reply(status, json.loads(raw) if raw else None, {k.lower(): v for k, v in hdrs.items()})

    def ok(self, method: str, path: str, token: str | None = None, body=None, headers=None):
        r = self.call(method, path, token, body, headers)
        assert 200 <= r.status < 300, f"{method} {path}: {r.status} {r.body}"
        return r.body

    def token(self, practice: str, role: str = "admin", sub: str | None = None) -> str:
        body = {"practice_id": practice, "role": role, "sub": sub or f"{role}-1"}
        return self.ok("POST", "/_local/token", body=body)["token"]

    def setup_practice(self, practice: str, name: str = "Happy Paws", country: str = "US") -> str:
        body = {"name": name, "timezone": "America/New_York", "country": country}
        return self.ok("PUT", "/practice", self.token(practice), body)["default_department_id"]

    def add_department(self, practice: str, body: dict) -> dict:
        return self.ok("POST", "/departments", self.token(practice), body)

    def department(self, practice: str, department_id: str) -> dict:
        return self.ok("GET", f"/departments/{department_id}", self.token(practice))

    def departments(self, practice: str) -> list:
        return self.ok("GET", "/departments", self.token(practice))

    def patch(self, practice: str, department_id: str, body: dict) -> dict:
        return self.ok("PATCH", f"/departments/{department_id}", self.token(practice), body)


@dataclass
class Server:
    url: str
    store: str
    log: Path


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    store = os.environ.get("VETCHAT_WEB_STORE", "memory")
    target = os.environ.get("CARGO_TARGET_DIR", str(Path.home() / ".cache/vetchat/target"))
    binary = os.environ.get("VETCHAT_LOCAL_BIN", f"{target}/debug/local")
    assert os.access(binary, os.X_OK), f"{binary}: build the local server first (cargo build -p local)"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DYNAMODB_TABLE"}
    env.update(PORT=str(port), LOCAL_JWT_SECRET=secrets.token_hex(16), RUST_LOG="warn", LOG_FORMAT="text")
    flags = []
    if store == "dynamo":
        assert env.get("AWS_ENDPOINT_URL_DYNAMODB"), "the dynamo run needs AWS_ENDPOINT_URL_DYNAMODB (scripts/test sets it)"
        env["DYNAMODB_TABLE"] = f"web-{int(time.time())}-{os.getpid()}"
    else:
        assert store == "memory", f"VETCHAT_WEB_STORE={store}: memory or dynamo"
        flags = ["--in-memory"]  # the embedded store, nothing left in the user's data directory
    log = tmp_path_factory.mktemp("server") / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen([binary, "serve", *flags], env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"the local server exited:\n{log.read_text()}"
        try:
            urllib.request.urlopen(f"{url}/config.json", timeout=1).read()
            break
        except OSError:
            assert time.monotonic() < deadline, f"the local server did not answer on {url}:\n{log.read_text()}"
            time.sleep(0.1)
    yield Server(url, store, log)
    process.terminate()
    process.wait(timeout=10)
    text = log.read_text()
    assert not re.search(r"panicked|ERROR", text), f"the local server logged errors:\n{text}"


@pytest.fixture(scope="session")
def api(server) -> Api:
    return Api(server.url)


@pytest.fixture(scope="session")
def browser():
    # Playwright starts the browser with a fresh, temporary --user-data-dir of its own.
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=CHROMIUM_ARGS)
        yield b
        b.close()


class PageErrors:
    def __init__(self):
        self.errors: list[str] = []
        self.console: list[str] = []


@pytest.fixture
def page_errors():
    return PageErrors()


def new_page(browser, server, page_errors, **context_options) -> Page:
    context = browser.new_context(
        base_url=server.url, viewport={"width": 1100, "height": 900}, locale="en-US", **context_options
    )
    page = context.new_page()
    page.on("pageerror", lambda e: page_errors.errors.append(str(e)))
    page.on("console", lambda m: page_errors.console.append(f"{m.type}: {m.text}"))
    # A page left with unsaved changes asks before unloading: the tests' reloads go ahead.
    page.on("dialog", lambda d: d.accept())
    return page


def close_checked(p: Page, page_errors: PageErrors, whose: str):
    """Closes the page's context; the page must have thrown nothing and kept to `whose` CSP."""
    p.context.close()
    assert not page_errors.errors, f"uncaught errors in the page: {page_errors.errors}"
    refused = [line for line in page_errors.console if "Content Security Policy" in line]
    assert not refused, f"{whose} Content-Security-Policy was broken: {refused}"


@pytest.fixture
def page(browser, server, page_errors):
    p = new_page(browser, server, page_errors)
    yield p
    close_checked(p, page_errors, "the pages' own")


@pytest.fixture
def practice() -> str:
    return f"prc_web_{secrets.token_hex(6)}"


def wait_for_path(page: Page, path: str):
    """Waits until the page is at `path` (a glob would also match the sign-in's own ?next=<path>)."""
    page.wait_for_url(lambda url: urllib.parse.urlsplit(url).path == path)


def sign_in(page: Page, practice: str, role: str = "admin", sub: str | None = None, next_path: str = "/settings/departments.html"):
    """The development sign-in, as a person does it; ends on the settings page, loaded."""
    page.goto(f"/?next={next_path}")
    page.get_by_label("Practice ID").fill(practice)
    page.get_by_label("Role").select_option(role)
    if sub:
        page.get_by_label("User").fill(sub)
    page.get_by_role("button", name="Sign in").click()
    wait_for_path(page, next_path)
    page.wait_for_selector("body[data-ready]")


def card(page: Page, name: str):
    return page.get_by_role("article", name=name, exact=True)


def expand(page: Page, name: str):
    c = card(page, name)
    caret = c.get_by_role("button", name=name, exact=True)
    if caret.get_attribute("aria-expanded") != "true":
        caret.click()
    expect(caret).to_have_attribute("aria-expanded", "true")
    return c


def save(c):
    c.get_by_role("button", name="Save", exact=True).click()


def day(c, name: str):
    return c.get_by_role("group", name=name, exact=True)


def axe_violations(page: Page, preload: bool = True) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now. `preload=False` on a page that
    holds another origin's stylesheet (the widget's, on the clinic's site): axe would read it by adding a
    <style>@import</style> of its own, which the page's CSP refuses; only css-orientation-lock needs it."""
    axe = os.environ.get("AXE_JS") or str(Path.home() / ".cache/vetchat/tools/axe-core/package/axe.min.js")
    assert os.path.isfile(axe), f"{axe}: axe-core is missing (scripts/test installs it)"
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        # Evaluated through the DevTools protocol, which the pages' Content-Security-Policy (scripts of this
        # origin only) does not stop; a <script> tag added to the page would be refused.
        source = Path(axe).read_text()
        page.evaluate(f"() => {{ {source}\n }}")
    result = page.evaluate(
        "async (preload) => (await axe.run(document, {resultTypes: ['violations'], preload})).violations", preload
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at {[n['target'] for n in v['nodes']][:5]}"
        for v in result
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture
def scratch():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


# ---- the inbox and the web-chat widget ---------------------------------------------------------------

# Open at any time: a department the tests can chat with whatever the clock says.
ALWAYS = {day: {"start": "00:00", "end": "24:00"} for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


@dataclass
class Clinic:
    """A clinic's website on another origin than the service, with the widget's one <script> tag."""

    url: str
    # What a page asked for without a query gets (the OAuth issuer sends the browser back to the bare page):
    # the practice, the refresh, and data-* attributes of the widget's tag, e.g. {"issuer": …, "client-id": …}.
    defaults: dict

    def page_url(self, practice: str, refresh: int = 1, widget: bool = True) -> str:
        query = {"practice": practice, "refresh": str(refresh)}
        if not widget:
            query["widget"] = "0"
        return f"{self.url}/?{urllib.parse.urlencode(query)}"


@pytest.fixture(scope="session")
def clinic(server):
    """A second static server (its own port, so its own origin) serving tests/web/clinic: the page names
    the practice and the service's widget.js; the widget calls the API across origins (CORS)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    files = ROOT / "tests" / "web" / "clinic"
    pages = server.url
    ws = "ws://" + server.url.split("://", 1)[1]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query))
            if "practice" not in query:
                query = {**clinic.defaults, **query}
            if url.path == "/":
                extra = "".join(f' data-{k}="{v}"' for k, v in query.items() if k not in ("practice", "refresh", "widget", "code", "state"))
                tag = (
                    f'<script src="{pages}/widget.js" data-practice="{query.get("practice", "")}" '
                    f'data-refresh="{query.get("refresh", "30")}"{extra} defer></script>'
                    if query.get("widget") != "0"
                    else ""
                )
                text = (files / "index.html").read_text()
                for k, v in {"{{WIDGET}}": tag, "{{PAGES}}": pages, "{{API}}": pages, "{{WS}}": ws}.items():
                    text = text.replace(k, v)
                body, kind = text.encode(), "text/html; charset=utf-8"
            elif url.path in ("/clinic.css", "/clinic.js"):
                body = (files / url.path[1:]).read_bytes()
                kind = "text/css" if url.path.endswith(".css") else "text/javascript"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    clinic = Clinic(f"http://127.0.0.1:{httpd.server_address[1]}", {})
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield clinic
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def owner_page(browser, server, page_errors):
    """A pet owner's browser on the clinic's site (its own context: its own sessionStorage)."""
    p = new_page(browser, server, page_errors)
    yield p
    close_checked(p, page_errors, "the clinic's")


def open_widget(page: Page, clinic: Clinic, practice: str, refresh: int = 1, name: str = "Happy Paws"):
    """The clinic's page with the widget, and its panel opened with the launcher."""
    page.goto(clinic.page_url(practice, refresh))
    launcher = page.get_by_role("button", name=f"Chat with {name}")
    launcher.click()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    panel = page.get_by_role("dialog", name=f"Chat with {name}")
    expect(panel).to_be_visible()
    return panel


def chat_practice(api: Api, practice: str, greeting: str | None = "Hi! How can we help your pet?") -> str:
    """A practice whose default team is open at any time, with a greeting. Returns the team's id."""
    team = api.setup_practice(practice)
    api.patch(practice, team, {"hours": ALWAYS, "chat": {"greeting": greeting}})
    return team


def sign_in_inbox(page: Page, practice: str, sub: str = "staff-1"):
    sign_in(page, practice, role="staff", sub=sub, next_path="/inbox.html")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
