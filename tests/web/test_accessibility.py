"""Accessibility: axe-core finds no serious or critical violation on any state of the pages (the settings, the
inbox, the widget: open, offline, after hours); every control has a label; the settings and the widget can be
used with the keyboard alone, and the focus is always visible."""

from __future__ import annotations

from playwright.sync_api import expect

from conftest import ALWAYS, axe_violations, card, chat_practice, day, expand, open_widget, save, sign_in, sign_in_inbox


def focus_ring(page):
    return page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return {style: s.outlineStyle, width: parseFloat(s.outlineWidth), tag: document.activeElement.tagName}; }"""
    )


def assert_focus_visible(page):
    ring = focus_ring(page)
    assert ring["style"] != "none" and ring["width"] >= 2, f"no visible focus on {ring}"


def test_axe_finds_nothing_serious_on_any_state_of_the_pages(page, api, practice):
    page.goto("/")
    page.wait_for_selector("body[data-ready]")
    assert axe_violations(page) == [], "sign-in page"

    sign_in(page, practice)
    expect(page.get_by_role("region", name="Set up your practice")).to_be_visible()
    assert axe_violations(page) == [], "practice set-up"

    default_id = api.setup_practice(practice)
    grooming = api.add_department(
        practice,
        {
            "name": "Grooming",
            "visible_in_app": True,
            "alerts": {"enabled": True, "emails": ["desk@happypaws.example"], "sms_numbers": ["+12015550123"]},
            "date_overrides": [
                {"start_date": "2026-12-24", "end_date": "2026-12-26", "kind": "non_working"},
                {"start_date": "2026-11-29", "end_date": "2026-11-29", "kind": "working", "start": "10:00", "end": "14:00"},
            ],
        },
    )
    api.add_department(practice, {"name": "Dr. Lee (telehealth)"})
    page.reload()
    page.wait_for_selector("body[data-ready]")
    assert axe_violations(page) == [], "list, collapsed"

    for name in ["Happy Paws Team", "Grooming", "Dr. Lee (telehealth)"]:
        expand(page, name)
    page.get_by_role("button", name="Add New Department").click()
    assert axe_violations(page) == [], "every department expanded, the add form open"

    g = card(page, "Grooming")
    g.get_by_label("Emails", exact=True).fill("not an address")
    save(g)
    expect(g.locator(".error:visible")).to_have_count(1)
    assert axe_violations(page) == [], "a refusal shown"

    api.patch(practice, grooming["id"], {"chat": {"greeting": "changed elsewhere"}})
    g.get_by_label("Emails", exact=True).fill("desk@happypaws.example")
    save(g)
    expect(g.locator(".conflict")).not_to_be_empty()
    assert axe_violations(page) == [], "a conflict shown"

    g.get_by_role("button", name="Remove Grooming").click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert axe_violations(page) == [], "the remove dialog"
    page.keyboard.press("Escape")

    staff = page.context.new_page()
    sign_in(staff, practice, role="staff")
    expand(staff, "Grooming")
    assert axe_violations(staff) == [], "staff, read only"
    assert default_id


def test_every_control_has_a_label(page, api, practice):
    api.setup_practice(practice)
    api.add_department(practice, {"name": "Grooming", "visible_in_app": True, "alerts": {"enabled": True, "emails": [], "sms_numbers": ["+12015550123"]}})
    sign_in(page, practice)
    expand(page, "Grooming")
    expand(page, "Happy Paws Team")
    c = card(page, "Grooming")
    c.get_by_role("button", name="Add date range").click()
    c.get_by_role("button", name="Add date", exact=True).click()
    page.get_by_role("button", name="Add New Department").click()
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button, [role=switch]')]
                 .filter(el => el.offsetParent !== null || el.getClientRects().length)
                 .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                               && !el.getAttribute('aria-labelledby') && !el.textContent.trim())
                 .map(el => el.outerHTML.slice(0, 120))"""
    )
    assert unnamed == []


