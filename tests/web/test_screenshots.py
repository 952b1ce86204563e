"""The settings page as README shows it: collapsed, and one department expanded. Written to docs/screenshots
(or VETCHAT_SCREENSHOTS) on every run; the PNGs in the repository are the ones this test made."""

from __future__ import annotations

import os

from playwright.sync_api import expect

from conftest import ROOT, card, expand, sign_in

ALWAYS = {"start": "00:00", "end": "24:00"}


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
