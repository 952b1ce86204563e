"""The pages as README shows them: the settings (collapsed, one department expanded), the inbox, and the
widget on a clinic's site (open, offline, after hours). Written to docs/screenshots (or VETCHAT_SCREENSHOTS)
on every run; the PNGs in the repository are the ones this test made."""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from conftest import ALWAYS, ROOT, card, chat_practice, expand, open_widget, sign_in, sign_in_inbox



def test_screenshots_of_the_settings_page(page, api):
    out = os.environ.get("VETCHAT_SCREENSHOTS") or str(ROOT / "docs" / "screenshots")
    os.makedirs(out, exist_ok=True)
    practice = "prc_happy_paws"
    api.setup_practice(practice)
    admin = api.token(practice)
    grooming = api.add_department(
        practice,
        {
            "name": "Grooming",
            "visible_in_app": True,
            "alerts": {"enabled": True, "emails": "desk@happypaws.example, groomer@happypaws.example", "sms_numbers": ["(201) 555-0123"]},
            "unresolved_reminder": {"enabled": True, "at": "17:30"},
            "hours": {
                "mon": {"start": "09:00", "end": "18:00"},
                "tue": {"start": "09:00", "end": "18:00"},
                "wed": [{"start": "09:00", "end": "12:30"}, {"start": "14:00", "end": "18:00"}],
                "thu": {"start": "09:00", "end": "18:00"},
                "fri": {"start": "09:00", "end": "18:00"},
                "sat": {"start": "09:00", "end": "13:00"},
            },
            "date_overrides": [
                {"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"},
                {"start_date": "2026-11-29", "end_date": "2026-11-29", "kind": "working", "start": "10:00", "end": "14:00"},
            ],
            "chat": {"greeting": "Hi! How can we help your pet?", "allow_messages_after_hours": True},
        },
    )
    boarding = api.add_department(practice, {"name": "Boarding", "visible_in_app": True})
    api.add_department(practice, {"name": "Dr. Lee (telehealth)"})
    api.ok("PUT", f"/departments/{boarding['id']}/online", admin, {"online": False})
    api.ok(
        "POST",
        "/conversations",
        api.token(practice, "staff"),
        {"department_id": grooming["id"], "client_id": "owner-1", "body": "Is Rex ready?", "channel": "app"},
    )

    # The same pixels on every run: no transition caught half way, no blinking text caret.
    page.emulate_media(reduced_motion="reduce")
    shot = {"full_page": True, "animations": "disabled", "caret": "hide"}
    sign_in(page, practice)
    expect(card(page, "Grooming")).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=os.path.join(out, "settings-collapsed.png"), **shot)

    expand(page, "Grooming")
    page.locator("#main").focus()
    page.screenshot(path=os.path.join(out, "settings-expanded.png"), **shot)


def test_screenshots_of_the_inbox_and_the_widget(page, owner_page, api, clinic):
    """docs/screenshots/inbox.png, widget-open.png, widget-offline.png, widget-after-hours.png."""
    from test_widget import closed_until_the_day_after_tomorrow

    out = os.environ.get("VETCHAT_SCREENSHOTS") or str(ROOT / "docs" / "screenshots")
    os.makedirs(out, exist_ok=True)
    practice = "prc_happy_paws_chat"
    team = chat_practice(api, practice, greeting="Hi! How can we help your pet today?")
    grooming = api.add_department(practice, {"name": "Grooming", "visible_in_app": True, "hours": ALWAYS, "chat": {"greeting": "The groomers are here."}})
    boarding = api.add_department(practice, {"name": "Boarding", "visible_in_app": True})
    api.ok("PUT", f"/departments/{boarding['id']}/online", api.token(practice), {"online": False})
    staff = api.token(practice, "staff", "dana")
    for client, department, body in [
        ("owner-maria", grooming["id"], "Can Bella get a nail trim this week?"),
        ("+12015550188", team, "Is the clinic open on Saturday?"),
    ]:
        api.ok("POST", "/conversations", staff, {"department_id": department, "client_id": client, "body": body, "channel": "app"})

    for p in (page, owner_page):
        p.emulate_media(reduced_motion="reduce")
    shot = {"animations": "disabled", "caret": "hide"}

    panel = open_widget(owner_page, clinic, practice)
    panel.get_by_label("Your message").fill("Rex has been limping since this morning. Can someone look at him today?")
    panel.get_by_role("button", name="Send", exact=True).click()
    expect(panel.get_by_role("log", name="Messages")).to_contain_text("Rex has been limping")

    sign_in_inbox(page, practice, sub="dana")
    page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text="visitor-").click()
    page.get_by_label("Reply", exact=True).fill("Hi! Please bring Rex in at 3 pm; Dr. Lee will see him.")
    page.get_by_role("button", name="Send reply").click()
    expect(panel.get_by_role("log", name="Messages")).to_contain_text("Dr. Lee will see him")
    page.get_by_label("Note for the department").fill("Limping, front left paw; owner can come at 3 pm")
    page.mouse.move(0, 0)
    page.locator("#main").focus()
    page.screenshot(path=os.path.join(out, "inbox.png"), full_page=True, **shot)

    owner_page.mouse.move(0, 0)
    owner_page.screenshot(path=os.path.join(out, "widget-open.png"), **shot)

    # Offline: Boarding, switched off on the settings page.
    other = owner_page.context.browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US").new_page()
    other.emulate_media(reduced_motion="reduce")
    panel = open_widget(other, clinic, practice)
    panel.get_by_role("radio", name=re.compile("^Boarding")).check()
    expect(panel.get_by_role("status").filter(has_text="Chat is offline")).to_be_visible()
    other.mouse.move(0, 0)
    other.screenshot(path=os.path.join(out, "widget-offline.png"), **shot)

    closed_until_the_day_after_tomorrow(
        api, practice, team, allow=True, message="We are closed right now. Leave a message and we will answer when we open."
    )
    other.reload()
    panel = open_widget(other, clinic, practice)
    expect(panel.get_by_role("alertdialog")).to_be_visible()
    other.mouse.move(0, 0)
    other.screenshot(path=os.path.join(out, "widget-after-hours.png"), **shot)
    other.context.close()
