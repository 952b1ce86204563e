//! The HTTP contract of inbound messages and conversations (docs/api.md), on both stores. Handlers read the wall
//! clock, so "open" departments here are open around the clock and "closed" ones have no hours at all.

use std::sync::Arc;

use domain::department::DEFAULT_AFTER_HOURS_MESSAGE as AFTER_HOURS_TEXT;
use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{always_open, Api, Reply};

vetchat_tests::on_every_store!(
    texts_start_in_the_default_department_and_join_the_open_conversation,
    app_chat_gets_the_greeting_web_chat_does_not,
    closed_and_offline_departments_refuse_new_app_chats,
    after_hours_messages_are_left_when_allowed,
    hidden_departments_cannot_be_chosen_by_app_users,
    an_open_conversation_takes_every_message_whatever_the_department_says,
    channels_need_their_roles,
    staff_start_reply_and_end_conversations,
    a_department_with_open_conversations_cannot_be_deleted,
    conversations_are_listed_newest_first_with_filters_and_pages,
    another_practice_cannot_see_conversations,
    texts_arriving_at_once_make_one_conversation,
    inbound_texts_through_sns_are_routed_once,
    a_retried_message_with_its_idempotency_key_is_stored_once,
    an_app_chat_between_two_windows_follows_the_after_hours_rules,
    accepts_messages_now_says_what_inbound_does,
    a_client_faster_than_a_person_is_answered_429_and_nothing_is_stored,
);

fn never_open() -> Value {
    json!({"mon": null, "tue": null, "wed": null, "thu": null, "fri": null, "sat": null, "sun": null})
}

async fn text(api: &Api, p: &str, from: &str, body: &str) -> Reply {
    api.call(
        p,
        Role::Integration,
        Method::POST,
        "/inbound",
        Some(json!({"channel": "sms", "from": from, "body": body})),
    )
    .await
}

async fn app(api: &Api, p: &str, client: &str, department: Option<&str>, body: &str) -> Reply {
    let mut msg = json!({"channel": "app", "body": body});
    if let Some(d) = department {
        msg["department_id"] = json!(d);
    }
    let auth = format!("Bearer {}", Api::token_as(p, Role::Client, client));
    api.raw(
        Method::POST,
        "/inbound",
        &[("authorization", &auth)],
        Some(msg.to_string()),
    )
    .await
}

async fn department(api: &Api, p: &str, id: &str) -> Value {
    api.admin(p, Method::GET, &format!("/departments/{id}"), None)
        .await
        .body
}

async fn detail(api: &Api, p: &str, id: &str) -> Value {
    let r = api
        .call(
            p,
            Role::Staff,
            Method::GET,
            &format!("/conversations/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn texts_start_in_the_default_department_and_join_the_open_conversation(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    // Texts are taken even when the default department is closed and switched off.
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"hours": never_open(), "online": false})),
    )
    .await;
    let grooming = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open()}),
        )
        .await;

    let msg = json!({"channel": "sms", "from": "+1 201 555 0111", "body": "Is Rex ready?", "department_id": grooming["id"]});
    let first = api
        .call(&p, Role::Integration, Method::POST, "/inbound", Some(msg))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(
        first.body["department_id"],
        default_id.as_str(),
        "texts always start in the default department"
    );
    assert_eq!(first.body["new_conversation"], true);
    assert_eq!(first.body["outcome"], "after_hours_message_left");
    // Closed: the after-hours message goes back as a text (docs/api.md "After hours, by text").
    assert_eq!(
        first.body["auto_replies"],
        json!([{"kind": "after_hours", "text": AFTER_HOURS_TEXT}])
    );
    let id = first.body["conversation_id"].as_str().unwrap().to_owned();

    let second = text(&api, &p, "+12015550111", "Hello?").await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.body["conversation_id"], id.as_str());
    assert_eq!(second.body["new_conversation"], false);
    // Still the same closed period: no second after-hours text.
    assert_eq!(second.body["auto_replies"], json!([]));

    let d = detail(&api, &p, &id).await;
    assert_eq!(d["client_id"], "+12015550111");
    assert_eq!(d["channel"], "sms");
    assert_eq!(d["status"], "open");
    let bodies: Vec<&str> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Is Rex ready?", AFTER_HOURS_TEXT, "Hello?"]);
    assert_eq!(
        department(&api, &p, &default_id).await["open_conversations"],
        1
    );

    let whatsapp = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "whatsapp", "from": "+447911123456", "body": "Hi"})),
        )
        .await;
    assert_eq!(whatsapp.status, StatusCode::CREATED);
    assert_eq!(whatsapp.body["department_id"], default_id.as_str());
    // A gateway's number is checked by its shape and country code: no unassigned code, no local format.
    for not_e164 in ["not a number", "2015550111", "+99912345678", "+1201"] {
        let bad = text(&api, &p, not_e164, "x").await;
        assert_eq!(
            (bad.status, bad.code(), bad.body["error"]["field"].as_str()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_phone",
                Some("from")
            ),
            "{not_e164}"
        );
    }
    let empty = text(&api, &p, "+12015550112", "   ").await;
    assert_eq!(
        (empty.status, empty.code(), empty.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "body")
    );
}

