//! Replies that go out by text (docs/api.md "Replies reach the pet owner"), over HTTP on every store:
//! what staff see of each text's `delivery`, and what is refused before anything is stored; the opt-out
//! (STOP, START, the provider's own refusal) and the after-hours text.

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
    rock_5581_stop_opts_the_number_out_of_that_practice_only,
    every_opt_out_keyword_opts_out_and_start_or_unstop_opts_back_in,
    a_keyword_without_an_open_conversation_starts_none_and_raises_no_alert,
    episphere_1104_the_providers_opted_out_refusal_records_the_opt_out,
    a_status_event_failing_a_text_as_opted_out_records_the_opt_out,
    a_staff_started_text_to_an_opted_out_number_is_refused_and_nothing_is_stored,
    whatsapp_conversations_of_an_opted_out_number_are_unaffected,
    chatwoot_3042_five_texts_in_one_closed_period_get_one_after_hours_text,
    an_opted_out_number_gets_no_after_hours_text,
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
    // Open around the clock: the text gets no after-hours text, whenever the test runs.
    api.setup_open_practice(p).await;
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

/// The conversation as staff read it, with its messages.
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

async fn messages(api: &Api, p: &str, id: &str) -> Vec<Value> {
    conversation(api, p, id).await["messages"]
        .as_array()
        .unwrap()
        .clone()
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

// ---------------------------------------------------------------------------------------------------------
// Opt-out (docs/api.md "Opt-out") and the after-hours text ("After hours, by text")
// ---------------------------------------------------------------------------------------------------------

const OWNER: &str = "+12015550111";

async fn try_reply(api: &Api, p: &str, id: &str, body: &str) -> Reply {
    api.call(
        p,
        Role::Staff,
        Method::POST,
        &format!("/conversations/{id}/messages"),
        Some(json!({ "body": body })),
    )
    .await
}

/// A refusal for the opt-out: 409 `sms_opted_out` carrying the instant.
fn assert_opted_out(r: &Reply, opted_out_at: &Value) {
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::CONFLICT, "sms_opted_out"),
        "{:?}",
        r.body
    );
    assert_eq!(
        &r.body["error"]["opted_out_at"], opted_out_at,
        "{:?}",
        r.body
    );
}

fn bodies(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect()
}

/// Rock #5581: STOP to one number disabled all SMS. Here STOP to practice A opts the number out of A's
/// texts only: A's reply is refused before anything is stored, B's reply to the same person goes out.
async fn rock_5581_stop_opts_the_number_out_of_that_practice_only(api: Api) {
    let (a, b) = (Api::practice_id(), Api::practice_id());
    let in_a = api.texted_conversation(&a, PRACTICE_NUMBER, OWNER).await;
    let in_b = api.texted_conversation(&b, "+12015550200", OWNER).await;
    let stop = api.text(&a, OWNER, "  Stop ").await;
    assert_eq!(stop.status, StatusCode::OK, "{:?}", stop.body);
    assert_eq!(stop.body["outcome"], "opted_out");
    assert_eq!(stop.body["conversation_id"], in_a.as_str());
    assert_eq!(stop.body["new_conversation"], false);
    assert_eq!(stop.body["auto_replies"], json!([]));
    let opted_out_at = stop.body["opted_out_at"].clone();
    assert!(opted_out_at.is_string(), "{:?}", stop.body);
    // Staff see it on the conversation at once; the keyword is in it as a message.
    let c = conversation(&api, &a, &in_a).await;
    assert_eq!(c["sms_opted_out_at"], opted_out_at);
    assert_eq!(
        bodies(c["messages"].as_array().unwrap()),
        ["Is Rex ready?", "Stop"]
    );
    // A second STOP keeps the first instant.
    let again = api.text(&a, OWNER, "STOP").await;
    assert_eq!(again.body["opted_out_at"], opted_out_at);

    let refused = try_reply(&api, &a, &in_a, "Rex is ready at 5").await;
    assert_opted_out(&refused, &opted_out_at);
    assert_eq!(messages(&api, &a, &in_a).await.len(), 3, "nothing stored");
    // Practice B texting the same number is unaffected.
    assert_eq!(
        conversation(&api, &b, &in_b).await["sms_opted_out_at"],
        Value::Null
    );
    let m = reply(&api, &b, &in_b, "Bella is ready at 6").await;
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 1, "only B's reply goes out: {sent:?}");
    assert_eq!(
        (
            sent[0]["message_id"].clone(),
            sent[0]["from"].clone(),
            sent[0]["to"].clone()
        ),
        (m["id"].clone(), json!("+12015550200"), json!(OWNER))
    );
}

