"""The web-chat widget on a clinic's site (another origin than the service): one <script> tag, its own Shadow
DOM and one global; the departments visible in the app and their greeting; the offline banner within one
refresh of the settings page's switch; the after-hours pop-up with the practice's message and when it opens;
a message left when the department takes it, and refused politely (nothing stored) when not. CORS: the API
answers the widget's origin, locally as on AWS."""

from __future__ import annotations

import datetime as dt
import re
import urllib.request
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from conftest import ALWAYS, ROOT, card, chat_practice, open_widget, sign_in

NEW_YORK = ZoneInfo("America/New_York")
NINE_TO_SIX = {day: {"start": "09:00", "end": "18:00"} for day in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}


def open_conversations(api, practice):
    return api.ok("GET", "/conversations?status=open", api.token(practice, "staff"))["conversations"]


def closed_until_the_day_after_tomorrow(api, practice, department_id, allow: bool, message: str):
    """Closed now whatever the hour: today and tomorrow are non-working days; it opens the day after at 9:00
    (New York). Returns the opening instant as the API says it."""
    today = dt.datetime.now(NEW_YORK).date()
    api.patch(
        practice,
        department_id,
        {
            "hours": NINE_TO_SIX,
            "date_overrides": [
                {"start_date": today.isoformat(), "end_date": (today + dt.timedelta(days=1)).isoformat(), "kind": "non_working"}
            ],
            "chat": {"allow_messages_after_hours": allow, "after_hours_message": message},
        },
    )
    availability = api.ok("GET", f"/public/practices/{practice}/availability")
    [d] = [d for d in availability["departments"] if d["id"] == department_id]
    assert (d["open"], d["reason"]) == (False, "non_working_day")
    return dt.datetime.fromisoformat(d["opens_at"]).astimezone(NEW_YORK)


def in_words(opens: dt.datetime) -> str:
    """What the widget must say: the practice's clock, in words ("on Friday, December 4 at 9:00 AM EST")."""
    return f"on {opens:%A}, {opens:%B} {opens.day} at {opens.hour % 12 or 12}:{opens:%M} {'AM' if opens.hour < 12 else 'PM'} {opens:%Z}"


def test_the_widget_keeps_to_its_shadow_root_and_adds_one_global(owner_page, api, clinic, practice):
    chat_practice(api, practice)
    panel = open_widget(owner_page, clinic, practice)
    added = owner_page.evaluate("Object.getOwnPropertyNames(window).filter((n) => n !== 'clinicGlobals' && !window.clinicGlobals.includes(n))")
    assert added == ["VetchatWidget"]
    # One element of the page, everything else inside its shadow root.
    assert owner_page.evaluate("document.querySelectorAll('[data-vetchat-widget]').length") == 1
    assert owner_page.evaluate("document.querySelector('[data-vetchat-widget]').shadowRoot !== null")
    assert owner_page.evaluate("document.querySelectorAll('body textarea, body [role=dialog]').length") == 0
    # The clinic's greedy styles (magenta buttons, Georgia, !important) stop at the widget.
    launcher = owner_page.get_by_role("button", name="Chat with Happy Paws")
    style = launcher.evaluate("(el) => { const s = getComputedStyle(el); return [s.backgroundColor, s.fontFamily, s.letterSpacing]; }")
    assert style[0] == "rgb(29, 78, 216)" and "Georgia" not in style[1] and style[2] == "normal", style
    # And the clinic's own button is untouched by the widget.
    clinic_button = owner_page.get_by_role("button", name="Book an appointment")
    assert clinic_button.evaluate("(el) => getComputedStyle(el).backgroundColor") == "rgb(255, 0, 255)"
    expect(panel).to_be_visible()


