//! Replies that go out by text (docs/api.md "Replies reach the pet owner"), over HTTP on every store:
//! what staff see of each text's `delivery`, and what is refused before anything is stored.

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{always_open, Api};

vetchat_tests::on_every_store!(
    a_staff_reply_to_a_text_is_queued_with_its_sms_parts,
    an_sms_reply_over_1600_characters_is_refused_and_nothing_is_stored,
    a_staff_started_sms_conversation_queues_its_first_text,
);

async fn texted_conversation(api: &Api, p: &str) -> String {
    api.setup_practice(p).await;
    let r = api
        .call(
            p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": "+12015550111", "body": "Is Rex ready?"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["conversation_id"].as_str().unwrap().to_owned()
}

async fn messages(api: &Api, p: &str, id: &str) -> Vec<Value> {
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
    r.body["messages"].as_array().unwrap().clone()
}

async fn a_staff_reply_to_a_text_is_queued_with_its_sms_parts(api: Api) {
    let p = Api::practice_id();
    let id = texted_conversation(&api, &p).await;
    let body = "Rex is ready. ".repeat(12); // 168 GSM-7 characters: two parts
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({ "body": body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["delivery"]["status"], "queued");
    assert_eq!(r.body["delivery"]["reason"], Value::Null);
    assert_eq!(r.body["delivery"]["segments"], 2);
    let listed = messages(&api, &p, &id).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0]["delivery"],
        Value::Null,
        "what the service received has no delivery"
    );
    assert_eq!(listed[1]["delivery"]["status"], "queued");
    assert_eq!(listed[1]["delivery"]["segments"], 2);

    // App chats are read in the app: no delivery.
    let dept = api
        .add_department(
            &p,
            json!({"name": "Grooming", "visible_in_app": true, "hours": always_open()}),
        )
        .await;
    let started = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": dept["id"], "client_id": "owner-1", "body": "Hello"})),
        )
        .await;
    assert_eq!(started.status, StatusCode::CREATED, "{:?}", started.body);
    let app = messages(&api, &p, started.body["id"].as_str().unwrap()).await;
    assert_eq!(app[0]["delivery"], Value::Null);
}

async fn an_sms_reply_over_1600_characters_is_refused_and_nothing_is_stored(api: Api) {
    let p = Api::practice_id();
    let id = texted_conversation(&api, &p).await;
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({ "body": "a".repeat(1601) })),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNPROCESSABLE_ENTITY, "too_large"),
        "{:?}",
        r.body
    );
    assert_eq!(messages(&api, &p, &id).await.len(), 1);
    let fits = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({ "body": "a".repeat(1600) })),
        )
        .await;
    assert_eq!(fits.status, StatusCode::CREATED, "{:?}", fits.body);
    assert_eq!(fits.body["delivery"]["segments"], 11);
}

async fn a_staff_started_sms_conversation_queues_its_first_text(api: Api) {
    let p = Api::practice_id();
    let default_id = api.setup_practice(&p).await;
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": default_id, "client_id": "+12015550123", "channel": "sms", "body": "Rex's vaccines are due"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["channel"], "sms");
    let listed = messages(&api, &p, r.body["id"].as_str().unwrap()).await;
    assert_eq!(listed[0]["delivery"]["status"], "queued");
    assert_eq!(listed[0]["delivery"]["segments"], 1);
}