def test_the_settings_work_from_the_keyboard_with_a_visible_focus(page, api, practice):
    api.setup_practice(practice)
    grooming_id = api.add_department(practice, {"name": "Grooming", "visible_in_app": True})["id"]
    sign_in(page, practice)
    page.locator("#main").focus()
    # Tab to Grooming's caret: past the default team's caret and switch.
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Grooming":
            break
    caret = card(page, "Grooming").get_by_role("button", name="Grooming", exact=True)
    expect(caret).to_be_focused()
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(caret).to_have_attribute("aria-expanded", "true")

    # The switch: Tab, then Space.
    page.keyboard.press("Tab")
    switch = card(page, "Grooming").get_by_role("switch")
    expect(switch).to_be_focused()
    assert_focus_visible(page)
    page.keyboard.press("Space")
    expect(switch).to_have_attribute("aria-checked", "false")
    assert api.department(practice, grooming_id)["online"] is False

    # The trash can opens the dialog; Escape closes it, nothing is removed, the focus comes back.
    page.keyboard.press("Tab")
    trash = card(page, "Grooming").get_by_role("button", name="Remove Grooming")
    expect(trash).to_be_focused()
    assert_focus_visible(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("dialog")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_be_hidden()
    expect(trash).to_be_focused()

    # Into the form: the name field, a weekday, Save with Enter; every stop shows its focus.
    g = card(page, "Grooming")
    g.get_by_label("Department name").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    expect(g.get_by_label("Department name")).to_be_focused()
    assert_focus_visible(page)
    stops = set()
    for _ in range(60):
        page.keyboard.press("Tab")
        assert_focus_visible(page)
        stops.add(page.evaluate("document.activeElement.getAttribute('aria-label') || (document.activeElement.labels?.[0]?.textContent ?? document.activeElement.textContent)"))
        if page.evaluate("document.activeElement.textContent") == "Save":
            break
    assert "Saturday" in stops and "Chat greeting" in stops and "Save" in {s.strip() for s in stops}
    day(g, "Saturday").get_by_label("Saturday", exact=True).focus()
    page.keyboard.press("Space")
    g.get_by_label("Chat greeting").focus()
    page.keyboard.type("Typed with the keyboard")
    g.get_by_label("Department name").press("Enter")
    expect(g.get_by_role("status")).to_contain_text("changes saved")
    saved = api.department(practice, grooming_id)
    assert saved["hours"]["sat"] == {"start": "09:00", "end": "18:00"}
    assert saved["chat"]["greeting"] == "Typed with the keyboard"


def test_axe_finds_nothing_serious_on_the_inbox_and_the_widget(page, owner_page, api, clinic, practice):
    from test_widget import closed_until_the_day_after_tomorrow

    team = chat_practice(api, practice)
    api.add_department(practice, {"name": "Grooming", "visible_in_app": True, "hours": ALWAYS, "chat": {"greeting": "Groomers here."}})
    panel = open_widget(owner_page, clinic, practice)
    assert axe_violations(owner_page, preload=False) == [], "the widget, open"
    panel.get_by_label("Your message").fill("Does Luna need a booster?")
    panel.get_by_role("button", name="Send", exact=True).click()
    expect(panel.get_by_role("log", name="Messages")).to_contain_text("Does Luna need a booster?")

    sign_in_inbox(page, practice)
    assert axe_violations(page) == [], "the inbox, the list"
    page.get_by_role("list", name="Conversations").get_by_role("button").first.click()
    page.get_by_label("Reply", exact=True).fill("Yes, this month.")
    page.get_by_role("button", name="Send reply").click()
    expect(panel.get_by_role("log", name="Messages")).to_contain_text("Yes, this month.")
    page.get_by_role("button", name="Transfer", exact=True).click()
    expect(page.get_by_role("log", name="Messages and transfers")).to_contain_text("Transferred")
    assert axe_violations(page) == [], "the inbox, a conversation with a reply and a transfer"
    assert axe_violations(owner_page, preload=False) == [], "the widget, a chat going on"

    api.ok("PUT", f"/departments/{team}/online", api.token(practice), {"online": False})
    other = owner_page.context.browser.new_context(viewport={"width": 1100, "height": 900}).new_page()
    panel = open_widget(other, clinic, practice)
    expect(panel.get_by_role("status").filter(has_text="Chat is offline")).to_be_visible()
    assert axe_violations(other, preload=False) == [], "the widget, offline"

    api.ok("PUT", f"/departments/{team}/online", api.token(practice), {"online": True})
    closed_until_the_day_after_tomorrow(api, practice, team, allow=True, message="We are closed; leave a note.")
    other.reload()
    panel = open_widget(other, clinic, practice)
    expect(panel.get_by_role("alertdialog")).to_be_visible()
    assert axe_violations(other, preload=False) == [], "the widget, the after-hours pop-up"
    other.context.close()


def test_the_widget_works_from_the_keyboard_with_a_visible_focus(owner_page, api, clinic, practice):
    chat_practice(api, practice)
    owner_page.goto(clinic.page_url(practice))
    launcher = owner_page.get_by_role("button", name="Chat with Happy Paws")
    expect(launcher).to_be_visible()
    # Tab from the clinic's own button to the launcher.
    owner_page.get_by_role("button", name="Book an appointment").focus()
    for _ in range(5):
        owner_page.keyboard.press("Tab")
        if launcher.evaluate("(el) => el.matches(':focus')"):
            break
    expect(launcher).to_be_focused()
    assert launcher.evaluate("(el) => { const s = getComputedStyle(el); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }")
    owner_page.keyboard.press("Enter")
    text = owner_page.get_by_label("Your message")
    expect(text).to_be_focused()
    owner_page.keyboard.type("Typed with the keyboard")
    owner_page.keyboard.press("Tab")
    send = owner_page.get_by_role("button", name="Send", exact=True)
    expect(send).to_be_focused()
    assert send.evaluate("(el) => { const s = getComputedStyle(el); return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2; }")
    owner_page.keyboard.press("Enter")
    expect(owner_page.get_by_role("log", name="Messages")).to_contain_text("Typed with the keyboard")
    owner_page.keyboard.press("Escape")
    expect(owner_page.get_by_role("dialog", name="Chat with Happy Paws")).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")
