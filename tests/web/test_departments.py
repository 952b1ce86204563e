"""Settings > Conversations > Departments/Providers, done as the two help articles describe it, and checked
through the API (and the other way round: changed through the API, seen on the page)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from conftest import card, day, expand, save, sign_in

ALWAYS = {"start": "00:00", "end": "24:00"}
DEFAULT_HOURS = {
    "mon": {"start": "09:00", "end": "18:00"},
    "tue": {"start": "09:00", "end": "18:00"},
    "wed": {"start": "09:00", "end": "18:00"},
    "thu": {"start": "09:00", "end": "18:00"},
    "fri": {"start": "09:00", "end": "18:00"},
    "sat": None,
    "sun": None,
}


@pytest.mark.store
def test_an_admin_sets_up_the_practice_and_gets_the_default_team(page, api, practice):
    sign_in(page, practice)
    setup = page.get_by_role("region", name="Set up your practice")
    setup.get_by_label("Practice name").fill("Happy Paws")
    setup.get_by_label("Time zone").select_option("America/Chicago")
    setup.get_by_label("Country").fill("ca")
    setup.get_by_role("button", name="Set up practice").click()
    team = card(page, "Happy Paws Team")
    expect(team).to_be_visible()
    expect(setup).to_be_hidden()
    got = api.ok("GET", "/practice", api.token(practice))
    assert (got["name"], got["timezone"], got["country"]) == ("Happy Paws", "America/Chicago", "CA")
    assert [d["name"] for d in api.departments(practice)] == ["Happy Paws Team"]


@pytest.mark.store
def test_add_new_department_with_the_articles_steps(page, api, practice):
    api.setup_practice(practice)
    sign_in(page, practice)
    # "To add additional departments, click Add New Department."
    page.get_by_role("button", name="Add New Department").click()
    add = page.locator("#add-form")
    # 1. The department name. 2. Make this department/provider visible in mobile app.
    add.get_by_label("Department name").fill("Grooming")
    add.get_by_label("Make this department/provider visible in mobile app").check()
    add.get_by_role("button", name="Add department").click()
    grooming = card(page, "Grooming")
    expect(grooming.get_by_role("button", name="Grooming", exact=True)).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("status").first).to_contain_text("Grooming was added")

    # 3. A new message alert: emails on one line separated by commas, phone numbers one per line (Add New).
    grooming.get_by_label("Enable a new message alert").check()
    grooming.get_by_label("Emails", exact=True).fill("desk@happypaws.example, groomer@happypaws.example")
    grooming.get_by_role("button", name="Add New phone number").click()
    grooming.get_by_label("Phone number", exact=True).nth(0).fill("(201) 555-0123")
    grooming.get_by_role("button", name="Add New phone number").click()
    grooming.get_by_label("Phone number", exact=True).nth(1).fill("+1 416 555 0199")
    # 4. A reminder for unresolved conversations, with its time.
    grooming.get_by_label("Enable a reminder for unresolved conversations").check()
    grooming.get_by_label("Send the reminder at").fill("17:30")
    expect(grooming.get_by_text("Unsaved changes")).to_be_visible()
    save(grooming)
    expect(grooming.get_by_role("status")).to_contain_text("changes saved")
    expect(grooming.get_by_text("Unsaved changes")).to_have_count(0)

    saved = [d for d in api.departments(practice) if d["name"] == "Grooming"][0]
    assert saved["visible_in_app"] is True
    assert saved["alerts"] == {
        "enabled": True,
        "emails": ["desk@happypaws.example", "groomer@happypaws.example"],
        "sms_numbers": ["+12015550123", "+14165550199"],
    }
    assert saved["unresolved_reminder"] == {"enabled": True, "at": "17:30"}
    # The numbers come back as the service keeps them (E.164), one per line.
    expect(grooming.get_by_label("Phone number", exact=True).nth(0)).to_have_value("+12015550123")

    # A department not visible in the app needs no chat hours: its hours are not offered.
    page.get_by_role("button", name="Add New Department").click()
    add.get_by_label("Department name").fill("Dr. Lee (telehealth)")
    add.get_by_role("button", name="Add department").click()
    lee = card(page, "Dr. Lee (telehealth)")
    expect(lee.get_by_text("is not visible in the mobile app, so it needs no chat hours")).to_be_visible()
    expect(lee.get_by_role("group", name="Monday")).to_be_hidden()
    assert [d["name"] for d in api.departments(practice)] == ["Happy Paws Team", "Dr. Lee (telehealth)", "Grooming"]
    assert api.departments(practice)[1]["visible_in_app"] is False


def test_departments_are_listed_collapsed_and_the_caret_shows_and_hides_the_settings(page, api, practice):
    api.setup_practice(practice)
    api.add_department(practice, {"name": "Grooming"})
    api.add_department(practice, {"name": "Boarding"})
    sign_in(page, practice)
    names = page.locator("article.department .name")
    expect(names).to_have_text(["Happy Paws Team", "Boarding", "Grooming"])
    for name in ["Happy Paws Team", "Boarding", "Grooming"]:
        c = card(page, name)
        expect(c.get_by_role("button", name=name, exact=True)).to_have_attribute("aria-expanded", "false")
        expect(c.get_by_label("Department name")).to_be_hidden()
    grooming = card(page, "Grooming")
    caret = grooming.get_by_role("button", name="Grooming", exact=True)
    caret.click()
    expect(caret).to_have_attribute("aria-expanded", "true")
    expect(grooming.get_by_label("Department name")).to_have_value("Grooming")
    caret.click()
    expect(caret).to_have_attribute("aria-expanded", "false")
    expect(grooming.get_by_label("Department name")).to_be_hidden()


def test_the_default_team_says_it_cannot_be_deleted_or_renamed(page, api, practice):
    api.setup_practice(practice)
    api.add_department(practice, {"name": "Grooming"})
    sign_in(page, practice)
    team = card(page, "Happy Paws Team")
    expect(team.get_by_text("Cannot be deleted or renamed")).to_be_visible()
    expect(team.get_by_role("button", name=re.compile("^Remove"))).to_have_count(0)
    expect(card(page, "Grooming").get_by_role("button", name="Remove Grooming")).to_be_visible()
    expand(page, "Happy Paws Team")
    name = team.get_by_label("Department name")
    expect(name).to_have_attribute("readonly", "")
    expect(team.get_by_text("its name cannot be changed and it cannot be deleted")).to_be_visible()
    visible = team.get_by_label("Make this department/provider visible in mobile app")
    expect(visible).to_be_checked()
    expect(visible).to_be_disabled()
    expect(team.get_by_text("All incoming text messages are delivered here")).to_be_visible()


@pytest.mark.store
def test_text_alerts_are_hidden_with_the_articles_words_outside_the_us_and_canada(page, api, practice):
    api.setup_practice(practice, name="Paws London", country="GB")
    sign_in(page, practice)
    team = expand(page, "Paws London Team")
    expect(team.get_by_text("Practices outside the U.S. and Canada will not be able to receive text messages")).to_be_visible()
    expect(team.get_by_role("button", name="Add New phone number")).to_have_count(0)
    expect(team.get_by_label("Phone number", exact=True)).to_have_count(0)
    team.get_by_label("Enable a new message alert").check()
    team.get_by_label("Emails", exact=True).fill("desk@pawslondon.example")
    save(team)
    expect(team.get_by_role("status")).to_contain_text("changes saved")
    saved = api.departments(practice)[0]["alerts"]
    assert saved == {"enabled": True, "emails": ["desk@pawslondon.example"], "sms_numbers": []}


@pytest.mark.store
def test_business_hours_date_overrides_and_chat_preferences_are_saved(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    sign_in(page, practice)
    g = expand(page, "Grooming")
    # New departments start at 09:00-18:00 Monday to Friday (the article's defaults).
    expect(day(g, "Monday").get_by_label("Monday from")).to_have_value("09:00")
    expect(day(g, "Monday").get_by_label("Monday to")).to_have_value("18:00")
    expect(day(g, "Saturday").get_by_label("Saturday", exact=True)).not_to_be_checked()
    # Tick Saturday (it starts at 09:00-18:00) and make it a morning; untick Wednesday; Friday 8:30 to 17:00.
    day(g, "Saturday").get_by_label("Saturday", exact=True).check()
    expect(day(g, "Saturday").get_by_label("Saturday from")).to_have_value("09:00")
    day(g, "Saturday").get_by_label("Saturday to").fill("13:00")
    day(g, "Wednesday").get_by_label("Wednesday", exact=True).uncheck()
    expect(day(g, "Wednesday").get_by_text("No chats this day")).to_be_visible()
    day(g, "Friday").get_by_label("Friday from").fill("8:30")
    day(g, "Friday").get_by_label("Friday to").fill("17:00")

    # Disable Specific Date Range: the holidays.
    g.get_by_role("button", name="Add date range").click()
    g.get_by_label("From", exact=True).fill("2026-12-24")
    g.get_by_label("To", exact=True).fill("2026-12-26")
    # Enable/Disable Specific Dates: a Working Day with its own hours, and a Non-Working Day.
    g.get_by_role("button", name="Add date", exact=True).click()
    g.get_by_label("Date", exact=True).nth(0).fill("2026-11-29")
    g.get_by_label("Working Day", exact=True).nth(0).check()
    g.get_by_role("button", name="Add hours on this Working Day").click()
    g.get_by_label("this Working Day from").fill("10:00")
    g.get_by_label("this Working Day to").fill("14:00")
    g.get_by_role("button", name="Add date", exact=True).click()
    g.get_by_label("Date", exact=True).nth(1).fill("2027-01-01")
    expect(g.get_by_label("Non-Working Day", exact=True).nth(1)).to_be_checked()

    # App Chat Preferences: a greeting; no messages outside chat hours, with the message they see instead.
    g.get_by_label("Chat greeting").fill("Hi! How can we help your pet?")
    g.get_by_label("Allow app users to leave a message outside chat hours").uncheck()
    g.get_by_label("Message outside chat hours", exact=True).fill("Grooming answers Monday to Saturday from 9.")
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")

    saved = api.department(practice, grooming_id)
    assert saved["hours"] == {
        "mon": {"start": "09:00", "end": "18:00"},
        "tue": {"start": "09:00", "end": "18:00"},
        "wed": None,
        "thu": {"start": "09:00", "end": "18:00"},
        "fri": {"start": "08:30", "end": "17:00"},
        "sat": {"start": "09:00", "end": "13:00"},
        "sun": None,
    }
    assert saved["date_overrides"] == [
        {"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"},
        {"start_date": "2026-11-29", "end_date": "2026-11-29", "kind": "working", "start": "10:00", "end": "14:00"},
        {"start_date": "2027-01-01", "end_date": "2027-01-01", "kind": "non_working"},
    ]
    assert saved["chat"] == {
        "greeting": "Hi! How can we help your pet?",
        "allow_messages_after_hours": False,
        "after_hours_message": "Grooming answers Monday to Saturday from 9.",
    }
    # What the app and the widget see follows (a Saturday afternoon in New York: closed, no messages now).
    at = "2026-12-05T15:00:00-05:00"
    public = api.ok("GET", f"/public/practices/{practice}/availability?at={at.replace('+', '%2B')}")
    mine = [d for d in public["departments"] if d["id"] == grooming_id][0]
    assert (mine["open"], mine["reason"], mine["accepts_messages_now"]) == (False, "outside_hours", False)
    assert mine["greeting"] == "Hi! How can we help your pet?"

    # Removing a date and a range, then saving, removes them.
    g.get_by_role("button", name="Remove this date range").click()
    g.get_by_role("button", name="Remove this date").nth(1).click()
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")
    assert api.department(practice, grooming_id)["date_overrides"] == [
        {"start_date": "2026-11-29", "end_date": "2026-11-29", "kind": "working", "start": "10:00", "end": "14:00"},
    ]


@pytest.mark.store
def test_reset_puts_the_business_hours_back_to_the_defaults(page, api, practice):
    api.setup_practice(practice)
    override = {"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"}
    grooming_id = api.add_department(
        practice,
        {
            "name": "Grooming",
            "visible_in_app": True,
            "hours": {"sat": {"start": "08:00", "end": "12:00"}, "sun": {"start": "10:00", "end": "11:00"}},
            "date_overrides": [override],
        },
    )["id"]
    sign_in(page, practice)
    g = expand(page, "Grooming")
    expect(day(g, "Monday").get_by_label("Monday", exact=True)).not_to_be_checked()
    expect(day(g, "Saturday").get_by_label("Saturday from")).to_have_value("08:00")
    # An unsaved edit elsewhere survives the reset and can still be saved (no false conflict).
    g.get_by_label("Chat greeting").fill("Hello from Grooming")
    g.get_by_role("button", name="Reset", exact=True).click()
    expect(g.get_by_role("status")).to_contain_text("back to 09:00–18:00")
    saved = api.department(practice, grooming_id)
    assert saved["hours"] == DEFAULT_HOURS
    assert saved["date_overrides"] == [override]
    assert saved["chat"]["greeting"] is None
    for name in ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]:
        expect(day(g, name).get_by_label(name, exact=True)).to_be_checked()
        expect(day(g, name).get_by_label(f"{name} from")).to_have_value("09:00")
        expect(day(g, name).get_by_label(f"{name} to")).to_have_value("18:00")
    for name in ["Saturday", "Sunday"]:
        expect(day(g, name).get_by_label(name, exact=True)).not_to_be_checked()
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")
    saved = api.department(practice, grooming_id)
    assert saved["chat"]["greeting"] == "Hello from Grooming"
    assert saved["hours"] == DEFAULT_HOURS


@pytest.mark.store
def test_changes_made_through_the_api_are_on_the_page_after_a_reload(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    sign_in(page, practice)
    expect(card(page, "Grooming")).to_be_visible()
    api.patch(
        practice,
        grooming_id,
        {
            "name": "Grooming & Spa",
            "alerts": {"enabled": True, "emails": "spa@happypaws.example, desk@happypaws.example", "sms_numbers": ["+12015550123"]},
            "unresolved_reminder": {"enabled": True, "at": "16:45"},
            "hours": {"sun": {"start": "10:00", "end": "14:00"}, "mon": None},
            "date_overrides": [{"start_date": "2026-12-31", "end_date": "2026-12-31", "kind": "working", "start": "09:00", "end": "12:00"}],
            "chat": {"greeting": "Welcome to the spa!", "allow_messages_after_hours": True, "after_hours_message": "We answer in the morning."},
        },
    )
    api.ok("PUT", f"/departments/{grooming_id}/online", api.token(practice, "staff"), {"online": False})
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(card(page, "Grooming")).to_have_count(0)
    g = expand(page, "Grooming & Spa")
    expect(g.get_by_role("switch")).to_have_attribute("aria-checked", "false")
    expect(g.get_by_role("switch")).to_contain_text("Offline")
    expect(g.get_by_label("Department name")).to_have_value("Grooming & Spa")
    expect(g.get_by_label("Enable a new message alert")).to_be_checked()
    expect(g.get_by_label("Emails", exact=True)).to_have_value("spa@happypaws.example, desk@happypaws.example")
    expect(g.get_by_label("Phone number", exact=True)).to_have_value("+12015550123")
    expect(g.get_by_label("Send the reminder at")).to_have_value("16:45")
    expect(day(g, "Monday").get_by_label("Monday", exact=True)).not_to_be_checked()
    expect(day(g, "Sunday").get_by_label("Sunday from")).to_have_value("10:00")
    expect(g.get_by_label("Date", exact=True)).to_have_value("2026-12-31")
    expect(g.get_by_label("Working Day", exact=True)).to_be_checked()
    expect(g.get_by_label("this Working Day from")).to_have_value("09:00")
    expect(g.get_by_label("this Working Day to")).to_have_value("12:00")
    expect(g.get_by_label("Chat greeting")).to_have_value("Welcome to the spa!")
    expect(g.get_by_label("Message outside chat hours", exact=True)).to_have_value("We answer in the morning.")


@pytest.mark.store
def test_the_online_offline_switch_takes_effect_at_once(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True, "hours": {d: ALWAYS for d in DEFAULT_HOURS}})["id"]
    sign_in(page, practice)
    g = card(page, "Grooming")
    switch = g.get_by_role("switch", name=re.compile("^Grooming"))
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_contain_text("Online")
    # An unsaved edit first: flipping the switch must not turn the next Save into a conflict.
    expand(page, "Grooming").get_by_label("Chat greeting").fill("Hi there")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(switch).to_contain_text("Offline")
    expect(g.get_by_role("status")).to_contain_text("offline")
    assert api.department(practice, grooming_id)["online"] is False
    public = api.ok("GET", f"/public/practices/{practice}/availability")
    mine = [d for d in public["departments"] if d["id"] == grooming_id][0]
    assert (mine["open"], mine["reason"]) == (False, "offline")
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")
    saved = api.department(practice, grooming_id)
    assert (saved["online"], saved["chat"]["greeting"]) == (False, "Hi there")
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    assert api.department(practice, grooming_id)["online"] is True


@pytest.mark.store
def test_a_stale_save_says_someone_else_saved_and_overwrites_nothing(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    sign_in(page, practice)
    g = expand(page, "Grooming")
    g.get_by_label("Chat greeting").fill("My greeting")
    # Someone else saves first.
    api.patch(practice, grooming_id, {"chat": {"greeting": "Their greeting"}, "hours": {"sat": {"start": "09:00", "end": "12:00"}}})
    save(g)
    conflict = g.locator(".conflict")
    expect(conflict).to_contain_text("someone else saved changes to Grooming after you opened it")
    expect(conflict).to_contain_text("Nothing was overwritten")
    saved = api.department(practice, grooming_id)
    assert saved["chat"]["greeting"] == "Their greeting"
    assert saved["hours"]["sat"] == {"start": "09:00", "end": "12:00"}
    # The edit is still on the page until Reload is chosen.
    expect(g.get_by_label("Chat greeting")).to_have_value("My greeting")
    g.get_by_role("button", name="Reload Grooming").click()
    expect(g.get_by_label("Chat greeting")).to_have_value("Their greeting")
    expect(day(g, "Saturday").get_by_label("Saturday to")).to_have_value("12:00")
    expect(conflict).to_have_count(1)
    expect(g.locator(".conflict")).to_be_empty()
    # Now a save goes through.
    g.get_by_label("Chat greeting").fill("Agreed greeting")
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")
    assert api.department(practice, grooming_id)["chat"]["greeting"] == "Agreed greeting"


@pytest.mark.store
def test_a_department_with_open_chats_cannot_be_removed_and_the_page_says_why(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming"})["id"]
    staff = api.token(practice, "staff")
    conversation = api.ok(
        "POST", "/conversations", staff, {"department_id": grooming_id, "client_id": "owner-7", "body": "Rex is ready", "channel": "app"}
    )["id"]
    sign_in(page, practice)
    g = card(page, "Grooming")
    expect(g.get_by_text("1 open chat")).to_be_visible()
    g.get_by_role("button", name="Remove Grooming").click()
    dialog = page.get_by_role("dialog", name="Remove Grooming?")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("Be sure there are no open chats assigned to this department before removing it.")
    # Cancel keeps it.
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    g.get_by_role("button", name="Remove Grooming").click()
    dialog.get_by_role("button", name="Remove department").click()
    alert = g.get_by_role("alert").first
    expect(alert).to_contain_text("Grooming cannot be removed: it still has 1 open chat")
    expect(alert).to_contain_text("transfer them to another department")
    assert api.call("GET", f"/departments/{grooming_id}", api.token(practice)).status == 200

    # Once the chat is ended, the trash can removes it.
    api.ok("POST", f"/conversations/{conversation}/end", staff)
    g.get_by_role("button", name="Remove Grooming").click()
    dialog.get_by_role("button", name="Remove department").click()
    expect(card(page, "Grooming")).to_have_count(0)
    expect(page.locator("#page-status")).to_have_text("Grooming was removed.")
    assert api.call("GET", f"/departments/{grooming_id}", api.token(practice)).status == 404


@pytest.mark.store
def test_every_refusal_is_shown_next_to_its_field_in_plain_words_and_nothing_changes(page, api, practice):
    api.setup_practice(practice)
    api.add_department(practice, {"name": "Boarding"})
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    before = api.department(practice, grooming_id)
    sign_in(page, practice)
    g = expand(page, "Grooming")

    def refused(place, words):
        expect(place.locator(".error", has_text=words)).to_be_visible()
        expect(g.locator(".form-alert")).to_contain_text("Not saved")
        current = api.department(practice, grooming_id)
        assert current == before, "a refused save changed the department"

    def field_of(label):
        return g.locator(".field", has=page.get_by_label(label, exact=True))

    g.get_by_label("Emails", exact=True).fill("desk@happypaws.example, not an address")
    save(g)
    refused(field_of("Emails"), "Check the email addresses")
    expect(g.get_by_label("Emails", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(g.get_by_label("Emails", exact=True)).to_be_focused()

    g.get_by_label("Emails", exact=True).fill("desk@happypaws.example")
    g.get_by_role("button", name="Add New phone number").click()
    g.get_by_label("Phone number", exact=True).nth(0).fill("(201) 555-0123")
    g.get_by_role("button", name="Add New phone number").click()
    g.get_by_label("Phone number", exact=True).nth(1).fill("12345")
    save(g)
    refused(g.locator("li.phone").nth(1), "not a phone number that can receive texts")
    expect(g.locator("li.phone").nth(0).locator(".error")).to_be_hidden()

    g.get_by_label("Phone number", exact=True).nth(1).fill("+44 20 7946 0958")
    save(g)
    refused(g.locator("li.phone").nth(1), "Text alerts go only to U.S. and Canadian phone numbers")

    g.get_by_role("button", name="Remove this phone number").nth(1).click()
    g.get_by_label("Emails", exact=True).fill("")
    g.get_by_label("Enable a reminder for unresolved conversations").check()
    save(g)
    refused(field_of("Enable a reminder for unresolved conversations"), "add at least one email address")

    g.get_by_label("Enable a reminder for unresolved conversations").uncheck()
    day(g, "Tuesday").get_by_label("Tuesday from").fill("18:00")
    day(g, "Tuesday").get_by_label("Tuesday to").fill("09:00")
    save(g)
    refused(day(g, "Tuesday"), "Tuesday: the opening time (18:00) must be before the closing time (09:00)")

    day(g, "Tuesday").get_by_label("Tuesday from").fill("09:00")
    day(g, "Tuesday").get_by_label("Tuesday to").fill("18:00")
    g.get_by_label("Send the reminder at").fill("25:00")
    save(g)
    refused(field_of("Send the reminder at"), "Choose a reminder time between 00:00 and 23:59")

    g.get_by_label("Send the reminder at").fill("")
    g.get_by_role("button", name="Add date range").click()
    g.get_by_label("From", exact=True).fill("2026-12-26")
    g.get_by_label("To", exact=True).fill("2026-12-24")
    save(g)
    refused(g.locator("li.override").nth(0), "The last date must be on or after the first date")

    g.get_by_label("To", exact=True).fill("2026-12-28")
    g.get_by_role("button", name="Add date", exact=True).click()
    g.get_by_label("Date", exact=True).fill("2026-12-27")
    save(g)
    refused(g.locator("li.override").nth(1), "A date can have only one override")

    g.get_by_role("button", name="Remove this date", exact=True).click()
    g.get_by_label("Department name").fill("boarding")
    save(g)
    refused(field_of("Department name"), "Another department already has this name")

    # Fixed, it saves, and the messages go.
    g.get_by_label("Department name").fill("Grooming")
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")
    expect(g.locator(".error:visible")).to_have_count(0)
    saved = api.department(practice, grooming_id)
    assert saved["date_overrides"] == [{"start_date": "2026-12-26", "end_date": "2026-12-28", "kind": "non_working"}]
    assert saved["alerts"]["sms_numbers"] == ["+12015550123"]

    # Add New Department refuses a taken name next to the name field too.
    page.get_by_role("button", name="Add New Department").click()
    add = page.locator("#add-form")
    add.get_by_label("Department name").fill("GROOMING")
    add.get_by_role("button", name="Add department").click()
    expect(add.locator(".field", has=page.get_by_label("Department name")).locator(".error")).to_contain_text(
        "Another department already has this name"
    )
    assert len(api.departments(practice)) == 3


@pytest.mark.store
def test_staff_see_the_settings_read_only_and_may_switch_a_department_offline(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    sign_in(page, practice, role="staff")
    expect(page.get_by_text("Only a practice admin can change their settings")).to_be_visible()
    expect(page.get_by_role("button", name="Add New Department")).to_be_hidden()
    g = expand(page, "Grooming")
    expect(g.get_by_role("button", name="Remove Grooming")).to_be_hidden()
    expect(g.get_by_label("Department name")).to_be_disabled()
    expect(day(g, "Monday").get_by_label("Monday from")).to_be_disabled()
    expect(g.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    g.get_by_role("switch").click()
    expect(g.get_by_role("switch")).to_have_attribute("aria-checked", "false")
    assert api.department(practice, grooming_id)["online"] is False


@pytest.mark.store
def test_split_shifts_a_day_and_a_working_day_with_several_hours(page, api, practice):
    """Split shifts (docs/api.md "Departments"): a day of several windows is saved as a list and shown as such; a
    refusal naming one window (hours.mon[1]) is shown at that window; a Working Day takes windows too."""
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    sign_in(page, practice)
    g = expand(page, "Grooming")
    monday = day(g, "Monday")
    monday.get_by_role("button", name="Add hours on Monday").click()
    expect(monday.get_by_label("Monday (hours 2) from")).to_be_focused()
    monday.get_by_label("Monday (hours 1) to").fill("12:00")
    monday.get_by_label("Monday (hours 2) from").fill("12:00")
    monday.get_by_label("Monday (hours 2) to").fill("19:00")
    save(g)
    window2 = monday.locator(".window").nth(1)
    expect(window2.locator(".error", has_text="Monday: 12:00–19:00 touches 09:00–12:00; make them one.")).to_be_visible()
    expect(window2.get_by_label("Monday (hours 2) from")).to_have_attribute("aria-invalid", "true")
    assert api.department(practice, grooming_id)["hours"]["mon"] == {"start": "09:00", "end": "18:00"}

    monday.get_by_label("Monday (hours 2) from").fill("14:00")
    for _ in range(2):
        monday.get_by_role("button", name="Add hours on Monday").click()
    expect(monday.get_by_role("button", name="Add hours on Monday")).to_have_count(0)  # four at most
    monday.get_by_role("button", name="Remove Monday hours 4").click()
    monday.get_by_role("button", name="Remove Monday hours 3").click()
    # An overnight stretch: Friday to midnight, Saturday from midnight.
    day(g, "Friday").get_by_label("Friday to").fill("24:00")
    day(g, "Saturday").get_by_label("Saturday", exact=True).check()
    day(g, "Saturday").get_by_label("Saturday from").fill("00:00")
    day(g, "Saturday").get_by_label("Saturday to").fill("06:00")
    # A Working Day with a lunch break.
    g.get_by_role("button", name="Add date", exact=True).click()
    g.get_by_label("Date", exact=True).fill("2026-12-27")
    g.get_by_label("Working Day", exact=True).check()
    g.get_by_role("button", name="Add hours on this Working Day").click()
    g.get_by_label("this Working Day to").fill("12:00")
    g.get_by_role("button", name="Add hours on this Working Day").click()
    g.get_by_label("this Working Day (hours 2) from").fill("13:00")
    g.get_by_label("this Working Day (hours 2) to").fill("17:00")
    save(g)
    expect(g.get_by_role("status")).to_contain_text("changes saved")

    saved = api.department(practice, grooming_id)
    assert saved["hours"]["mon"] == [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}]
    assert saved["hours"]["tue"] == {"start": "09:00", "end": "18:00"}
    assert (saved["hours"]["fri"], saved["hours"]["sat"]) == ({"start": "09:00", "end": "24:00"}, {"start": "00:00", "end": "06:00"})
    assert saved["date_overrides"] == [
        {"start_date": "2026-12-27", "end_date": "2026-12-27", "kind": "working",
         "windows": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "17:00"}]},
    ]
    # Set through the API, seen on the page.
    api.patch(practice, grooming_id, {"hours": {"wed": [{"start": "08:00", "end": "11:00"}, {"start": "15:00", "end": "18:00"}]}})
    page.reload()
    page.wait_for_selector("body[data-ready]")
    g = expand(page, "Grooming")
    expect(day(g, "Wednesday").get_by_label("Wednesday (hours 2) from")).to_have_value("15:00")
    expect(day(g, "Monday").get_by_label("Monday (hours 2) to")).to_have_value("19:00")
    expect(g.get_by_label("this Working Day (hours 2) to")).to_have_value("17:00")


def test_with_one_window_a_day_the_editor_offers_no_second(page, api, practice):
    """For an API of one window a day (max_windows_per_day 1 in config.json) every day is one window, sent
    as an object."""
    api.setup_practice(practice)
    api.add_department(practice, {"name": "Grooming", "visible_in_app": True})
    page.route("**/config.json", lambda route: route.fulfill(json={"api_base": "", "auth": {"mode": "local"}, "max_windows_per_day": 1}))
    sign_in(page, practice)
    g = expand(page, "Grooming")
    expect(g.get_by_role("button", name=re.compile("^Add hours on [MTWFS]"))).to_have_count(0)
    expect(g.get_by_role("button", name=re.compile("^Remove Monday hours"))).to_have_count(0)
    day(g, "Monday").get_by_label("Monday to").fill("17:00")
    with page.expect_request(lambda r: r.method == "PATCH") as sent:
        save(g)
    assert sent.value.post_data_json["hours"]["mon"] == {"start": "09:00", "end": "17:00"}
