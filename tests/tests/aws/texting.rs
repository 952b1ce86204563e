//! Text replies through the real End User Messaging SDK clients (`adapters::texting::AwsTextSender`),
//! against the in-repo fake of both services (`vetchat_tests::fake_texting`): what is sent, once, with the
//! context the delivery events come back with, and what each refusal, outage and stall becomes.

use std::time::Duration;

use adapters::texting::{context, AwsTextSender, SEND_TIMEOUT};
use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::Api;
use vetchat_tests::fake_texting::{Behaviour, FakeTexting};
use vetchat_tests::{StoreKind, TestStore};

const PRACTICE_NUMBER: &str = "+12015550100";
const OWNER: &str = "+12015550111";

async fn sender(fake: &FakeTexting) -> AwsTextSender {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_pinpointsmsvoicev2::config::Credentials::new(
            "local", "local", None, None, "test",
        ))
        .endpoint_url(&fake.url)
        .load()
        .await;
    AwsTextSender::new(&sdk, Some("vetchat-replies".into()))
}

/// An API on a fresh in-memory store with a practice that has a texting number, a client's text and a
/// staff reply to it: the API, the practice, the conversation and the reply.
async fn replied() -> (Api, String, String, Value) {
    let api = Api::from(TestStore::open(StoreKind::Memory).await);
    let p = Api::practice_id();
    let id = api.texted_conversation(&p, PRACTICE_NUMBER, OWNER).await;
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": "Rex is ready at 5"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (api, p, id, r.body)
}

async fn delivery(api: &Api, p: &str, id: &str) -> Value {
    let r = api
        .call(
            p,
            Role::Staff,
            Method::GET,
            &format!("/conversations/{id}"),
            None,
        )
        .await;
    r.body["messages"][1]["delivery"].clone()
}

#[tokio::test]
async fn an_sms_reply_goes_out_once_from_the_practice_number_with_its_context() {
    let fake = FakeTexting::start().await;
    let sender = sender(&fake).await;
    let (api, p, id, reply) = replied().await;
    api.deliver_texts_with(&sender).await;
    api.deliver_texts_with(&sender).await;
    let sent = fake.sms();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let sms = &sent[0];
    assert_eq!(sms.destination, OWNER);
    assert_eq!(sms.origination.as_deref(), Some(PRACTICE_NUMBER));
    assert_eq!(sms.body.as_deref(), Some("Rex is ready at 5"));
    assert_eq!(sms.message_type.as_deref(), Some("TRANSACTIONAL"));
    assert_eq!(sms.configuration_set.as_deref(), Some("vetchat-replies"));
    assert_eq!(sms.context.get(context::PRACTICE), Some(&p));
    assert_eq!(sms.context.get(context::CONVERSATION), Some(&id));
    assert_eq!(
        sms.context.get(context::SEQ).map(String::as_str),
        reply["seq"].to_string().as_str().into()
    );
    assert_eq!(
        sms.context.get(context::ATTEMPT).map(String::as_str),
        Some("1")
    );
    assert_eq!(delivery(&api, &p, &id).await["status"], "sent");
}

#[tokio::test]
async fn the_providers_opted_out_refusal_fails_the_text_as_opted_out() {
    let fake = FakeTexting::start().await;
    fake.set(OWNER, Behaviour::OptedOut);
    let (api, p, id, _) = replied().await;
    api.deliver_texts_with(&sender(&fake).await).await;
    let d = delivery(&api, &p, &id).await;
    assert_eq!(
        (d["status"].clone(), d["reason"].clone()),
        (json!("failed"), json!("opted_out"))
    );
}

#[tokio::test]
async fn throttling_and_invalid_numbers_fail_visibly_and_a_5xx_is_unconfirmed() {
    for (behaviour, status, reason) in [
        (Behaviour::Throttle, "failed", json!("throttled_too_long")),
        (Behaviour::Invalid, "failed", json!("invalid_number")),
        (Behaviour::ServerError, "unconfirmed", Value::Null),
    ] {
        let fake = FakeTexting::start().await;
        fake.set(OWNER, behaviour);
        let (api, p, id, _) = replied().await;
        api.deliver_texts_with(&sender(&fake).await).await;
        let d = delivery(&api, &p, &id).await;
        assert_eq!(
            (d["status"].clone(), d["reason"].clone()),
            (json!(status), reason),
            "{behaviour:?}"
        );
        assert_eq!(fake.sms().len(), 1, "{behaviour:?}: one call, no SDK retry");
    }
}