async fn app_chat_gets_the_greeting_web_chat_does_not(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open(),
                                    "chat": {"greeting": "Hi! How can we help?"}}),
        )
        .await;
    let id = d["id"].as_str().unwrap();
    let r = app(&api, &p, "owner-1", Some(id), "Can I book a bath?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["outcome"], "delivered");
    assert_eq!(
        r.body["auto_replies"],
        json!([{"kind": "greeting", "text": "Hi! How can we help?"}])
    );
    let conv = detail(&api, &p, r.body["conversation_id"].as_str().unwrap()).await;
    let msgs = conv["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["body"], "Can I book a bath?");
    assert_eq!(
        msgs[0]["author"],
        json!({"kind": "client", "id": "owner-1"})
    );
    assert_eq!(msgs[1]["body"], "Hi! How can we help?");
    assert_eq!(msgs[1]["author"]["kind"], "auto");

    // A later message in the same conversation gets no second greeting.
    let again = app(&api, &p, "owner-1", Some(id), "Tomorrow?").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["auto_replies"], json!([]));

    let auth = format!("Bearer {}", Api::token_as(&p, Role::Client, "web-visitor"));
    let web = api
        .raw(
            Method::POST,
            "/inbound",
            &[("authorization", &auth)],
            Some(json!({"channel": "web", "department_id": id, "body": "Hi"}).to_string()),
        )
        .await;
    assert_eq!(web.status, StatusCode::CREATED);
    assert_eq!(web.body["auto_replies"], json!([]));
}

async fn closed_and_offline_departments_refuse_new_app_chats(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let closed = api
        .add_department(&p, json!({"name": "Boarding", "visible_in_app": true, "hours": never_open(),
                                   "chat": {"allow_messages_after_hours": false, "after_hours_message": "Closed today."}}))
        .await;
    let r = app(&api, &p, "owner-1", closed["id"].as_str(), "Hello").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "after_hours"));
    assert_eq!(r.body["error"]["after_hours_message"], "Closed today.");
    assert_eq!(r.body["error"]["opens_at"], Value::Null, "never opens");

    let offline = api
        .add_department(&p, json!({"name": "Grooming", "visible_in_app": true, "hours": always_open(), "online": false}))
        .await;
    let r = app(&api, &p, "owner-1", offline["id"].as_str(), "Hello").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "offline"));
    assert!(r.body["error"]["after_hours_message"].is_string());

    let list = api
        .call(&p, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(
        list.body["conversations"],
        json!([]),
        "refusals store nothing"
    );
    assert_eq!(
        department(&api, &p, closed["id"].as_str().unwrap()).await["open_conversations"],
        0
    );
}

async fn after_hours_messages_are_left_when_allowed(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api
        .add_department(&p, json!({"name": "Boarding", "visible_in_app": true, "hours": never_open(),
                                   "date_overrides": [{"start_date": "2030-01-07", "end_date": "2030-01-07", "kind": "working"}],
                                   "chat": {"greeting": "Hi!", "allow_messages_after_hours": true, "after_hours_message": "We will answer when we open."}}))
        .await;
    let r = app(&api, &p, "owner-2", d["id"].as_str(), "Can Rex stay over?").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["outcome"], "after_hours_message_left");
    assert_eq!(
        r.body["auto_replies"],
        json!([{"kind": "greeting", "text": "Hi!"}, {"kind": "after_hours", "text": "We will answer when we open."}])
    );
}

