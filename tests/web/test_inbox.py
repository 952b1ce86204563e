"""The staff inbox and the web-chat widget together: an owner's message typed in the widget (on a clinic's
site, another origin) appears in the inbox live and the staff's reply typed in the inbox appears in the widget
live; transfer with a note and end, checked through the API; the live updates' fallback; delivery shown."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from conftest import chat_practice, new_page, open_widget, sign_in_inbox


def conversations(api, practice, status="open"):
    return api.ok("GET", f"/conversations?status={status}", api.token(practice, "staff"))["conversations"]


def conversation(api, practice, cid):
    return api.ok("GET", f"/conversations/{cid}", api.token(practice, "staff"))


def send_from_widget(panel, text):
    panel.get_by_label("Your message").fill(text)
    panel.get_by_role("button", name="Send", exact=True).click()
    expect(panel.get_by_role("log", name="Messages")).to_contain_text(text)


@pytest.mark.store
def test_an_owners_message_reaches_the_inbox_live_and_the_reply_reaches_the_widget_live(page, owner_page, api, clinic, practice):
    chat_practice(api, practice)
    sign_in_inbox(page, practice)
    expect(page.get_by_text("No open conversations.")).to_be_visible()
    # Nothing below reloads the inbox: a mark left on the page must still be there at the end.
    page.evaluate("window.__stillTheSamePage = true")

    panel = open_widget(owner_page, clinic, practice)
    expect(panel.get_by_text("Hi! How can we help your pet?")).to_be_visible()
    send_from_widget(panel, "Rex has been limping since this morning.")

    # The inbox lists the new conversation by itself; choosing it shows the owner's message.
    item = page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text="Happy Paws Team")
    expect(item).to_have_count(1)
    owner_id = item.locator(".conversation-who").inner_text()
    assert owner_id.startswith("visitor-")
    item.click()
    thread = page.get_by_role("log", name="Messages and transfers")
    expect(thread).to_contain_text("Rex has been limping since this morning.")

    page.get_by_label("Reply", exact=True).fill("Please bring Rex in at 3 pm today.")
    page.get_by_role("button", name="Send reply").click()
    expect(thread).to_contain_text("Please bring Rex in at 3 pm today.")

    # The widget shows the reply as it comes, under the department's name (never the staff member's id).
    log = panel.get_by_role("log", name="Messages")
    reply = log.locator("li").filter(has_text="Please bring Rex in at 3 pm today.")
    expect(reply).to_contain_text("Happy Paws Team")
    expect(log).not_to_contain_text("staff-1")

    # And the owner's next message reaches the open conversation in the inbox.
    send_from_widget(panel, "Thank you, we will be there.")
    expect(thread).to_contain_text("Thank you, we will be there.")
    assert page.evaluate("window.__stillTheSamePage") is True

    [c] = conversations(api, practice)
    assert c["client_id"] == owner_id and c["channel"] == "web"
    bodies = [(m["author"]["kind"], m["body"]) for m in conversation(api, practice, c["id"])["messages"]]
    assert bodies == [
        ("client", "Rex has been limping since this morning."),
        ("staff", "Please bring Rex in at 3 pm today."),
        ("client", "Thank you, we will be there."),
    ]