/// Each carrier keyword, in any case and with spaces around it, opts out; START and UNSTOP opt back in
/// (replies go out again); a keyword inside a sentence is only a message.
async fn every_opt_out_keyword_opts_out_and_start_or_unstop_opts_back_in(api: Api) {
    let p = Api::practice_id();
    let id = api.texted_conversation(&p, PRACTICE_NUMBER, OWNER).await;
    for (i, keyword) in domain::conversation::delivery::OPT_OUT_KEYWORDS
        .iter()
        .enumerate()
    {
        let sent = match i % 3 {
            0 => keyword.to_string(),
            1 => keyword.to_lowercase(),
            _ => format!("  {}{}\t", &keyword[..1], keyword[1..].to_lowercase()),
        };
        let out = api.text(&p, OWNER, &sent).await;
        assert_eq!(out.body["outcome"], "opted_out", "{sent:?}: {:?}", out.body);
        let at = conversation(&api, &p, &id).await["sms_opted_out_at"].clone();
        assert_eq!(at, out.body["opted_out_at"], "{sent:?}");
        assert_opted_out(&try_reply(&api, &p, &id, "hello").await, &at);
        let back = if i % 2 == 0 { "START" } else { " unstop " };
        let r = api.text(&p, OWNER, back).await;
        assert_eq!(r.body["outcome"], "opted_in", "{back:?}: {:?}", r.body);
        assert_eq!(r.body["conversation_id"], id.as_str());
        assert_eq!(
            conversation(&api, &p, &id).await["sms_opted_out_at"],
            Value::Null
        );
    }
    let sentence = api.text(&p, OWNER, "Please stop the reminders").await;
    assert_eq!(sentence.body["outcome"], "delivered");
    assert_eq!(
        conversation(&api, &p, &id).await["sms_opted_out_at"],
        Value::Null
    );
    let m = reply(&api, &p, &id, "Done, no more reminders").await;
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["message_id"], m["id"]);
}

