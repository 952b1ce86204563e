//! Live updates for real, on every store: the local server on a loopback port, a WebSocket client
//! (tokio-tungstenite) connecting with tickets bought over the API (API.md "Live updates"). A client sees a
//! staff reply arrive in its own view; staff see their practice (or one department); a ticket opens one
//! connection once; another practice's or another client's events never arrive; after a dropped connection
//! the cursor returns everything missed, in order; a connection that is gone is deleted, and nothing
//! answers 5xx. Frames never carry what the caller's view does not.

use domain::identity::PracticeId;
use domain::identity::Role;
use domain::realtime::{Connection, ConnectionId, Subscriber};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::always_open;
use vetchat_tests::live::{close, frames_until, next_frame, open, LiveServer, FRAME_WAIT};
use vetchat_tests::TestStore;

vetchat_tests::on_every_store!(
    a_client_sees_a_staff_reply_arrive_and_staff_see_their_practice,
    a_ticket_opens_one_connection_once,
    other_practices_and_other_clients_events_never_arrive,
    after_a_dropped_connection_the_cursor_returns_everything_missed,
    a_connection_that_is_gone_is_deleted_and_nothing_answers_5xx,
    staff_hear_what_became_of_a_text_reply_and_the_owner_hears_nothing_of_it,
);

const STAFF: &str = "staff-jane-7731";
const NOTE: &str = "private: owner was rude on the phone";

/// A practice open around the clock, with Grooming; returns (practice, default department, grooming).
async fn practice(live: &LiveServer) -> (String, String, String) {
    let api = &live.api;
    let p = vetchat_tests::api::Api::practice_id();
    let team = api.setup_open_practice(&p).await;
    let grooming = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open()}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, team, grooming)
}

/// The owner `sub` writes from the app: the conversation's id.
async fn app_message(live: &LiveServer, p: &str, sub: &str, body: &str) -> String {
    let r = live
        .api
        .call_as(
            p,
            Role::Client,
            sub,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "app", "body": body})),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    r.body["conversation_id"].as_str().unwrap().to_owned()
}

