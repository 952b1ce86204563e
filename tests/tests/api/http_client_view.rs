//! The client's own view and `seq` over HTTP, on every store (API.md "The client's own view", "Conversations"):
//! a pet owner lists and reads its own app and web conversations, as the client sees them (the department's
//! name, never a staff id, a transfer note or an alert recipient; a transfer is a system message); pages by
//! `seq`; another client's, another practice's or a texted conversation is 404; staff read pages by `seq`;
//! 32 writers at once into one conversation (client messages, staff replies, transfers) leave seqs 1..n.

use std::sync::Arc;

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{always_open, Api, Reply};

vetchat_tests::on_every_store!(
    a_client_reads_its_conversation_as_the_client_sees_it,
    pages_walk_the_messages_by_seq,
    another_clients_practices_or_texted_conversation_is_not_found,
    staff_read_pages_by_seq_and_refuse_bad_ranges,
    thirty_two_writers_at_once_leave_seqs_one_to_n,
);

const OWNER: &str = "owner-ada";
const STAFF: &str = "staff-jane-7731";
const NOTE: &str = "private: owner was rude on the phone";
const DESK: &str = "desk-4417@happypaws.example";

/// A practice whose default department greets, is open around the clock and alerts `DESK`; and Grooming.
async fn practice(api: &Api) -> (String, String, String) {
    let p = Api::practice_id();
    let team = api.setup_practice(&p).await;
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &format!("/departments/{team}"),
            Some(
                json!({"hours": always_open(), "chat": {"greeting": "Hi! How can we help?"},
                        "alerts": {"enabled": true, "emails": DESK}}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let grooming = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open(),
                   "alerts": {"enabled": true, "emails": DESK}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, team, grooming)
}

async fn client(
    api: &Api,
    p: &str,
    sub: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    api.call_as(p, Role::Client, sub, method, path, body).await
}

async fn staff(api: &Api, p: &str, method: Method, path: &str, body: Option<Value>) -> Reply {
    api.call_as(p, Role::Staff, STAFF, method, path, body).await
}

/// The owner's app conversation: its message and the greeting (1, 2), a staff reply (3), a transfer to
/// Grooming with a note (4), a reply from Grooming (5).
async fn conversation(api: &Api, p: &str, grooming: &str) -> String {
    let r = client(
        api,
        p,
        OWNER,
        Method::POST,
        "/inbound",
        Some(json!({"channel": "app", "body": "Can Rex get a bath?"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();
    let path = format!("/conversations/{id}/messages");
    let r = staff(
        api,
        p,
        Method::POST,
        &path,
        Some(json!({"body": "Let me ask the groomers"})),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["seq"]),
        (StatusCode::CREATED, &json!(3)),
        "{}",
        r.body
    );
    let r = staff(
        api,
        p,
        Method::POST,
        &format!("/conversations/{id}/transfer"),
        Some(json!({"department_id": grooming, "note": NOTE})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = staff(
        api,
        p,
        Method::POST,
        &path,
        Some(json!({"body": "Tuesday at 10?"})),
    )
    .await;
    assert_eq!(
        (r.status, &r.body["seq"]),
        (StatusCode::CREATED, &json!(5)),
        "{}",
        r.body
    );
    id
}

fn seqs(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect()
}

async fn a_client_reads_its_conversation_as_the_client_sees_it(api: Api) {
    let (p, team, grooming) = practice(&api).await;
    let id = conversation(&api, &p, &grooming).await;

    let list = client(&api, &p, OWNER, Method::GET, "/client/conversations", None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let listed = &list.body["conversations"][0];
    assert_eq!(list.body["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(
        listed["department"],
        json!({"id": grooming, "name": "Grooming"})
    );
    assert_eq!(
        (&listed["status"], &listed["last_seq"]),
        (&json!("open"), &json!(5))
    );

    let r = client(
        &api,
        &p,
        OWNER,
        Method::GET,
        &format!("/client/conversations/{id}/messages"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let messages = r.body["messages"].as_array().unwrap();
    let seen: Vec<(u64, &str, &str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["seq"].as_u64().unwrap(),
                m["author"]["kind"].as_str().unwrap(),
                m["author"]["department_name"].as_str().unwrap(),
                m["body"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "client", "Happy Paws Team", "Can Rex get a bath?"),
            (2, "auto", "Happy Paws Team", "Hi! How can we help?"),
            (3, "staff", "Happy Paws Team", "Let me ask the groomers"),
            (
                4,
                "system",
                "Grooming",
                "You are now chatting with Grooming"
            ),
            (5, "staff", "Grooming", "Tuesday at 10?"),
        ]
    );
    assert_eq!(r.body["next_after"], Value::Null);
    for m in messages {
        let keys: Vec<&str> = m.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "seq", "at", "author", "body"], "{m}");
    }
    // Never a staff id, a transfer note, an alert recipient, the department ids' internals.
    let text = format!("{}{}", r.body, list.body);
    for secret in [STAFF, NOTE, DESK, team.as_str()] {
        assert!(
            !text.contains(secret),
            "the client's view carries {secret:?}: {text}"
        );
    }
    // Staff see the same seqs, with who wrote what.
    let d = staff(&api, &p, Method::GET, &format!("/conversations/{id}"), None).await;
    assert_eq!(seqs(&d.body["messages"]), [1, 2, 3, 4, 5]);
    assert_eq!(
        d.body["messages"][2]["author"],
        json!({"kind": "staff", "id": STAFF})
    );
    assert_eq!(d.body["messages"][3]["author"], json!({"kind": "system"}));
    assert_eq!(d.body["transfers"][0]["note"], NOTE);
    assert_eq!(
        (&d.body["last_seq"], &d.body["next_after"]),
        (&json!(5), &Value::Null)
    );

    // Ended, it stays in the list, resolved.
    let r = staff(
        &api,
        &p,
        Method::POST,
        &format!("/conversations/{id}/end"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let list = client(&api, &p, OWNER, Method::GET, "/client/conversations", None).await;
    assert_eq!(list.body["conversations"][0]["status"], "resolved");
    // Staff of another role may not use the client's view; the client may not use the staff's.
    let r = staff(&api, &p, Method::GET, "/client/conversations", None).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
    let r = client(
        &api,
        &p,
        OWNER,
        Method::GET,
        &format!("/conversations/{id}"),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"));
}

async fn pages_walk_the_messages_by_seq(api: Api) {
    let (p, _, grooming) = practice(&api).await;
    let id = conversation(&api, &p, &grooming).await;
    let page = |query: &'static str| {
        let (api, p, id) = (&api, p.clone(), id.clone());
        async move {
            let r = client(
                api,
                &p,
                OWNER,
                Method::GET,
                &format!("/client/conversations/{id}/messages{query}"),
                None,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            (seqs(&r.body["messages"]), r.body["next_after"].clone())
        }
    };
    assert_eq!(page("?limit=2").await, (vec![1, 2], json!(2)));
    assert_eq!(page("?after=2&limit=2").await, (vec![3, 4], json!(4)));
    assert_eq!(page("?after=4&limit=2").await, (vec![5], Value::Null));
    assert_eq!(page("?after=5").await, (vec![], Value::Null));
    assert_eq!(page("?after=99").await, (vec![], Value::Null));
    assert_eq!(page("?after=3&limit=200").await, (vec![4, 5], Value::Null));
    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=ten", "limit"),
        ("?after=-1", "after"),
        ("?after=x", "after"),
    ] {
        let r = client(
            &api,
            &p,
            OWNER,
            Method::GET,
            &format!("/client/conversations/{id}/messages{query}"),
            None,
        )
        .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", field),
            "{query}"
        );
    }
}

async fn another_clients_practices_or_texted_conversation_is_not_found(api: Api) {
    let (p, _, grooming) = practice(&api).await;
    let id = conversation(&api, &p, &grooming).await;
    let read = |practice: String, sub: &'static str, query: &'static str| {
        let (api, id) = (&api, id.clone());
        async move {
            client(
                api,
                &practice,
                sub,
                Method::GET,
                &format!("/client/conversations/{id}/messages{query}"),
                None,
            )
            .await
        }
    };
    // Another client of the practice, even asking after the last seq (nothing to read but the owner).
    for query in ["", "?after=5", "?after=1000"] {
        let r = read(p.clone(), "owner-bob", query).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{query}: {}",
            r.body
        );
    }
    // The same user id in another practice.
    let (other, _, _) = practice(&api).await;
    let r = read(other.clone(), OWNER, "?after=5").await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = client(
        &api,
        &other,
        OWNER,
        Method::GET,
        "/client/conversations",
        None,
    )
    .await;
    assert_eq!(r.body, json!({"conversations": []}));
    // A conversation that does not exist, and an id that cannot.
    let r = client(
        &api,
        &p,
        OWNER,
        Method::GET,
        "/client/conversations/cnv_nope/messages",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let long = "x".repeat(300);
    let r = client(
        &api,
        &p,
        OWNER,
        Method::GET,
        &format!("/client/conversations/{long}/messages"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A texted conversation is not in the app view, even for a client whose user id is that number.
    let number = "+12015550177";
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": number, "body": "Rex ok?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let texted = r.body["conversation_id"].as_str().unwrap().to_owned();
    let r = client(
        &api,
        &p,
        number,
        Method::GET,
        &format!("/client/conversations/{texted}/messages"),
        None,
    )
    .await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "not_found"));
    let r = client(&api, &p, number, Method::GET, "/client/conversations", None).await;
    assert_eq!(r.body, json!({"conversations": []}));
    // A web conversation is.
    let r = client(
        &api,
        &p,
        "owner-web",
        Method::POST,
        "/inbound",
        Some(json!({"channel": "web", "body": "Hello from the site"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = client(
        &api,
        &p,
        "owner-web",
        Method::GET,
        "/client/conversations",
        None,
    )
    .await;
    assert_eq!(r.body["conversations"].as_array().unwrap().len(), 1);
}

async fn staff_read_pages_by_seq_and_refuse_bad_ranges(api: Api) {
    let (p, _, grooming) = practice(&api).await;
    let id = conversation(&api, &p, &grooming).await;
    let r = staff(
        &api,
        &p,
        Method::GET,
        &format!("/conversations/{id}?after=1&limit=2"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (seqs(&r.body["messages"]), &r.body["next_after"]),
        (vec![2, 3], &json!(3))
    );
    assert_eq!(
        r.body["transfers"].as_array().unwrap().len(),
        1,
        "transfers on every page"
    );
    let r = staff(
        &api,
        &p,
        Method::GET,
        &format!("/conversations/{id}?after=3"),
        None,
    )
    .await;
    assert_eq!(
        (seqs(&r.body["messages"]), &r.body["next_after"]),
        (vec![4, 5], &Value::Null)
    );
    let r = staff(
        &api,
        &p,
        Method::GET,
        &format!("/conversations/{id}?limit=0"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "limit")
    );
    let r = staff(
        &api,
        &p,
        Method::GET,
        &format!("/conversations/{id}?after=-2"),
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "after")
    );
}

/// 32 requests at once into one app conversation (16 client messages, 12 staff replies, 4 transfers to
/// four departments), and 32 into one texted one (16 texts, 16 replies): every message gets a seq, and the
/// seqs are 1..n exactly, each answered request's message once.
async fn thirty_two_writers_at_once_leave_seqs_one_to_n(api: Api) {
    let api = Arc::new(api);
    let (p, _, _) = practice(&api).await;
    let mut targets = Vec::new();
    for i in 0..4 {
        let d = api
            .add_department(
                &p,
                json!({"name": format!("Desk {i}"), "hours": always_open()}),
            )
            .await;
        targets.push(d["id"].as_str().unwrap().to_owned());
    }
    let r = client(
        &api,
        &p,
        OWNER,
        Method::POST,
        "/inbound",
        Some(json!({"channel": "app", "body": "first"})),
    )
    .await;
    let app = r.body["conversation_id"].as_str().unwrap().to_owned();
    let number = "+12015550188";
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": number, "body": "text 0"})),
        )
        .await;
    let texted = r.body["conversation_id"].as_str().unwrap().to_owned();

    let mut writers = Vec::new();
    for i in 0..32 {
        let (api, p, app, texted, targets) = (
            api.clone(),
            p.clone(),
            app.clone(),
            texted.clone(),
            targets.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            // Into the app conversation.
            answers.push(match i % 8 {
                0..=3 => client(&api, &p, OWNER, Method::POST, "/inbound", Some(json!({"channel": "app", "body": format!("client {i}")}))).await,
                4..=6 => staff(&api, &p, Method::POST, &format!("/conversations/{app}/messages"), Some(json!({"body": format!("staff {i}")}))).await,
                _ => staff(&api, &p, Method::POST, &format!("/conversations/{app}/transfer"), Some(json!({"department_id": targets[i / 8]}))).await,
            });
            // Into the texted one.
            answers.push(if i % 2 == 0 {
                api.call(&p, Role::Integration, Method::POST, "/inbound", Some(json!({"channel": "sms", "from": "+12015550188", "body": format!("text {}", i + 1)}))).await
            } else {
                staff(&api, &p, Method::POST, &format!("/conversations/{texted}/messages"), Some(json!({"body": format!("reply {i}")}))).await
            });
            answers
        }));
    }
    for w in writers {
        for r in w.await.unwrap() {
            assert!(r.status.is_success(), "{} {}", r.status, r.body);
        }
    }
    for (id, n, kinds) in [
        (
            &app,
            2 + 32,
            ["client", "auto", "staff", "system"].as_slice(),
        ),
        (&texted, 1 + 32, ["client", "staff"].as_slice()),
    ] {
        let d = staff(
            &api,
            &p,
            Method::GET,
            &format!("/conversations/{id}?limit=200"),
            None,
        )
        .await;
        let got = seqs(&d.body["messages"]);
        assert_eq!(
            got,
            (1..=n as u64).collect::<Vec<_>>(),
            "{id}: seqs 1..{n}, no gap, no repeat"
        );
        assert_eq!(d.body["last_seq"], json!(n));
        let bodies: std::collections::BTreeSet<&str> = d.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["body"].as_str().unwrap())
            .collect();
        assert_eq!(bodies.len(), n, "{id}: each message once");
        for m in d.body["messages"].as_array().unwrap() {
            assert!(
                kinds.contains(&m["author"]["kind"].as_str().unwrap()),
                "{m}"
            );
        }
    }
}