/// A keyword from a number with no open conversation is stored nowhere but the opt-out record: no
/// conversation, no alert. A conversation the number starts later shows the opt-out and refuses replies,
/// until START (which joins it).
async fn a_keyword_without_an_open_conversation_starts_none_and_raises_no_alert(api: Api) {
    let p = Api::practice_id();
    let default_id = api.texting_practice(&p, PRACTICE_NUMBER).await;
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &format!("/departments/{default_id}"),
            Some(json!({"alerts": {"enabled": true, "emails": ["desk@happypaws.example"]}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let stop = api.text(&p, OWNER, "STOP").await;
    assert_eq!(stop.status, StatusCode::OK, "{:?}", stop.body);
    assert_eq!(
        (
            stop.body["conversation_id"].clone(),
            stop.body["department_id"].clone(),
            stop.body["outcome"].clone()
        ),
        (Value::Null, Value::Null, json!("opted_out"))
    );
    let opted_out_at = stop.body["opted_out_at"].clone();
    let list = api
        .call(&p, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(list.body["conversations"], json!([]));
    api.deliver_alerts().await;
    let sent = api.public("/_local/sent").await.body;
    assert_eq!(sent, json!([]), "no alert for a keyword");

    // Texting later, still opted out: a conversation (and its alert) that shows it.
    let hello = api.text(&p, OWNER, "Is Rex ready?").await;
    assert_eq!(hello.status, StatusCode::CREATED, "{:?}", hello.body);
    let id = hello.body["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(
        conversation(&api, &p, &id).await["sms_opted_out_at"],
        opted_out_at
    );
    api.deliver_alerts().await;
    let sent = api.public("/_local/sent").await.body;
    let alerts: Vec<&Value> = sent.as_array().unwrap().iter().collect();
    assert_eq!(alerts.len(), 1, "{sent:?}");
    assert_eq!(alerts[0]["kind"], "new_conversation");
    assert_opted_out(&try_reply(&api, &p, &id, "Yes").await, &opted_out_at);

    let start = api.text(&p, OWNER, "start").await;
    assert_eq!(
        (
            start.status,
            start.body["outcome"].clone(),
            start.body["conversation_id"].clone()
        ),
        (StatusCode::OK, json!("opted_in"), json!(id))
    );
    assert_eq!(
        conversation(&api, &p, &id).await["sms_opted_out_at"],
        Value::Null
    );
    reply(&api, &p, &id, "Yes, at 5").await;
    api.deliver_texts().await;
    assert_eq!(sent_replies(&api).await.len(), 1);
}

/// episphere/connect #1104: STOP never reached the app and texting went on. The provider's own "opted
/// out" refusal records the opt-out: the conversation shows it, the next reply and a retry are refused,
/// and a conversation the number starts later shows it too.
async fn episphere_1104_the_providers_opted_out_refusal_records_the_opt_out(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    let refusing = Provider(domain::texting::SendOutcome::Refused(
        domain::conversation::FailureReason::OptedOut,
    ));
    api.deliver_texts_with(&refusing).await;
    let d = delivery_of(&api, &p, &id, &m["id"]).await;
    assert_eq!(
        (d["status"].clone(), d["reason"].clone()),
        (json!("failed"), json!("opted_out"))
    );
    let opted_out_at = conversation(&api, &p, &id).await["sms_opted_out_at"].clone();
    assert!(
        opted_out_at.is_string(),
        "the refusal is recorded on the conversation"
    );
    assert_opted_out(&retry(&api, &p, &id, &m["id"]).await, &opted_out_at);
    assert_opted_out(
        &try_reply(&api, &p, &id, "Are you there?").await,
        &opted_out_at,
    );
    assert_eq!(messages(&api, &p, &id).await.len(), 2, "nothing stored");
    // The record, not only the conversation's copy: a later conversation of the number shows it.
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
    let again = api.text(&p, "+12015550111", "Hello?").await;
    assert_eq!(again.status, StatusCode::CREATED);
    let later = again.body["conversation_id"].as_str().unwrap();
    assert_eq!(
        conversation(&api, &p, later).await["sms_opted_out_at"],
        opted_out_at
    );
    api.deliver_texts().await;
    assert!(sent_replies(&api).await.is_empty());
}

/// The carrier's opt-out list, reported later by the SMS configuration set's event (`TEXT_OPTED_OUT`):
/// recorded as the sender's refusal is; a redelivered event changes nothing.
async fn a_status_event_failing_a_text_as_opted_out_records_the_opt_out(api: Api) {
    let p = Api::practice_id();
    let id = texted_practice(&api, &p).await;
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    api.deliver_texts().await;
    let event = json!({"message_id": m["id"], "status": "failed", "reason": "opted_out"});
    let played = play(&api, event.clone()).await;
    assert_eq!(played["delivery"]["reason"], "opted_out");
    let opted_out_at = conversation(&api, &p, &id).await["sms_opted_out_at"].clone();
    assert!(
        opted_out_at.is_string(),
        "the event is recorded on the conversation"
    );
    assert_opted_out(
        &try_reply(&api, &p, &id, "Are you there?").await,
        &opted_out_at,
    );
    play(&api, event).await;
    assert_eq!(
        conversation(&api, &p, &id).await["sms_opted_out_at"],
        opted_out_at
    );
}

async fn a_staff_started_text_to_an_opted_out_number_is_refused_and_nothing_is_stored(api: Api) {
    let p = Api::practice_id();
    let default_id = api.texting_practice(&p, PRACTICE_NUMBER).await;
    let opted_out_at = api.text(&p, OWNER, "UNSUBSCRIBE").await.body["opted_out_at"].clone();
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            "/conversations",
            Some(json!({"department_id": default_id, "client_id": OWNER, "channel": "sms", "body": "Rex's vaccines are due"})),
        )
        .await;
    assert_opted_out(&r, &opted_out_at);
    let list = api
        .call(&p, Role::Staff, Method::GET, "/conversations", None)
        .await;
    assert_eq!(list.body["conversations"], json!([]));
    api.deliver_texts().await;
    assert!(sent_replies(&api).await.is_empty());
}

/// Only SMS is opted out: a WhatsApp conversation of the same number shows no opt-out, takes replies, and
/// "STOP" on WhatsApp is just a message.
async fn whatsapp_conversations_of_an_opted_out_number_are_unaffected(api: Api) {
    let p = Api::practice_id();
    api.texting_practice(&p, PRACTICE_NUMBER).await;
    api.text(&p, OWNER, "STOP").await;
    let whatsapp = |body: &'static str| {
        api.call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "whatsapp", "from": OWNER, "body": body})),
        )
    };
    let hi = whatsapp("Hi, is Rex ready?").await;
    assert_eq!(hi.status, StatusCode::CREATED, "{:?}", hi.body);
    let id = hi.body["conversation_id"].as_str().unwrap().to_owned();
    let stop = whatsapp("STOP").await;
    assert_eq!(stop.body["outcome"], "delivered", "{:?}", stop.body);
    let c = conversation(&api, &p, &id).await;
    assert_eq!(c["sms_opted_out_at"], Value::Null);
    assert_eq!(
        bodies(c["messages"].as_array().unwrap()),
        ["Hi, is Rex ready?", "STOP"]
    );
    let m = reply(&api, &p, &id, "Rex is ready at 5").await;
    assert_eq!(m["delivery"]["status"], "queued");
}