@pytest.mark.store
def test_the_widget_shows_the_departments_visible_in_the_app_with_their_greeting(owner_page, api, clinic, practice):
    chat_practice(api, practice, greeting="Welcome to Happy Paws!")
    grooming = api.add_department(
        practice, {"name": "Grooming", "visible_in_app": True, "hours": ALWAYS, "chat": {"greeting": "The groomers are here."}}
    )
    api.add_department(practice, {"name": "Dr. Lee (telehealth)", "visible_in_app": False, "hours": ALWAYS})
    panel = open_widget(owner_page, clinic, practice)
    choices = panel.get_by_role("group", name="Who would you like to chat with?").get_by_role("radio")
    expect(choices).to_have_count(2)
    expect(panel.get_by_role("radio", name=re.compile(r"^Happy Paws Team"))).to_be_checked()
    expect(panel.get_by_role("radio", name=re.compile(r"^Grooming.*open now"))).to_be_visible()
    expect(panel).not_to_contain_text("Dr. Lee")
    expect(panel.get_by_text("Welcome to Happy Paws!")).to_be_visible()

    panel.get_by_role("radio", name=re.compile(r"^Grooming")).check()
    expect(panel.get_by_text("The groomers are here.")).to_be_visible()
    expect(panel.get_by_text("Welcome to Happy Paws!")).to_be_hidden()
    panel.get_by_label("Your message").fill("Is there a slot for a bath on Saturday?")
    panel.get_by_role("button", name="Send", exact=True).click()
    expect(panel.get_by_role("log", name="Messages")).to_contain_text("Is there a slot for a bath on Saturday?")
    [c] = open_conversations(api, practice)
    assert (c["department_id"], c["channel"]) == (grooming["id"], "web")
    # With a chat open, the owner writes on in it: no choice of department any more.
    expect(panel.get_by_role("radio")).to_have_count(0)
    expect(panel).to_contain_text("Grooming")


@pytest.mark.store
def test_the_offline_banner_shows_within_one_refresh_of_the_switch_on_the_settings_page(page, owner_page, api, clinic, practice):
    chat_practice(api, practice)
    panel = open_widget(owner_page, clinic, practice, refresh=1)
    banner = panel.get_by_role("status").filter(has_text="Chat is offline")
    expect(panel.get_by_label("Your message")).to_be_enabled()
    expect(banner).to_be_hidden()

    sign_in(page, practice)
    switch = card(page, "Happy Paws Team").get_by_role("switch")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    # The widget re-reads the availability every second here (data-refresh="1"): one refresh, a few at most.
    expect(banner).to_be_visible(timeout=5_000)
    expect(banner).to_have_text("Chat is offline right now: Happy Paws Team is not taking chats on the website.")
    expect(panel.get_by_label("Your message")).to_be_disabled()
    expect(panel.get_by_text("Messages cannot be sent while chat is offline.")).to_be_visible()

    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(banner).to_be_hidden(timeout=5_000)
    expect(panel.get_by_label("Your message")).to_be_enabled()


@pytest.mark.store
def test_after_hours_the_pop_up_shows_the_message_and_when_it_opens_and_a_message_can_be_left(owner_page, api, clinic, practice):
    team = chat_practice(api, practice)
    opens = closed_until_the_day_after_tomorrow(api, practice, team, allow=True, message="We are closed for the holidays; leave us a note.")
    panel = open_widget(owner_page, clinic, practice)
    popup = panel.get_by_role("alertdialog", name="Happy Paws Team is closed right now")
    expect(popup).to_be_visible()
    expect(popup).to_contain_text("We are closed for the holidays; leave us a note.")
    expect(popup).to_contain_text(f"We open again {in_words(opens)}.")
    # No offline banner: closed is not offline.
    expect(panel.get_by_role("status").filter(has_text="Chat is offline")).to_have_count(0)

    leave = popup.get_by_role("button", name="Leave a message")
    expect(leave).to_be_focused()
    leave.click()
    expect(popup).to_be_hidden()
    expect(panel.get_by_label("Your message")).to_be_focused()
    panel.get_by_label("Your message").fill("Please call me back about Max's prescription.")
    panel.get_by_role("button", name="Send", exact=True).click()
    log = panel.get_by_role("log", name="Messages")
    expect(log).to_contain_text("Please call me back about Max's prescription.")
    expect(log).to_contain_text("We are closed for the holidays; leave us a note.")
    [c] = open_conversations(api, practice)
    messages = api.ok("GET", f"/conversations/{c['id']}", api.token(practice, "staff"))["messages"]
    assert [(m["author"]["kind"], m["body"]) for m in messages] == [
        ("client", "Please call me back about Max's prescription."),
        ("auto", "We are closed for the holidays; leave us a note."),
    ]