async fn hidden_departments_cannot_be_chosen_by_app_users(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let vet = api
        .add_department(
            &p,
            json!({"name": "Telehealth Vet", "visible_in_app": false, "hours": always_open()}),
        )
        .await;
    let r = app(&api, &p, "owner-1", vet["id"].as_str(), "Hi doc").await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "department_not_visible",
            "department_id"
        )
    );
    let r = app(&api, &p, "owner-1", Some("dep_nope"), "Hi").await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "department_not_visible")
    );
    // Without a department, the default one (always visible).
    let default_id =
        api.admin(&p, Method::GET, "/practice", None).await.body["default_department_id"].clone();
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{}", default_id.as_str().unwrap()),
        Some(json!({"hours": always_open()})),
    )
    .await;
    let r = app(&api, &p, "owner-1", None, "Hi").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["department_id"], default_id);
}

async fn an_open_conversation_takes_every_message_whatever_the_department_says(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let grooming = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open()}),
        )
        .await;
    let boarding = api
        .add_department(
            &p,
            json!({"name": "Boarding", "visible_in_app": true, "hours": never_open(),
                                                 "chat": {"allow_messages_after_hours": false}}),
        )
        .await;
    let gid = grooming["id"].as_str().unwrap();
    let first = app(&api, &p, "owner-3", Some(gid), "Hi").await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Grooming goes offline, and the client names the closed Boarding: the message still joins.
    api.call(
        &p,
        Role::Staff,
        Method::PUT,
        &format!("/departments/{gid}/online"),
        Some(json!({"online": false})),
    )
    .await;
    let r = app(&api, &p, "owner-3", boarding["id"].as_str(), "Still there?").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["conversation_id"], first.body["conversation_id"]);
    assert_eq!(r.body["department_id"], gid);
}

async fn channels_need_their_roles(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let r = api
        .call(
            &p,
            Role::Client,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": "+12015550111", "body": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "app", "body": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "web", "body": "x"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    for (method, path) in [
        (Method::GET, "/conversations"),
        (Method::GET, "/conversations/cnv_x"),
        (Method::POST, "/conversations/cnv_x/end"),
    ] {
        let r = api.call(&p, Role::Client, method.clone(), path, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
    }
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "fax", "body": "x"})),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::BAD_REQUEST, "malformed_request")
    );
    let r = api
        .raw(
            Method::POST,
            "/inbound",
            &[],
            Some(json!({"channel": "app", "body": "x"}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

async fn staff_start_reply_and_end_conversations(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    // The telehealth vet is hidden and has no hours: staff can still start a chat there at any time.
    let vet = api
        .add_department(&p, json!({"name": "Telehealth Vet", "hours": never_open()}))
        .await;
    let vid = vet["id"].as_str().unwrap();
    let r = api
        .call(&p, Role::Staff, Method::POST, "/conversations", Some(json!({"department_id": vid, "client_id": "owner-9", "body": "Your consult is ready"})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "open");
    assert_eq!(r.body["department_id"], vid);
    assert_eq!(r.body["channel"], "app");
    let id = r.body["id"].as_str().unwrap().to_owned();

    let dup = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": vid, "client_id": "owner-9", "body": "again"})),
        )
        .await;
    assert_eq!(
        (dup.status, dup.code()),
        (StatusCode::CONFLICT, "client_has_open_conversation")
    );
    assert_eq!(dup.body["error"]["conversation_id"], id.as_str());

    // A number staff type is checked in full by the phone-number library (here: no such US area code).
    let typo = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": vid, "client_id": "+10005550111", "channel": "sms", "body": "hi"})),
        )
        .await;
    assert_eq!(
        (
            typo.status,
            typo.code(),
            typo.body["error"]["field"].as_str()
        ),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_phone",
            Some("client_id")
        )
    );

    // The client's answer joins it.
    let answer = app(&api, &p, "owner-9", None, "Thanks!").await;
    assert_eq!(answer.body["conversation_id"], id.as_str());

    let reply = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": "Let's start."})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        reply.body["author"],
        json!({"kind": "staff", "id": "staff-1"})
    );
    let d = detail(&api, &p, &id).await;
    let bodies: Vec<&str> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["Your consult is ready", "Thanks!", "Let's start."]);
    assert_eq!(d["transfers"], json!([]));
    assert_eq!(department(&api, &p, vid).await["open_conversations"], 1);

    let end = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/end"),
            None,
        )
        .await;
    assert_eq!(end.status, StatusCode::OK);
    assert_eq!(end.body["status"], "resolved");
    assert!(end.body["resolved_at"].is_string());
    let again = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/end"),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "ending twice is not an error");
    assert_eq!(again.body["resolved_at"], end.body["resolved_at"]);
    assert_eq!(department(&api, &p, vid).await["open_conversations"], 0);

    let late = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": "one more"})),
        )
        .await;
    assert_eq!(
        (late.status, late.code()),
        (StatusCode::CONFLICT, "conversation_resolved")
    );

    // After the end, the client's next message starts a new conversation (in the default department).
    let next = app(&api, &p, "owner-9", None, "Me again").await;
    assert_ne!(next.body["conversation_id"], id.as_str());
    assert_eq!(next.body["new_conversation"], true);
}