/// Chatwoot #3042: out-of-office replies that spam. A department switched off (closed whatever its hours)
/// answers five texts in one closed period with one after-hours text, stored with its delivery in the
/// first text's write and sent once by the sender.
async fn chatwoot_3042_five_texts_in_one_closed_period_get_one_after_hours_text(api: Api) {
    let p = Api::practice_id();
    let default_id = api.texting_practice(&p, PRACTICE_NUMBER).await;
    const AWAY: &str = "We open at 9. For an emergency call +1 201 555 0199.";
    let r = api
        .admin(
            &p,
            Method::PATCH,
            &format!("/departments/{default_id}"),
            Some(json!({"online": false, "chat": {"after_hours_message": AWAY}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let first = api.text(&p, OWNER, "Is Rex ready?").await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    assert_eq!(first.body["outcome"], "after_hours_message_left");
    assert_eq!(
        first.body["auto_replies"],
        json!([{"kind": "after_hours", "text": AWAY}])
    );
    let id = first.body["conversation_id"].as_str().unwrap().to_owned();
    for body in [
        "Hello?",
        "Anyone there?",
        "Rex is limping",
        "Please call me",
    ] {
        let r = api.text(&p, OWNER, body).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(r.body["outcome"], "after_hours_message_left");
        assert_eq!(r.body["auto_replies"], json!([]), "{body}");
    }
    let listed = messages(&api, &p, &id).await;
    assert_eq!(
        bodies(&listed),
        [
            "Is Rex ready?",
            AWAY,
            "Hello?",
            "Anyone there?",
            "Rex is limping",
            "Please call me"
        ]
    );
    assert_eq!(
        listed[1]["author"],
        json!({"kind": "auto", "reply": "after_hours"})
    );
    assert_eq!(listed[1]["delivery"]["status"], "queued");
    assert_eq!(listed[1]["delivery"]["segments"], 1);
    api.deliver_texts().await;
    api.deliver_texts().await;
    let sent = sent_replies(&api).await;
    assert_eq!(sent.len(), 1, "one after-hours text: {sent:?}");
    assert_eq!(
        (
            sent[0]["body"].clone(),
            sent[0]["to"].clone(),
            sent[0]["from"].clone()
        ),
        (json!(AWAY), json!(OWNER), json!(PRACTICE_NUMBER))
    );
    assert_eq!(
        delivery_of(&api, &p, &id, &listed[1]["id"]).await["status"],
        "sent"
    );
}

/// Nothing is texted to an opted-out number, not even the after-hours message; once it opts back in, the
/// next text at night gets it.
async fn an_opted_out_number_gets_no_after_hours_text(api: Api) {
    let p = Api::practice_id();
    let default_id = api.texting_practice(&p, PRACTICE_NUMBER).await;
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        Some(json!({"online": false})),
    )
    .await;
    api.text(&p, OWNER, "STOP").await;
    let hello = api.text(&p, OWNER, "Is Rex ready?").await;
    assert_eq!(hello.status, StatusCode::CREATED, "{:?}", hello.body);
    assert_eq!(hello.body["auto_replies"], json!([]));
    let id = hello.body["conversation_id"].as_str().unwrap().to_owned();
    assert_eq!(messages(&api, &p, &id).await.len(), 1);
    // Joining the conversation while closed: left after hours, still nothing texted.
    let again = api.text(&p, OWNER, "Anyone there?").await;
    assert_eq!(
        (
            again.body["outcome"].clone(),
            again.body["auto_replies"].clone()
        ),
        (json!("after_hours_message_left"), json!([]))
    );
    api.deliver_texts().await;
    assert!(sent_replies(&api).await.is_empty());

    let start = api.text(&p, OWNER, "START").await;
    assert_eq!(
        start.body["auto_replies"],
        json!([]),
        "a keyword gets no auto-reply"
    );
    let after = api.text(&p, OWNER, "Hello?").await;
    assert_eq!(
        after.body["auto_replies"].as_array().unwrap().len(),
        1,
        "{:?}",
        after.body
    );
    api.deliver_texts().await;
    assert_eq!(sent_replies(&api).await.len(), 1);
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
