"""The staff inbox and the web-chat widget together: an owner's message typed in the widget (on a clinic's
site, another origin) appears in the inbox live and the staff's reply typed in the inbox appears in the widget
live; transfer with a note and end, checked through the API; the live updates' fallback; delivery shown."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from conftest import ALWAYS, chat_practice, open_widget, sign_in, sign_in_inbox


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


@pytest.mark.store
def test_transfer_with_a_note_and_end_from_the_inbox(page, owner_page, api, clinic, practice):
    chat_practice(api, practice)
    grooming = api.add_department(practice, {"name": "Grooming", "visible_in_app": True, "hours": ALWAYS})
    panel = open_widget(owner_page, clinic, practice)
    send_from_widget(panel, "Can Bella get a nail trim this week?")
    [c] = conversations(api, practice)

    sign_in_inbox(page, practice)
    page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text=c["client_id"]).click()
    page.get_by_label("Transfer to").select_option(label="Grooming")
    page.get_by_label("Note for the department").fill("Regular client, prefers mornings")
    page.get_by_role("button", name="Transfer", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Transferred to Grooming.")).to_be_visible()
    thread = page.get_by_role("log", name="Messages and transfers")
    expect(thread).to_contain_text("Transferred from Happy Paws Team to Grooming by staff-1")
    expect(thread).to_contain_text("Regular client, prefers mornings")

    after = conversation(api, practice, c["id"])
    assert after["department_id"] == grooming["id"]
    [t] = after["transfers"]
    assert (t["to"], t["note"]) == (grooming["id"], "Regular client, prefers mornings")

    # The owner sees the new department, never the note (in the widget and in the client's view).
    log = panel.get_by_role("log", name="Messages")
    expect(log).to_contain_text("Grooming")
    client = api.token(practice, "client", c["client_id"])
    seen = json.dumps(api.ok("GET", f"/client/conversations/{c['id']}/messages", client))
    assert "Grooming" in seen and "prefers mornings" not in seen
    expect(panel).not_to_contain_text("prefers mornings")

    page.get_by_role("button", name="End conversation").click()
    expect(page.locator("#detail-status")).to_have_text(re.compile(r"^Ended"))
    expect(page.get_by_role("button", name="Send reply")).to_be_hidden()
    assert conversation(api, practice, c["id"])["status"] == "resolved"
    expect(page.get_by_text("No open conversations.")).to_be_visible()
    page.get_by_label("Show").select_option("resolved")
    expect(page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text=c["client_id"])).to_be_visible()
    # The widget says the chat has ended (live: the end is a system message of the client's view).
    expect(panel.get_by_text("This chat has ended.")).to_be_visible(timeout=15_000)


@pytest.mark.store
def test_the_inbox_lists_open_conversations_by_department_newest_activity_first(page, api, practice):
    team = chat_practice(api, practice)
    grooming = api.add_department(practice, {"name": "Grooming", "visible_in_app": True, "hours": ALWAYS})
    staff = api.token(practice, "staff")
    for client, department in [("owner-a", team), ("owner-b", grooming["id"]), ("owner-c", team)]:
        api.ok("POST", "/conversations", staff, {"department_id": department, "client_id": client, "body": f"Hello {client}", "channel": "app"})
    # owner-a writes again: now the newest activity.
    api.ok("POST", "/inbound", api.token(practice, "client", "owner-a"), {"channel": "app", "body": "Any news?"})

    sign_in_inbox(page, practice)
    items = page.get_by_role("list", name="Conversations").locator(".conversation-who")
    expect(items).to_have_text(["owner-a", "owner-c", "owner-b"])
    page.get_by_label("Department").select_option(label="Grooming")
    expect(items).to_have_text(["owner-b"])
    page.get_by_label("Department").select_option(label="All departments")
    expect(items).to_have_text(["owner-a", "owner-c", "owner-b"])

    # A conversation is transferred to another department than its own.
    page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text="owner-b").click()
    expect(page.get_by_label("Transfer to").locator("option")).to_have_text(["Happy Paws Team"])


def test_the_inbox_refreshes_by_itself_when_live_updates_cannot_connect(page, api, practice):
    team = chat_practice(api, practice)
    # No ticket can be had (a network that refuses the live updates), and the refresh is every second.
    page.route("**/realtime/tickets", lambda route: route.abort())
    page.route(
        "**/config.json",
        lambda route: route.fulfill(json={"api_base": "", "auth": {"mode": "local"}, "max_windows_per_day": 4, "refresh_seconds": 1}),
    )
    sign_in(page, practice, role="staff", next_path="/inbox.html")
    expect(page.get_by_role("status").filter(has_text="refreshing every second")).to_be_visible()
    api.ok(
        "POST",
        "/conversations",
        api.token(practice, "staff", "staff-2"),
        {"department_id": team, "client_id": "owner-z", "body": "Your results are in.", "channel": "app"},
    )
    item = page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text="owner-z")
    expect(item).to_be_visible()
    item.click()
    thread = page.get_by_role("log", name="Messages and transfers")
    expect(thread).to_contain_text("Your results are in.")
    api.ok("POST", "/inbound", api.token(practice, "client", "owner-z"), {"channel": "app", "body": "Great, thanks!"})
    expect(thread).to_contain_text("Great, thanks!")


def test_a_messages_delivery_status_is_shown_when_it_carries_one(page, api, practice):
    """Text replies carry `delivery` (the outbound issue); the inbox shows it where present, and nothing where
    it is null. The API's answer is extended here with the contract's delivery of a texted reply."""
    team = chat_practice(api, practice)
    staff = api.token(practice, "staff")
    c = api.ok("POST", "/conversations", staff, {"department_id": team, "client_id": "owner-d", "body": "Reminder: vaccines due", "channel": "app"})
    cid = c["id"] if "id" in c else c["conversation_id"]
    api.ok("POST", f"/conversations/{cid}/messages", staff, {"body": "Second reply"})

    def with_delivery(route):
        response = route.fetch()
        body = response.json()
        for m, status in zip(body["messages"], ["delivered", "failed"]):
            m["delivery"] = {"status": status, "reason": "opted_out" if status == "failed" else None, "updated_at": m["at"], "segments": 1}
        route.fulfill(response=response, json=body)

    page.route(re.compile(rf".*/conversations/{cid}(\?.*)?$"), with_delivery)
    # The live socket goes through to the server; the test adds the outbound issue's message.delivery frame.
    sockets = []

    def through(ws):
        ws.connect_to_server()
        sockets.append(ws)

    page.route_web_socket(re.compile(r".*/ws\?ticket=.*"), through)
    sign_in_inbox(page, practice)
    page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text="owner-d").click()
    thread = page.get_by_role("log", name="Messages and transfers")
    first = thread.locator("li").filter(has_text="Reminder: vaccines due")
    expect(first).to_contain_text("Delivered")
    expect(thread.locator("li").filter(has_text="Second reply")).to_contain_text("Not delivered: the owner opted out of texts")

    message_id = first.get_attribute("data-message-id")
    delivery = {"status": "read", "reason": None, "updated_at": "2026-12-02T10:00:00Z", "segments": 1}
    sockets[-1].send(json.dumps({"type": "message.delivery", "conversation_id": cid, "message_id": message_id, "delivery": delivery}))
    expect(first.locator(".delivery")).to_have_text("Delivery: Read")


@pytest.mark.store
def test_a_texted_replys_delivery_moves_live_in_the_inbox(page, api, practice):
    """A reply to a texted conversation goes out by SMS through the local sender; the inbox shows its delivery
    as it moves (sent, then delivered when the provider says so), without a reload."""
    chat_practice(api, practice)
    admin = api.token(practice)
    api.ok("PUT", "/practice", admin, {"name": "Happy Paws", "timezone": "America/New_York", "country": "US", "sms_numbers": ["+12015550100"]})
    api.ok("POST", "/inbound", api.token(practice, "integration"), {"channel": "sms", "from": "+12015550111", "body": "Is Rex ready?"})
    sign_in_inbox(page, practice)
    page.evaluate("window.__stillTheSamePage = true")
    page.get_by_role("list", name="Conversations").get_by_role("button").filter(has_text="+12015550111").click()
    thread = page.get_by_role("log", name="Messages and transfers")
    expect(thread).to_contain_text("Is Rex ready?")

    page.get_by_label("Reply", exact=True).fill("Rex is ready at 5.")
    page.get_by_role("button", name="Send reply").click()
    reply = thread.locator("li").filter(has_text="Rex is ready at 5.")
    expect(reply.locator(".delivery")).to_have_text("Delivery: Sent")

    sent = [e for e in api.ok("GET", "/_local/sent") if e["kind"] == "reply" and e["body"] == "Rex is ready at 5."]
    assert [(e["channel"], e["to"], e["from"]) for e in sent] == [("sms", "+12015550111", "+12015550100")]
    api.ok("POST", "/_local/delivery", None, {"message_id": sent[0]["message_id"], "status": "delivered"})
    expect(reply.locator(".delivery")).to_have_text("Delivery: Delivered")
    assert page.evaluate("window.__stillTheSamePage") is True