async fn a_department_with_open_conversations_cannot_be_deleted(api: Api) {
    let p = Api::practice_id();
    api.setup_practice(&p).await;
    let d = api.add_department(&p, json!({"name": "Grooming"})).await;
    let did = d["id"].as_str().unwrap();
    let c = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": did, "client_id": "owner-1", "body": "Hi"})),
        )
        .await;
    let r = api
        .admin(&p, Method::DELETE, &format!("/departments/{did}"), None)
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "department_has_open_conversations")
    );
    assert_eq!(
        department(&api, &p, did).await["name"],
        "Grooming",
        "still there"
    );
    api.call(
        &p,
        Role::Staff,
        Method::POST,
        &format!("/conversations/{}/end", c.body["id"].as_str().unwrap()),
        None,
    )
    .await;
    let r = api
        .admin(&p, Method::DELETE, &format!("/departments/{did}"), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

async fn conversations_are_listed_newest_first_with_filters_and_pages(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    let vet = api.add_department(&p, json!({"name": "Vet"})).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let dep = if i % 2 == 0 {
            default_id.clone()
        } else {
            vet["id"].as_str().unwrap().to_owned()
        };
        let r = api
            .call(
                &p,
                Role::Staff,
                Method::POST,
                "/conversations",
                Some(
                    json!({"department_id": dep, "client_id": format!("owner-{i}"), "body": "Hi"}),
                ),
            )
            .await;
        ids.push(r.body["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    // The oldest gets new activity: it moves to the top.
    api.call(
        &p,
        Role::Staff,
        Method::POST,
        &format!("/conversations/{}/messages", ids[0]),
        Some(json!({"body": "news"})),
    )
    .await;
    api.call(
        &p,
        Role::Staff,
        Method::POST,
        &format!("/conversations/{}/end", ids[4]),
        None,
    )
    .await;

    let list = |q: &'static str| {
        let (api, p) = (&api, &p);
        async move {
            api.call(
                p,
                Role::Staff,
                Method::GET,
                &format!("/conversations{q}"),
                None,
            )
            .await
        }
    };
    let ids_of = |r: &Reply| -> Vec<String> {
        r.body["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = list("").await;
    assert_eq!(
        ids_of(&all),
        [&ids[0], &ids[4], &ids[3], &ids[2], &ids[1]].map(String::clone)
    );
    assert_eq!(all.body["next_cursor"], Value::Null);
    let open = list("?status=open").await;
    assert_eq!(
        ids_of(&open),
        [&ids[0], &ids[3], &ids[2], &ids[1]].map(String::clone)
    );
    let resolved = list("?status=resolved").await;
    assert_eq!(ids_of(&resolved), [ids[4].clone()]);
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::GET,
            &format!(
                "/conversations?status=open&department_id={}",
                vet["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(ids_of(&r), [&ids[3], &ids[1]].map(String::clone));

    // Pages of two walk every conversation once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("/conversations?limit=2&cursor={c}"),
            None => "/conversations?limit=2".to_owned(),
        };
        let page = api.call(&p, Role::Staff, Method::GET, &q, None).await;
        assert_eq!(page.status, StatusCode::OK, "{:?}", page.body);
        seen.extend(ids_of(&page));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ids_of(&all));

    for (q, field) in [
        ("?status=closed", "status"),
        ("?limit=0", "limit"),
        ("?cursor=garbage", "cursor"),
    ] {
        let r = api
            .call(
                &p,
                Role::Staff,
                Method::GET,
                &format!("/conversations{q}"),
                None,
            )
            .await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", field),
            "{q}"
        );
    }
}

async fn another_practice_cannot_see_conversations(api: Api) {
    let a = Api::practice_id();
    let b = Api::practice_id();
    // Open around the clock: the texts get no after-hours text, whenever the test runs.
    api.setup_open_practice(&a).await;
    api.setup_open_practice(&b).await;
    let r = text(&api, &a, "+12015550177", "A's secret").await;
    let id = r.body["conversation_id"].as_str().unwrap();
    for (method, path, body) in [
        (Method::GET, format!("/conversations/{id}"), None),
        (
            Method::POST,
            format!("/conversations/{id}/messages"),
            Some(json!({"body": "hi"})),
        ),
        (Method::POST, format!("/conversations/{id}/end"), None),
    ] {
        let r = api.call(&b, Role::Staff, method.clone(), &path, body).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{method} {path}"
        );
    }
    let list = api
        .call(&b, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(list.body["conversations"], json!([]));
    // The same number texting B starts B's own conversation.
    let rb = text(&api, &b, "+12015550177", "B's").await;
    assert_eq!(rb.status, StatusCode::CREATED);
    assert_ne!(rb.body["conversation_id"], id);
    let d = detail(&api, &a, id).await;
    assert_eq!(d["messages"].as_array().unwrap().len(), 1);
    assert_eq!(d["status"], "open");
}

async fn texts_arriving_at_once_make_one_conversation(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    // Closed: 32 texts at once in one closed period get one after-hours text between them (Chatwoot #3042).
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"hours": never_open()})),
    )
    .await;
    let api = Arc::new(api);
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (api, p, barrier) = (api.clone(), p.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            text(&api, &p, "+12015550199", &format!("message {i}")).await
        }));
    }
    let mut conversations = std::collections::BTreeSet::new();
    let mut created = 0;
    let mut after_hours_answers = 0;
    for t in tasks {
        let r = t.await.unwrap();
        after_hours_answers += r.body["auto_replies"].as_array().unwrap().len();
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "{:?}",
            r.body
        );
        created += usize::from(r.status == StatusCode::CREATED);
        conversations.insert(r.body["conversation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(conversations.len(), 1, "one conversation");
    assert_eq!(
        created, 1,
        "exactly one answer says it started the conversation"
    );
    let id = conversations.into_iter().next().unwrap();
    let d = detail(&api, &p, &id).await;
    let mut bodies: Vec<String> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect();
    bodies.sort();
    let mut expected: Vec<String> = (0..32).map(|i| format!("message {i}")).collect();
    expected.push(AFTER_HOURS_TEXT.to_owned());
    expected.sort();
    assert_eq!(
        bodies, expected,
        "all 32 messages kept, none twice, and one after-hours text"
    );
    assert_eq!(
        after_hours_answers, 1,
        "one answer lists the after-hours text"
    );
    assert_eq!(
        department(&api, &p, &default_id).await["open_conversations"],
        1
    );
}

async fn inbound_texts_through_sns_are_routed_once(api: Api) {
    let p = Api::practice_id();
    let r = api
        .admin(&p, Method::PUT, "/practice", Some(json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US", "sms_numbers": ["+12015550100"]})))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    // Open around the clock: the text gets no after-hours text, whenever the test runs.
    let default_id = r.body["default_department_id"].as_str().unwrap();
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"hours": always_open()})),
    )
    .await;
    let notification = json!({"originationNumber": "+12015550142", "destinationNumber": "+12015550100",
                               "messageBody": "Is the clinic open Saturday?", "inboundMessageId": format!("in-{p}")})
    .to_string();
    let ids = adapters::UlidIds;
    let first =
        inbound_router::sms::handle_text(&*api.store, &notification, chrono::Utc::now(), &ids)
            .await
            .unwrap();
    let inbound_router::sms::TextOutcome::Routed(routed) = first else {
        panic!("not routed: {first:?}")
    };
    assert!(routed.new_conversation);
    // SNS delivers again: nothing is stored twice.
    let again =
        inbound_router::sms::handle_text(&*api.store, &notification, chrono::Utc::now(), &ids)
            .await
            .unwrap();
    let inbound_router::sms::TextOutcome::Routed(replayed) = again else {
        panic!("not routed: {again:?}")
    };
    assert_eq!(replayed.conversation_id, routed.conversation_id);
    let d = detail(&api, &p, routed.conversation_id.as_ref().unwrap().as_str()).await;
    assert_eq!(d["messages"].as_array().unwrap().len(), 1);
    assert_eq!(d["client_id"], "+12015550142");
    // A text to a number no practice owns is dropped without an error.
    let stray = notification.replace("+12015550100", "+12015550999");
    let out = inbound_router::sms::handle_text(&*api.store, &stray, chrono::Utc::now(), &ids)
        .await
        .unwrap();
    assert!(
        matches!(out, inbound_router::sms::TextOutcome::UnknownDestination(_)),
        "{out:?}"
    );
}

