//! Replies that go out by text (docs/api.md "Replies reach the pet owner"), over HTTP on every store:
//! what staff see of each text's `delivery`, and what is refused before anything is stored.

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{always_open, Api, Reply};

vetchat_tests::on_every_store!(
    a_staff_reply_to_a_text_is_queued_with_its_sms_parts,
    an_sms_reply_over_1600_characters_is_refused_and_nothing_is_stored,
    a_staff_started_sms_conversation_queues_its_first_text,
    chatwoot_9314_a_reply_by_sms_is_sent_once_from_the_practice_number,
    chatwoot_14529_a_late_status_never_moves_a_delivered_text_back,
    rocket_chat_9921_a_provider_refusal_is_failed_with_its_reason_never_sent,
    a_timeout_after_the_provider_may_have_taken_it_is_unconfirmed_and_not_resent,
    chatwoot_14120_a_retry_of_a_failed_text_sends_it_exactly_once_more,
    chatwoot_9314_a_reply_retried_with_its_idempotency_key_is_stored_and_sent_once,
);

const PRACTICE_NUMBER: &str = "+12015550100";

/// A practice with a texting number, and a client's text to it: the conversation's id.
async fn texted_practice(api: &Api, p: &str) -> String {
    api.texted_conversation(p, PRACTICE_NUMBER, "+12015550111")
        .await
}

async fn reply(api: &Api, p: &str, id: &str, body: &str) -> Value {
    let r = api
        .call(
            p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({ "body": body })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body
}

/// The `reply` entries of `GET /_local/sent`.
async fn sent_replies(api: &Api) -> Vec<Value> {
    let r = api.public("/_local/sent").await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "reply")
        .cloned()
        .collect()
}

async fn delivery_of(api: &Api, p: &str, id: &str, message_id: &Value) -> Value {
    messages(api, p, id)
        .await
        .into_iter()
        .find(|m| &m["id"] == message_id)
        .expect("the reply is listed")["delivery"]
        .clone()
}