#[tokio::test]
async fn a_stalled_send_is_unconfirmed_and_never_resent_without_a_staff_retry() {
    let fake = FakeTexting::start().await;
    fake.set(OWNER, Behaviour::Stall);
    let sender = sender(&fake).await;
    let (api, p, id, reply) = replied().await;
    let started = std::time::Instant::now();
    api.deliver_texts_with(&sender).await;
    assert!(started.elapsed() < SEND_TIMEOUT + Duration::from_secs(3));
    assert_eq!(delivery(&api, &p, &id).await["status"], "unconfirmed");
    api.deliver_texts_with(&sender).await;
    assert_eq!(
        fake.sms().len(),
        1,
        "the provider may have it: not sent again"
    );
    // A staff retry sends it once more.
    fake.set(OWNER, Behaviour::Accept);
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!(
                "/conversations/{id}/messages/{}/retry",
                reply["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    api.deliver_texts_with(&sender).await;
    let sent = fake.sms();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].context.get(context::ATTEMPT).map(String::as_str),
        Some("2")
    );
    assert_eq!(delivery(&api, &p, &id).await["status"], "sent");
}

/// A WhatsApp reply through `SendWhatsAppMessage`: once, from the phone number id the client wrote to, its
/// Meta message carrying the reply's address in `biz_opaque_callback_data`; the statuses that echo it come
/// through the WhatsApp SNS entry and move the reply's delivery.
#[tokio::test]
async fn a_whatsapp_reply_goes_out_once_from_the_phone_number_id_and_its_statuses_find_it() {
    const WA_ID: &str = "phone-number-id-0123456789abcdef0123456789abcdef";
    let fake = FakeTexting::start().await;
    let sender = sender(&fake).await;
    let api = Api::from(TestStore::open(StoreKind::Memory).await);
    let p = Api::practice_id();
    let r = api
        .admin(
            &p,
            Method::PUT,
            "/practice",
            Some(json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US",
                        "whatsapp_numbers": [{"phone_number_id": WA_ID, "number": PRACTICE_NUMBER}]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(
                json!({"channel": "whatsapp", "from": OWNER, "to": WA_ID, "body": "Is Rex ready?"}),
            ),
        )
        .await;
    let id = r.body["conversation_id"].as_str().unwrap().to_owned();
    let r = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": "Rex is ready at 5"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    api.deliver_texts_with(&sender).await;
    api.deliver_texts_with(&sender).await;
    let sent = fake.whatsapp();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].origination_phone_number_id, WA_ID);
    assert_eq!(sent[0].to(), Some(OWNER));
    assert_eq!(sent[0].text(), Some("Rex is ready at 5"));
    assert_eq!(delivery(&api, &p, &id).await["status"], "sent");
    let callback = sent[0].message["biz_opaque_callback_data"]
        .as_str()
        .expect("the send carries the reply's address")
        .to_owned();

    // Meta's statuses of that message, as End User Messaging Social publishes them to the topic.
    let entry = json!({"id": "365731266123456", "changes": [{"field": "messages", "value": {
    "metadata": {"display_phone_number": "12015550100", "phone_number_id": "321010217760100"},
    "statuses": [
        {"id": "wamid.R", "status": "read", "timestamp": "1795446402", "recipient_id": "12015550111",
         "biz_opaque_callback_data": callback},
        {"id": "wamid.R", "status": "delivered", "timestamp": "1795446401", "recipient_id": "12015550111",
         "biz_opaque_callback_data": callback}
    ]}}]});
    let message =
        json!({"context": {"MetaPhoneNumberIds": []}, "whatsAppWebhookEntry": entry.to_string()});
    let event: aws_lambda_events::event::sns::SnsEvent = serde_json::from_value(json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:1",
        "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                "Message": message.to_string(), "Timestamp": "2026-11-23T15:06:40.300Z", "SignatureVersion": "1",
                "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x", "MessageAttributes": {}}}]}))
    .expect("an SNS event");
    let batch = inbound_router::whatsapp::handle_notifications(
        api.store.as_ref(),
        &event,
        chrono::Utc::now(),
        &adapters::UlidIds,
    )
    .await
    .expect("handled");
    assert_eq!(
        (batch.statuses_applied, batch.statuses_unchanged),
        (1, 1),
        "{batch:?}"
    );
    let d = delivery(&api, &p, &id).await;
    assert_eq!(
        d["status"], "read",
        "the late delivered did not move it back: {d}"
    );
}