/// A client or gateway that resends after a lost answer (or a 503) with the same `Idempotency-Key` does not
/// store the message twice; another key, or another caller's same key, is another message.
async fn a_retried_message_with_its_idempotency_key_is_stored_once(api: Api) {
    let p = Api::practice_id();
    api.setup_open_practice(&p).await;
    let token = |role: Role, sub: &str| format!("Bearer {}", Api::token_as(&p, role, sub));
    let owner = token(Role::Client, "owner-7");
    let send = |auth: String, key: &'static str, body: &'static str| {
        let api = &api;
        async move {
            let msg = json!({"channel": "app", "body": body}).to_string();
            let mut headers = vec![("authorization", auth.as_str())];
            if !key.is_empty() {
                headers.push(("idempotency-key", key));
            }
            api.raw(Method::POST, "/inbound", &headers, Some(msg)).await
        }
    };

    let first = send(owner.clone(), "msg-0001", "Can I book a bath?").await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let conversation = first.body["conversation_id"].as_str().unwrap().to_owned();
    // The answer was lost: the app sends it again, twice.
    for _ in 0..2 {
        let again = send(owner.clone(), "msg-0001", "Can I book a bath?").await;
        assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
        assert_eq!(again.body["conversation_id"], conversation.as_str());
        assert_eq!(again.body["new_conversation"], false);
    }
    // Another message of the same owner, with its own key, joins the conversation.
    let next = send(owner.clone(), "msg-0002", "For Saturday?").await;
    assert_eq!(next.status, StatusCode::OK, "{:?}", next.body);
    let d = detail(&api, &p, &conversation).await;
    let client_texts: Vec<&str> = d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["author"]["kind"] == "client")
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(
        client_texts,
        vec!["Can I book a bath?", "For Saturday?"],
        "{d}"
    );

    // Another owner's same key is not the first owner's message.
    let other = send(token(Role::Client, "owner-8"), "msg-0001", "Hello").await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);
    assert_ne!(other.body["conversation_id"], conversation.as_str());

    // A key that is not 1 to 128 visible ASCII characters is refused, and nothing is stored.
    let long = "k".repeat(129);
    let refused = api
        .raw(
            Method::POST,
            "/inbound",
            &[
                ("authorization", owner.as_str()),
                ("idempotency-key", long.as_str()),
            ],
            Some(json!({"channel": "app", "body": "not stored"}).to_string()),
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        refused.body
    );
    assert_eq!(refused.code(), "invalid_value");
    assert_eq!(refused.body["error"]["field"], "Idempotency-Key");
    let spaced = api
        .raw(
            Method::POST,
            "/inbound",
            &[
                ("authorization", owner.as_str()),
                ("idempotency-key", "two words"),
            ],
            Some(json!({"channel": "app", "body": "not stored"}).to_string()),
        )
        .await;
    assert_eq!(
        spaced.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        spaced.body
    );
    let d = detail(&api, &p, &conversation).await;
    assert!(
        !d["messages"].to_string().contains("not stored"),
        "a refused message is not stored: {d}"
    );
}

