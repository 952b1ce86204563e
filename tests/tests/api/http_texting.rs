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
    an_sms_reply_goes_out_from_the_practice_number_the_client_texted,
    a_whatsapp_reply_goes_out_from_the_phone_number_id_the_client_wrote_to,
    a_to_that_is_not_the_practices_number_is_refused_and_nothing_is_stored,
    staff_cannot_start_a_whatsapp_conversation,
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

const WA_FIRST: &str = "phone-number-id-11111111111111111111111111111111";
const WA_SECOND: &str = "phone-number-id-22222222222222222222222222222222";

/// A practice texting from two numbers and on WhatsApp from two more.
async fn practice_with_numbers(api: &Api, p: &str) {
    let r = api
        .admin(
            p,
            Method::PUT,
            "/practice",
            Some(
                json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US",
                        "sms_numbers": ["+12015550100", "+12015550101"],
                        "whatsapp_numbers": [
                            {"phone_number_id": WA_FIRST, "number": "+12015550102"},
                            {"phone_number_id": WA_SECOND, "number": "+12015550103"}]}),
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
}

async fn inbound_text(api: &Api, p: &str, body: Value) -> Reply {
    api.call(p, Role::Integration, Method::POST, "/inbound", Some(body))
        .await
}

async fn conversation(api: &Api, p: &str, id: &str) -> Value {
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

async fn an_sms_reply_goes_out_from_the_practice_number_the_client_texted(api: Api) {
    let p = Api::practice_id();
    practice_with_numbers(&api, &p).await;
    // One client texts the second number; another says nothing of the number (the first one, then).
    let r = inbound_text(
        &api,
        &p,
        json!({"channel": "sms", "from": "+12015550111", "to": "+1 201-555-0101", "body": "Is Rex ready?"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let second = r.body["conversation_id"].as_str().unwrap().to_owned();
    let r = inbound_text(
        &api,
        &p,
        json!({"channel": "sms", "from": "+12015550112", "body": "Is Bella ready?"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let first = r.body["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        conversation(&api, &p, &second).await["reply_from"],
        "+12015550101"
    );
    let to_second = reply(&api, &p, &second, "Rex is ready at 5").await;
    let to_first = reply(&api, &p, &first, "Bella is ready at 6").await;
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    let from_of = |m: &Value| {
        sent.iter()
            .find(|e| e["message_id"] == m["id"])
            .unwrap_or_else(|| panic!("{m} was sent: {sent:?}"))["from"]
            .clone()
    };
    assert_eq!(from_of(&to_second), "+12015550101");
    assert_eq!(from_of(&to_first), "+12015550100");
}

async fn a_whatsapp_reply_goes_out_from_the_phone_number_id_the_client_wrote_to(api: Api) {
    let p = Api::practice_id();
    practice_with_numbers(&api, &p).await;
    let r = inbound_text(
        &api,
        &p,
        json!({"channel": "whatsapp", "from": "+14255550150", "to": WA_SECOND, "body": "Hi"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();
    let c = conversation(&api, &p, &id).await;
    assert_eq!(c["channel"], "whatsapp");
    assert_eq!(c["reply_from"], WA_SECOND);
    assert!(c["last_whatsapp_at"].is_string(), "{c}");
    let m = reply(&api, &p, &id, "Hello Diego").await;
    assert_eq!(m["delivery"]["status"], "queued");
    assert_eq!(m["delivery"]["segments"], Value::Null);
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["channel"], "whatsapp");
    assert_eq!(sent[0]["to"], "+14255550150");
    assert_eq!(sent[0]["from"], WA_SECOND);
    assert_eq!(sent[0]["message_id"], m["id"]);
    // Without `to`: the practice's first WhatsApp number.
    let r = inbound_text(
        &api,
        &p,
        json!({"channel": "whatsapp", "from": "+14255550151", "body": "Hi"}),
    )
    .await;
    let other = r.body["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(conversation(&api, &p, &other).await["reply_from"], WA_FIRST);
}

async fn a_to_that_is_not_the_practices_number_is_refused_and_nothing_is_stored(api: Api) {
    let p = Api::practice_id();
    practice_with_numbers(&api, &p).await;
    for body in [
        // Not one of its texting numbers (one of its WhatsApp numbers is not a texting number).
        json!({"channel": "sms", "from": "+12015550111", "to": "+12015550102", "body": "Hi"}),
        json!({"channel": "sms", "from": "+12015550111", "to": "+12015550199", "body": "Hi"}),
        // Not one of its WhatsApp phone number ids (a number is not an id).
        json!({"channel": "whatsapp", "from": "+12015550111", "to": "phone-number-id-unknown", "body": "Hi"}),
        json!({"channel": "whatsapp", "from": "+12015550111", "to": "+12015550102", "body": "Hi"}),
    ] {
        let r = inbound_text(&api, &p, body.clone()).await;
        assert_eq!(
            (r.status, r.code(), r.field()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "to"),
            "{body}: {:?}",
            r.body
        );
    }
    let r = inbound_text(
        &api,
        &p,
        json!({"channel": "sms", "from": "+12015550111", "to": "not a number", "body": "Hi"}),
    )
    .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_phone", "to")
    );
    let r = api
        .call(&p, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(r.body["conversations"], json!([]), "nothing was stored");
}

async fn staff_cannot_start_a_whatsapp_conversation(api: Api) {
    let p = Api::practice_id();
    practice_with_numbers(&api, &p).await;
    let department = api.admin(&p, Method::GET, "/departments", None).await.body[0]["id"].clone();
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(
                json!({"department_id": department, "client_id": "+14255550150",
                        "body": "Hello", "channel": "whatsapp"}),
            ),
        )
        .await;
    assert_eq!(
        (r.status, r.code(), r.field()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_value", "channel"),
        "{:?}",
        r.body
    );
    let r = api
        .call(&p, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(r.body["conversations"], json!([]), "nothing was stored");
}