@pytest.mark.store
def test_the_pop_up_shows_when_the_department_closes_while_the_panel_is_open_and_only_once(owner_page, api, clinic, practice):
    team = chat_practice(api, practice)
    panel = open_widget(owner_page, clinic, practice, refresh=1)
    popup = panel.get_by_role("alertdialog")
    expect(panel.get_by_label("Your message")).to_be_enabled()
    expect(popup).to_have_count(0)

    # The department closes while the owner has the panel open: within a refresh or two, the pop-up.
    opens = closed_until_the_day_after_tomorrow(api, practice, team, allow=True, message="We have closed for today; leave us a note.")
    popup = panel.get_by_role("alertdialog", name="Happy Paws Team is closed right now")
    expect(popup).to_be_visible(timeout=5_000)
    expect(popup).to_contain_text("We have closed for today; leave us a note.")
    expect(popup).to_contain_text(f"We open again {in_words(opens)}.")
    popup.get_by_role("button", name="Not now").click()
    expect(popup).to_be_hidden()

    # Closed it stays: the next refreshes do not bring the dismissed pop-up back.
    owner_page.wait_for_timeout(2_500)
    expect(panel.get_by_role("alertdialog")).to_have_count(0)
    expect(panel.get_by_text("We are closed now: leave a message and we will answer when we open.")).to_be_visible()


@pytest.mark.store
def test_a_refused_message_says_so_in_words_and_stores_nothing(owner_page, api, clinic, practice):
    team = chat_practice(api, practice)
    # The widget's availability is read once (a refresh every 10 minutes): the department changes after it
    # was read, and the API's refusal is what the owner sees.
    panel = open_widget(owner_page, clinic, practice, refresh=600)
    text = panel.get_by_label("Your message")
    send = panel.get_by_role("button", name="Send", exact=True)
    expect(text).to_be_enabled()

    api.ok("PUT", f"/departments/{team}/online", api.token(practice), {"online": False})
    text.fill("Hello? Is anyone there?")
    send.click()
    alert = panel.get_by_role("alert")
    expect(alert).to_contain_text("Chat is offline right now, so your message was not sent.")
    expect(panel.get_by_role("status").filter(has_text="Chat is offline")).to_be_visible()
    expect(text).to_have_value("Hello? Is anyone there?")
    assert open_conversations(api, practice) == []

    # Online again, but closed, and no messages outside chat hours: refused with the practice's words and
    # the opening time.
    api.ok("PUT", f"/departments/{team}/online", api.token(practice), {"online": True})
    opens = closed_until_the_day_after_tomorrow(api, practice, team, allow=False, message="Sorry, we only chat during opening hours.")
    owner_page.reload()
    panel = open_widget(owner_page, clinic, practice, refresh=600)
    popup = panel.get_by_role("alertdialog")
    expect(popup).to_contain_text("Messages cannot be left outside chat hours.")
    popup.get_by_role("button", name="OK").click()
    expect(panel.get_by_label("Your message")).to_be_disabled()
    expect(panel.get_by_text(f"Messages can be sent when we open, {in_words(opens)}.")).to_be_visible()

    # The API refuses as the widget said it would (the race the page cannot see: it read the hours before).
    api.patch(practice, team, {"hours": ALWAYS, "date_overrides": []})
    owner_page.reload()
    panel = open_widget(owner_page, clinic, practice, refresh=600)
    closed_until_the_day_after_tomorrow(api, practice, team, allow=False, message="Sorry, we only chat during opening hours.")
    panel.get_by_label("Your message").fill("Can I book for tomorrow?")
    panel.get_by_role("button", name="Send", exact=True).click()
    alert = panel.get_by_role("alert")
    expect(alert).to_contain_text("We are closed right now, and this department does not take messages outside its chat hours.")
    expect(alert).to_contain_text("Sorry, we only chat during opening hours.")
    expect(alert).to_contain_text(f"We open again {in_words(opens)}.")
    assert open_conversations(api, practice) == []
    assert api.ok("GET", "/conversations?status=resolved", api.token(practice, "staff"))["conversations"] == []