/// A zone without DST where it is now between 12:00 and 13:00, and its offset in hours. Handlers read the
/// wall clock, so a lunch break is reached by choosing where the practice is rather than when the test runs;
/// the department's break lasts until 14:00, so a test that starts at 12:59 still runs inside it.
fn lunchtime_zone() -> (String, i32) {
    use chrono::Timelike;
    let offset = 12 - chrono::Utc::now().hour() as i32; // -11 ..= 12: every one is an Etc/GMT zone
    let name = match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"), // POSIX signs: Etc/GMT-3 is UTC+3
        o => format!("Etc/GMT+{}", -o),
    };
    (name, offset)
}

async fn setup_practice_in(api: &Api, p: &str, timezone: &str) -> String {
    let r = api
        .admin(
            p,
            Method::PUT,
            "/practice",
            Some(json!({"name": "Happy Paws", "timezone": timezone, "country": "US"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["default_department_id"].as_str().unwrap().to_owned()
}

async fn an_app_chat_between_two_windows_follows_the_after_hours_rules(api: Api) {
    let p = Api::practice_id();
    let (zone, offset) = lunchtime_zone();
    setup_practice_in(&api, &p, &zone).await;
    let split = json!([{"start": "08:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}]);
    let week = json!({"mon": split, "tue": split, "wed": split, "thu": split, "fri": split, "sat": split, "sun": split});
    let surgery = api
        .add_department(&p, json!({"name": "Surgery", "visible_in_app": true, "hours": week,
                                   "chat": {"allow_messages_after_hours": false, "after_hours_message": "Back at two."}}))
        .await;
    let dental = api
        .add_department(&p, json!({"name": "Dental", "visible_in_app": true, "hours": week,
                                   "chat": {"greeting": "Hi!", "allow_messages_after_hours": true, "after_hours_message": "We are at lunch."}}))
        .await;
    // 14:00 today, where the practice is.
    let zone_offset = chrono::FixedOffset::east_opt(offset * 3600).unwrap();
    let today = chrono::Utc::now().with_timezone(&zone_offset).date_naive();
    let two_pm = today
        .and_hms_opt(14, 0, 0)
        .unwrap()
        .and_local_timezone(zone_offset)
        .unwrap();
    let two_pm = serde_json::to_value(two_pm).unwrap();

    // Refused where messages after hours are not allowed, with when it opens again.
    let r = app(
        &api,
        &p,
        "owner-1",
        surgery["id"].as_str(),
        "Is Rex out of surgery?",
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "after_hours"),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["error"]["after_hours_message"], "Back at two.");
    assert_eq!(r.body["error"]["opens_at"], two_pm);
    // Left as an after-hours message where they are.
    let r = app(
        &api,
        &p,
        "owner-2",
        dental["id"].as_str(),
        "Can I book a cleaning?",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["outcome"], "after_hours_message_left");
    assert_eq!(
        r.body["auto_replies"],
        json!([{"kind": "greeting", "text": "Hi!"}, {"kind": "after_hours", "text": "We are at lunch."}])
    );
    // What the widget shows: closed until 14:00, and whether a message would be taken.
    let surgery_now = api
        .availability_of(&p, surgery["id"].as_str().unwrap(), None)
        .await;
    let dental_now = api
        .availability_of(&p, dental["id"].as_str().unwrap(), None)
        .await;
    for (d, accepts) in [(surgery_now, false), (dental_now, true)] {
        assert_eq!(
            (
                &d["open"],
                &d["reason"],
                &d["opens_at"],
                &d["accepts_messages_now"]
            ),
            (
                &json!(false),
                &json!("outside_hours"),
                &two_pm,
                &json!(accepts)
            ),
            "{d}"
        );
    }
}

/// For every state a department can be in, the availability's `accepts_messages_now` is exactly what a real
/// `POST /inbound` of a new app chat, and of a new web chat, then does.
async fn accepts_messages_now_says_what_inbound_does(api: Api) {
    let p = Api::practice_id();
    setup_practice_in(&api, &p, "UTC").await;
    let today = chrono::Utc::now().date_naive();
    let holiday = json!([{"start_date": (today - chrono::Days::new(1)).to_string(),
                          "end_date": (today + chrono::Days::new(1)).to_string(), "kind": "non_working"}]);
    let states = [
        (
            "open",
            json!({"hours": always_open(), "chat": {"allow_messages_after_hours": false}}),
        ),
        ("closed, messages allowed", json!({"hours": never_open()})),
        (
            "closed, no messages",
            json!({"hours": never_open(), "chat": {"allow_messages_after_hours": false}}),
        ),
        (
            "offline, messages allowed",
            json!({"hours": always_open(), "online": false}),
        ),
        (
            "offline and closed",
            json!({"hours": never_open(), "online": false}),
        ),
        (
            "offline, no messages",
            json!({"hours": always_open(), "online": false, "chat": {"allow_messages_after_hours": false}}),
        ),
        (
            "holiday, messages allowed",
            json!({"hours": always_open(), "date_overrides": holiday}),
        ),
        (
            "holiday, no messages",
            json!({"hours": always_open(), "date_overrides": holiday, "chat": {"allow_messages_after_hours": false}}),
        ),
    ];
    let mut ids = Vec::new();
    for (i, (what, body)) in states.iter().enumerate() {
        let mut body = body.clone();
        body["name"] = json!(format!("Department {i}"));
        body["visible_in_app"] = json!(true);
        let d = api.add_department(&p, body).await;
        ids.push((*what, d["id"].as_str().unwrap().to_owned()));
    }
    let mut taken = 0;
    for (i, (what, id)) in ids.iter().enumerate() {
        let d = api.availability_of(&p, id, None).await;
        let promised = d["accepts_messages_now"].as_bool().unwrap();
        for channel in ["app", "web"] {
            let client = format!("owner-{channel}-{i}");
            let auth = format!("Bearer {}", Api::token_as(&p, Role::Client, &client));
            let r = api
                .raw(
                    Method::POST,
                    "/inbound",
                    &[("authorization", &auth)],
                    Some(
                        json!({"channel": channel, "department_id": id, "body": "Hello?"})
                            .to_string(),
                    ),
                )
                .await;
            assert_eq!(
                r.status == StatusCode::CREATED,
                promised,
                "{what} ({channel}): the widget said accepts_messages_now={promised}, POST /inbound answered {} {}",
                r.status,
                r.body
            );
            if !promised {
                let code = if d["reason"] == "offline" {
                    "offline"
                } else {
                    "after_hours"
                };
                assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, code), "{what}");
            }
            taken += usize::from(promised);
        }
    }
    // open, closed with messages, holiday with messages; on both channels.
    assert_eq!(taken, 6);
}

/// 30 messages a minute per client (the default limits): the 31st is 429 `rate_limited` in the contract's
/// error shape with `Retry-After` in seconds, and is not stored; staff, another client and the texting
/// gateway go on unaffected.
async fn a_client_faster_than_a_person_is_answered_429_and_nothing_is_stored(api: Api) {
    let p = Api::practice_id();
    api.setup_open_practice(&p).await;
    let send = |sub: &'static str, body: String| {
        let (api, p) = (&api, p.clone());
        async move {
            api.call_as(
                &p,
                Role::Client,
                sub,
                Method::POST,
                "/inbound",
                Some(json!({"channel": "web", "body": body})),
            )
            .await
        }
    };
    let mut id = String::new();
    for k in 0..30 {
        let r = send("owner-1", format!("message {k}")).await;
        assert!(r.status.is_success(), "message {k}: {:?}", r.body);
        id = r.body["conversation_id"].as_str().unwrap().to_owned();
    }
    let r = send("owner-1", "one too many".into()).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{:?}",
        r.body
    );
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("30 messages")),
        "{:?}",
        r.body
    );
    let wait: u32 = r.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "Retry-After {wait}");

    let conversation = api
        .call(
            &p,
            Role::Staff,
            Method::GET,
            &format!("/conversations/{id}"),
            None,
        )
        .await;
    let bodies: Vec<&str> = conversation.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert!(
        !bodies.contains(&"one too many"),
        "the refused message was not stored"
    );
    assert_eq!(
        bodies.iter().filter(|b| b.starts_with("message ")).count(),
        30
    );

    let reply = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": "Slow down please, we read everything"})),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "staff are never limited: {:?}",
        reply.body
    );
    let other = send("owner-2", "hello".into()).await;
    assert_eq!(
        other.status,
        StatusCode::CREATED,
        "another client is not held up: {:?}",
        other.body
    );
    for k in 0..40 {
        let r = text(&api, &p, "+12015550188", &format!("text {k}")).await;
        assert!(
            r.status.is_success(),
            "texts are never limited: {k} {:?}",
            r.body
        );
    }
}