async fn play(api: &Api, body: Value) -> Value {
    let r = api
        .raw(
            Method::POST,
            "/_local/delivery",
            &[],
            Some(body.to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn chatwoot_9314_a_reply_by_sms_is_sent_once_from_the_practice_number(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    api.deliver_texts().await;
    // The same changes again (a replayed stream record, a retried sender): nothing more goes out.
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["channel"], "sms");
    assert_eq!(sent[0]["to"], "+12015550111");
    assert_eq!(sent[0]["from"], PRACTICE_NUMBER);
    assert_eq!(sent[0]["body"], "Rex is ready at 5");
    assert_eq!(sent[0]["message_id"], m["id"]);
    assert_eq!(sent[0]["conversation_ids"], json!([id]));
    assert_eq!(delivery_of(&api, &p, &id, &m["id"]).await["status"], "sent");
}

async fn chatwoot_14529_a_late_status_never_moves_a_delivered_text_back(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    api.deliver_texts().await;
    let played = play(&api, json!({"message_id": m["id"], "status": "delivered"})).await;
    assert_eq!(played["delivery"]["status"], "delivered");
    // A failure reported after the delivery is ignored (Chatwoot #9542's mirror: nothing is rewritten).
    play(
        &api,
        json!({"message_id": m["id"], "status": "failed", "reason": "carrier_unreachable"}),
    )
    .await;
    let d = delivery_of(&api, &p, &id, &m["id"]).await;
    assert_eq!(
        (d["status"].clone(), d["reason"].clone()),
        (json!("delivered"), Value::Null)
    );
}

/// Refuses every text with one reason, or times out: what a provider may answer.
struct Provider(domain::texting::SendOutcome);

#[async_trait::async_trait]
impl domain::texting::TextSender for Provider {
    async fn send(&self, _: &domain::texting::OutboundText) -> domain::texting::SendOutcome {
        self.0.clone()
    }
}

async fn rocket_chat_9921_a_provider_refusal_is_failed_with_its_reason_never_sent(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    let refusing = Provider(domain::texting::SendOutcome::Refused(
        domain::conversation::FailureReason::InvalidNumber,
    ));
    api.deliver_texts_with(&refusing).await;
    let d = delivery_of(&api, &p, &id, &m["id"]).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["reason"], "invalid_number");
}

async fn a_timeout_after_the_provider_may_have_taken_it_is_unconfirmed_and_not_resent(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    api.deliver_texts_with(&Provider(domain::texting::SendOutcome::Unconfirmed))
        .await;
    assert_eq!(
        delivery_of(&api, &p, &id, &m["id"]).await["status"],
        "unconfirmed"
    );
    // Nothing queued is left: the next run sends nothing.
    api.deliver_texts().await;
    assert!(sent_replies(&api).await.is_empty());
}

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

async fn retry(api: &Api, p: &str, id: &str, message_id: &Value) -> Reply {
    api.call(
        p,
        Role::Staff,
        Method::POST,
        &format!(
            "/conversations/{id}/messages/{}/retry",
            message_id.as_str().unwrap()
        ),
        None,
    )
    .await
}

async fn chatwoot_14120_a_retry_of_a_failed_text_sends_it_exactly_once_more(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    // Queued or being sent: nothing to retry.
    let early = retry(&api, &p, &id, &m["id"]).await;
    assert_eq!(
        (early.status, early.code()),
        (StatusCode::CONFLICT, "not_retryable")
    );
    let outage = Provider(domain::texting::SendOutcome::Refused(
        domain::conversation::FailureReason::ProviderError,
    ));
    api.deliver_texts_with(&outage).await;
    assert_eq!(
        delivery_of(&api, &p, &id, &m["id"]).await["status"],
        "failed"
    );

    let r = retry(&api, &p, &id, &m["id"]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["id"], m["id"]);
    assert_eq!(r.body["delivery"]["status"], "queued");
    assert_eq!(r.body["delivery"]["reason"], Value::Null);
    assert_eq!(r.body["delivery"]["attempt"], 2);
    // A double click: the second finds it queued.
    let twice = retry(&api, &p, &id, &m["id"]).await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "not_retryable")
    );
    api.deliver_texts().await;
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 1, "exactly one new send: {sent:?}");
    assert_eq!(sent[0]["message_id"], m["id"]);
    let d = delivery_of(&api, &p, &id, &m["id"]).await;
    assert_eq!(
        (d["status"].clone(), d["attempt"].clone()),
        (json!("sent"), json!(2))
    );
    // What was sent is never sent again by a retry.
    let after = retry(&api, &p, &id, &m["id"]).await;
    assert_eq!(
        (after.status, after.code()),
        (StatusCode::CONFLICT, "not_retryable")
    );
    // The client's own message is no text; an unknown message is 404.
    let theirs = messages(&api, &p, &id).await[0]["id"].clone();
    let r = retry(&api, &p, &id, &theirs).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "not_retryable")
    );
    let r = retry(&api, &p, &id, &json!("msg_nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

async fn chatwoot_9314_a_reply_retried_with_its_idempotency_key_is_stored_and_sent_once(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let api = std::sync::Arc::new(api);
    let auth = format!("Bearer {}", Api::token(&p, Role::Staff));
    let path = format!("/conversations/{id}/messages");
    let send = |key: &'static str| {
        let (api, auth, path) = (api.clone(), auth.clone(), path.clone());
        async move {
            api.raw(
                Method::POST,
                &path,
                &[("authorization", &auth), ("idempotency-key", key)],
                Some(json!({"body": "Rex is ready at 5"}).to_string()),
            )
            .await
        }
    };
    // Two at once with one key (a double tap on a weak connection), then a late retry.
    let (a, b) = tokio::join!(send("tap-1"), send("tap-1"));
    let mut statuses = vec![a.status, b.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{:?} {:?}",
        a.body,
        b.body
    );
    assert_eq!(a.body["id"], b.body["id"]);
    let late = send("tap-1").await;
    assert_eq!(late.status, StatusCode::OK, "{:?}", late.body);
    assert_eq!(late.body["id"], a.body["id"]);
    assert_eq!(late.body["seq"], a.body["seq"]);
    // Another key is another reply.
    let other = send("tap-2").await;
    assert_eq!(other.status, StatusCode::CREATED);
    assert_eq!(messages(&api, &p, &id).await.len(), 3);
    api.deliver_texts().await;
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 2, "one text per key: {sent:?}");
    // A key that is not visible ASCII is refused, nothing stored.
    let bad = send("two words").await;
    assert_eq!(
        bad.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        bad.body
    );
    assert_eq!(messages(&api, &p, &id).await.len(), 3);
}