async fn reply(live: &LiveServer, p: &str, id: &str, body: &str) -> Value {
    let r = live
        .api
        .call_as(
            p,
            Role::Staff,
            STAFF,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": body})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn is_message(body: &'static str) -> impl Fn(&Value) -> bool {
    move |f: &Value| f["type"] == "message.created" && f["message"]["body"] == body
}

async fn a_client_sees_a_staff_reply_arrive_and_staff_see_their_practice(t: TestStore) {
    let live = LiveServer::start(&t).await;
    let (p, _, grooming) = practice(&live).await;
    let id = app_message(&live, &p, "owner-ada", "Can Rex get a bath?").await;
    let mut owner = live.connect(&p, Role::Client, "owner-ada", None).await;
    let mut desk = live.connect(&p, Role::Staff, "staff-desk", None).await;

    let sent = reply(&live, &p, &id, "Yes, Tuesday at 10").await;
    let frame = next_frame(&mut owner).await;
    assert_eq!(
        frame,
        json!({"type": "message.created", "conversation_id": id, "seq": sent["seq"],
               "message": {"id": sent["id"], "seq": sent["seq"], "at": sent["at"],
                           "author": {"kind": "staff", "department_name": "Happy Paws Team"},
                           "body": "Yes, Tuesday at 10"}}),
        "the client's frame is the client's view"
    );
    let frame = next_frame(&mut desk).await;
    assert_eq!(frame["type"], "message.created");
    assert_eq!(
        frame["message"]["author"],
        json!({"kind": "staff", "id": STAFF}),
        "staff see who wrote it"
    );

    // A transfer: staff hear the conversation move and the system message; the client only the message.
    let r = live
        .api
        .call_as(
            &p,
            Role::Staff,
            STAFF,
            Method::POST,
            &format!("/conversations/{id}/transfer"),
            Some(json!({"department_id": grooming, "note": NOTE})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let frames = frames_until(&mut desk, is_message("You are now chatting with Grooming")).await;
    let updated = frames
        .iter()
        .find(|f| f["type"] == "conversation.updated")
        .expect("conversation.updated");
    assert_eq!(updated["conversation"]["department_id"], grooming.as_str());
    let frame = next_frame(&mut owner).await;
    assert_eq!(
        frame["message"]["author"],
        json!({"kind": "system", "department_name": "Grooming"})
    );
    assert_eq!(frame["seq"], json!(sent["seq"].as_u64().unwrap() + 1));
    // Ended: staff hear it.
    let r = live
        .api
        .call_as(
            &p,
            Role::Staff,
            STAFF,
            Method::POST,
            &format!("/conversations/{id}/end"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let frame = next_frame(&mut desk).await;
    assert_eq!(
        (&frame["type"], &frame["conversation"]["status"]),
        (&json!("conversation.updated"), &json!("resolved"))
    );

    // The client's frames never carried a staff id, the note, or another kind of frame.
    let reply2 = app_message(&live, &p, "owner-ada", "One more thing").await;
    let frames = frames_until(&mut owner, is_message("One more thing")).await;
    assert!(reply2 != id, "the ended conversation was not reopened");
    for f in &frames {
        assert_eq!(f["type"], "message.created", "{f}");
        let text = f.to_string();
        assert!(!text.contains(STAFF) && !text.contains(NOTE), "{text}");
    }
}

async fn a_ticket_opens_one_connection_once(t: TestStore) {
    let live = LiveServer::start(&t).await;
    let (p, _, _) = practice(&live).await;
    let url = live.ticket(&p, Role::Client, "owner-ada", None).await;
    let first = open(&url).await.expect("the first use");
    assert_eq!(
        open(&url).await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "a second use is refused"
    );
    let base = format!("ws://{}/ws", live.addr);
    for refused in [
        base.clone(),
        format!("{base}?ticket="),
        format!("{base}?ticket=not-a-ticket"),
        format!("{base}?ticket={}", "A".repeat(43)),
    ] {
        assert_eq!(
            open(&refused).await.err(),
            Some(StatusCode::UNAUTHORIZED),
            "{refused}"
        );
    }
    // Bought by one role, for itself only: integrations buy none; a client names no department; a staff
    // member's department must exist.
    let r = live
        .api
        .call_as(
            &p,
            Role::Integration,
            "gw",
            Method::POST,
            "/realtime/tickets",
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = live
        .api
        .call_as(
            &p,
            Role::Client,
            "owner-ada",
            Method::POST,
            "/realtime/tickets",
            Some(json!({"department_id": "dep_x"})),
        )
        .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "department_id")
    );
    let r = live
        .api
        .call_as(
            &p,
            Role::Staff,
            STAFF,
            Method::POST,
            "/realtime/tickets",
            Some(json!({"department_id": "dep_nope"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = live
        .api
        .call_as(
            &p,
            Role::Staff,
            STAFF,
            Method::POST,
            "/realtime/tickets",
            Some(json!({"other": 1})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    close(first).await;
}

async fn other_practices_and_other_clients_events_never_arrive(t: TestStore) {
    let live = LiveServer::start(&t).await;
    let (a, _, grooming) = practice(&live).await;
    let (b, _, _) = practice(&live).await;
    let ada = app_message(&live, &a, "owner-ada", "Ada here").await;
    let bob = app_message(&live, &a, "owner-bob", "Bob here").await;
    // The same user id in practice B.
    app_message(&live, &b, "owner-ada", "Ada in B").await;
    let mut bob_socket = live.connect(&a, Role::Client, "owner-bob", None).await;
    let mut ada_in_b = live.connect(&b, Role::Client, "owner-ada", None).await;
    let mut b_staff = live.connect(&b, Role::Staff, "staff-b", None).await;
    let mut groomers = live
        .connect(
            &a,
            Role::Staff,
            "staff-g",
            Some(json!({"department_id": grooming})),
        )
        .await;

    // Events in A's default department, for Ada: none of these four hears of them.
    reply(&live, &a, &ada, "Only for Ada").await;
    app_message(&live, &a, "owner-ada", "Ada again").await;
    // Then each one's own sentinel, which it hears; what came before it is all it heard.
    reply(&live, &a, &bob, "Bob's sentinel").await;
    let r = live
        .api
        .call_as(
            &b,
            Role::Staff,
            "staff-b",
            Method::GET,
            "/conversations?status=open",
            None,
        )
        .await;
    let b_conversation = r.body["conversations"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    reply(&live, &b, &b_conversation, "B's sentinel").await;
    let r = live
        .api
        .call_as(
            &a,
            Role::Staff,
            STAFF,
            Method::POST,
            &format!("/conversations/{bob}/transfer"),
            Some(json!({"department_id": grooming})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);

    for (who, socket, sentinel) in [
        ("Bob", &mut bob_socket, "Bob's sentinel"),
        ("Ada in practice B", &mut ada_in_b, "B's sentinel"),
        ("practice B's staff", &mut b_staff, "B's sentinel"),
        (
            "the groomers",
            &mut groomers,
            "You are now chatting with Grooming",
        ),
    ] {
        let frames = frames_until(socket, is_message(sentinel)).await;
        let text = serde_json::to_string(&frames).unwrap();
        for foreign in ["Only for Ada", "Ada again", "Ada here"] {
            assert!(!text.contains(foreign), "{who} heard {foreign:?}: {text}");
        }
    }
}

async fn after_a_dropped_connection_the_cursor_returns_everything_missed(t: TestStore) {
    let live = LiveServer::start(&t).await;
    let (p, _, _) = practice(&live).await;
    let id = app_message(&live, &p, "owner-ada", "Is Rex ready?").await;
    let mut socket = live.connect(&p, Role::Client, "owner-ada", None).await;
    reply(&live, &p, &id, "Almost").await;
    let last_seen = next_frame(&mut socket).await["seq"].as_u64().unwrap();
    close(socket).await;

    for body in ["He is drying", "Ready at 5", "See you then"] {
        reply(&live, &p, &id, body).await;
    }
    let mut socket = live.connect(&p, Role::Client, "owner-ada", None).await;
    let r = live
        .api
        .call_as(
            &p,
            Role::Client,
            "owner-ada",
            Method::GET,
            &format!("/client/conversations/{id}/messages?after={last_seen}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let missed: Vec<(u64, &str)> = r.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["seq"].as_u64().unwrap(), m["body"].as_str().unwrap()))
        .collect();
    assert_eq!(
        missed,
        [
            (last_seen + 1, "He is drying"),
            (last_seen + 2, "Ready at 5"),
            (last_seen + 3, "See you then")
        ]
    );
    // And the new connection hears what comes next.
    reply(&live, &p, &id, "Bye").await;
    assert_eq!(next_frame(&mut socket).await["seq"], json!(last_seen + 4));
}

async fn a_connection_that_is_gone_is_deleted_and_nothing_answers_5xx(t: TestStore) {
    let live = LiveServer::start(&t).await;
    let (p, _, _) = practice(&live).await;
    let id = app_message(&live, &p, "owner-ada", "Hello").await;
    // A connection record whose socket is gone (a process that died, a dropped network).
    let stale = Connection {
        id: ConnectionId("conn_stale".into()),
        subscriber: Subscriber {
            practice_id: PracticeId::from(p.as_str()),
            sub: "staff-old".into(),
            role: Role::Staff,
            department_id: None,
        },
        connected_at: adapters::now(),
        expires_at: adapters::now() + chrono::Duration::hours(2),
    };
    live.store.put_connection(&stale).await.expect("put");
    let mut desk = live.connect(&p, Role::Staff, "staff-desk", None).await;
    let sent = reply(&live, &p, &id, "Still there?").await;
    assert_eq!(
        next_frame(&mut desk).await["message"]["id"],
        sent["id"],
        "the live one still hears"
    );
    // The fanout deleted exactly the stale one (checked until the wait runs out).
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    loop {
        let ids: Vec<String> = live
            .store
            .practice_connections(&PracticeId::from(p.as_str()))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id.0)
            .collect();
        if !ids.contains(&"conn_stale".to_owned()) {
            assert_eq!(ids.len(), 1, "the live connection stays: {ids:?}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stale connection was never deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(live.sockets.open_count(), 1);
}

async fn staff_hear_what_became_of_a_text_reply_and_the_owner_hears_nothing_of_it(t: TestStore) {
    let live = LiveServer::start(&t).await;
    let api = &live.api;
    let p = vetchat_tests::api::Api::practice_id();
    let id = api
        .texted_conversation(&p, "+12015550100", "+12015550111")
        .await;
    // The owner also chats in the app: its connection must hear nothing of the text's delivery.
    let app = app_message(&live, &p, "owner-ada", "Hello from the app").await;
    let mut owner = live.connect(&p, Role::Client, "owner-ada", None).await;
    let mut desk = live.connect(&p, Role::Staff, "staff-desk", None).await;

    let sent = reply(&live, &p, &id, "Rex is ready at 5").await;
    assert_eq!(sent["delivery"]["status"], "queued");
    // The local sender takes it: staff hear it move to sent.
    let frames = frames_until(&mut desk, |f| {
        f["type"] == "message.delivery" && f["delivery"]["status"] == "sent"
    })
    .await;
    let last = frames.last().unwrap();
    assert_eq!(
        (&last["conversation_id"], &last["message_id"]),
        (&json!(id), &sent["id"])
    );
    // The provider confirms it: one more frame, delivered.
    let r = api
        .raw(
            Method::POST,
            "/_local/delivery",
            &[],
            Some(json!({"message_id": sent["id"], "status": "delivered"}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let frame = frames_until(&mut desk, |f| f["type"] == "message.delivery").await;
    assert_eq!(frame.last().unwrap()["delivery"]["status"], "delivered");
    assert_eq!(
        frame.last().unwrap()["delivery"],
        r.body["delivery"],
        "the frame carries the delivery the message now has"
    );

    // The owner's connection heard only its app conversation: a reply there is the next frame it gets.
    reply(&live, &p, &app, "Hi Ada").await;
    let frames = frames_until(&mut owner, is_message("Hi Ada")).await;
    assert!(
        frames.iter().all(|f| f["type"] == "message.created"),
        "{frames:?}"
    );
}