def test_the_api_answers_the_widgets_cors_preflight(server, clinic):
    request = urllib.request.Request(
        f"{server.url}/inbound",
        method="OPTIONS",
        headers={
            "origin": clinic.url,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, idempotency-key",
        },
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
    assert headers["access-control-allow-origin"] in ("*", clinic.url)
    allowed = {h.strip() for h in headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "if-match"} <= allowed
    assert "POST" in headers["access-control-allow-methods"]


def test_the_template_lets_the_widget_call_the_api_and_load_its_files():
    """On AWS API Gateway answers the preflight (the HttpApi's CorsConfiguration) and CloudFront the widget's
    module loads (the response headers policy's CorsConfig): the same headers as the local server."""
    text = (ROOT / "template.yaml").read_text()
    cors = re.search(r"CorsConfiguration:\n(.*?)\n\n", text, re.S).group(1)
    assert "AllowOrigins: !Ref CorsAllowOrigins" in cors
    headers = re.search(r"AllowHeaders:\n((?:\s+- .+\n)+)", cors + "\n").group(1).split()
    assert {"authorization", "content-type", "if-match", "idempotency-key"} <= {h for h in headers if h != "-"}
    policy = re.search(r"WebResponseHeaders:\n(.*?)\n\n", text, re.S).group(1)
    assert "CorsConfig:" in policy and "AccessControlAllowCredentials: false" in policy
    assert Path(ROOT / "web" / "widget.js").is_file()


@pytest.mark.store
def test_the_widget_signs_the_owner_in_with_oauth_pkce_and_leaves_no_code_in_the_history(browser, server, api, clinic, practice, page_errors):
    from conftest import new_page
    from test_signin import FakeIssuer

    chat_practice(api, practice)
    issuer = FakeIssuer(lambda: api.token(practice, "client", "maria@example.com"))
    clinic.defaults.update({"practice": practice, "refresh": "30", "issuer": issuer.url, "client-id": "pet-owners"})
    try:
        # The fake issuer is one more origin, which the clinic's CSP would have to name: lifted here.
        page = new_page(browser, server, page_errors, bypass_csp=True)
        page.goto(f"{clinic.url}/")
        page.get_by_role("button", name="Chat with Happy Paws").click()
        page.get_by_label("Your message").fill("Hello from Maria")
        page.get_by_role("button", name="Sign in and send").click()
        # Back from the issuer on the clinic's page: the widget opens again, signed in.
        expect(page.get_by_role("dialog", name="Chat with Happy Paws")).to_be_visible()
        expect(page.get_by_role("button", name="Send", exact=True)).to_be_visible()
        assert "code=" not in page.url and "state=" not in page.url
        (asked,) = issuer.authorize_requests
        assert (asked["client_id"], asked["code_challenge_method"], asked["redirect_uri"]) == ("pet-owners", "S256", f"{clinic.url}/")
        (exchange,) = issuer.token_requests
        assert 43 <= len(exchange["code_verifier"]) <= 128

        page.get_by_label("Your message").fill("Hello from Maria")
        page.get_by_role("button", name="Send", exact=True).click()
        expect(page.get_by_role("log", name="Messages")).to_contain_text("Hello from Maria")
        [c] = open_conversations(api, practice)
        assert c["client_id"] == "maria@example.com"

        kept = page.evaluate("() => ({session: {...sessionStorage}, local: {...localStorage}, cookie: document.cookie})")
        assert set(kept["session"]) == {f"vetchat.widget.{practice}"}, "the PKCE verifier outlived the sign-in"
        assert kept["local"] == {} and kept["cookie"] == ""
        page.go_back()
        assert "code=" not in page.url

        # A ?code= the widget did not ask for (the clinic's own sign-in, say) is left alone.
        page.goto(f"{clinic.url}/?code=not-ours&state=theirs")
        expect(page.get_by_role("button", name="Chat with Happy Paws")).to_be_visible()
        assert "code=not-ours" in page.url and len(issuer.token_requests) == 1
        page.context.close()
        assert not page_errors.errors
    finally:
        clinic.defaults.clear()
        issuer.close()
