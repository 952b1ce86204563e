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

use std::sync::atomic::{AtomicBool, Ordering};

use domain::alert::AlertSubject;
use domain::conversation::rate_limit::RateUpdate;
use domain::conversation::{Channel, ConversationId, Delivery, DeliveryEvent, Message, MessageId};
use domain::department::Department;
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::{
    ConversationFilter, ConversationIntake, MessageRange, NewConversation, OpenConversation,
    OptKeywordWrite, RoutingContext, SettingsLookup, StoreError, StoreResult, StoredText,
    TextOutbox, TextRef,
};
use domain::texting::OutboundText;

const PRACTICE_NUMBER: &str = "+12015550100";
const OWNER: &str = "+12015550111";

async fn sender(fake: &FakeTexting) -> AwsTextSender {
    fake.aws_sender().await
}

/// An API on a fresh in-memory store with a practice that has a texting number, a client's text and a
/// staff reply to it: the API, the practice, the conversation and the reply.
async fn replied() -> (Api, String, String, Value) {
    let api = Api::from(TestStore::open(StoreKind::Memory).await);
    let p = Api::practice_id();
    let id = api.texted_conversation(&p, PRACTICE_NUMBER, OWNER).await;
    let r = api.staff_reply(&p, &id, "Rex is ready at 5").await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (api, p, id, r.body)
}

const WA_ID: &str = "phone-number-id-0123456789abcdef0123456789abcdef";

/// [`replied`] on WhatsApp: the practice's WhatsApp number, the client's message to it, the staff reply.
async fn whatsapp_replied() -> (Api, String, String, Value) {
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
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
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
    (api, p, id, r.body)
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

async fn delivery(api: &Api, p: &str, id: &str) -> Value {
    conversation(api, p, id).await["messages"][1]["delivery"].clone()
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

/// End User Messaging's `ConflictException` `DESTINATION_PHONE_NUMBER_OPTED_OUT` fails the text as
/// `opted_out` and records the opt-out (episphere/connect #1104): the next reply is refused with 409
/// `sms_opted_out` before any send reaches the provider.
#[tokio::test]
async fn the_providers_opted_out_refusal_fails_the_text_as_opted_out_and_records_it() {
    let fake = FakeTexting::start().await;
    fake.set(OWNER, Behaviour::OptedOut);
    let (api, p, id, _) = replied().await;
    let sender = sender(&fake).await;
    api.deliver_texts_with(&sender).await;
    let d = delivery(&api, &p, &id).await;
    assert_eq!(
        (d["status"].clone(), d["reason"].clone()),
        (json!("failed"), json!("opted_out"))
    );
    let c = conversation(&api, &p, &id).await;
    assert!(c["sms_opted_out_at"].is_string(), "{c:?}");
    let again = api
        .call(
            &p,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(json!({"body": "Are you there?"})),
        )
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "sms_opted_out")
    );
    api.deliver_texts_with(&sender).await;
    assert_eq!(
        fake.sms().len(),
        1,
        "the one refused send, nothing after it"
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
    let r = api.retry_text(&p, &id, reply["id"].as_str().unwrap()).await;
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
    let fake = FakeTexting::start().await;
    let sender = sender(&fake).await;
    let (api, p, id, _) = whatsapp_replied().await;
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
    let event = whatsapp_notification(&entry);
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

/// An SNS event carrying one End User Messaging Social notification around Meta's webhook `entry`.
fn whatsapp_notification(entry: &Value) -> aws_lambda_events::event::sns::SnsEvent {
    let message = json!({
        "context": {"MetaPhoneNumberIds": [{"metaPhoneNumberId": "321010217760100",
            "arn": "arn:aws:social-messaging:us-east-1:123456789012:phone-number-id/0123456789abcdef0123456789abcdef"}]},
        "whatsAppWebhookEntry": entry.to_string()});
    serde_json::from_value(json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:1",
        "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                "Message": message.to_string(), "Timestamp": "2026-11-23T15:06:40.300Z", "SignatureVersion": "1",
                "Signature": "x", "SigningCertUrl": "https://x", "UnsubscribeUrl": "https://x", "MessageAttributes": {}}}]}))
    .expect("an SNS event")
}

/// The memory store, except that applying a delivery event fails (the store unavailable) while `down`.
struct FlakyOutbox {
    inner: std::sync::Arc<dyn domain::store::Store>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl SettingsLookup for FlakyOutbox {
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)> {
        self.inner
            .practice_and_department(practice_id, department_id)
            .await
    }
    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        self.inner.practice_by_sms_number(e164).await
    }
    async fn practice_by_whatsapp_id(&self, id: &str) -> StoreResult<Option<PracticeId>> {
        self.inner.practice_by_whatsapp_id(id).await
    }
}

#[async_trait::async_trait]
impl ConversationIntake for FlakyOutbox {
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        self.inner
            .routing_context(practice_id, client_id, department_id)
            .await
    }
    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()> {
        self.inner.start_conversation(new).await
    }
    async fn append_counted(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
        rate: Option<&RateUpdate>,
    ) -> StoreResult<()> {
        self.inner
            .append_counted(practice_id, open, messages, dedup_key, rate)
            .await
    }
    async fn record_opt_keyword(&self, write: &OptKeywordWrite) -> StoreResult<()> {
        self.inner.record_opt_keyword(write).await
    }
}

#[async_trait::async_trait]
impl TextOutbox for FlakyOutbox {
    async fn get_text(&self, text: &TextRef) -> StoreResult<Option<StoredText>> {
        self.inner.get_text(text).await
    }
    async fn apply_delivery_event(
        &self,
        text: &TextRef,
        event: &DeliveryEvent,
    ) -> StoreResult<Option<StoredText>> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the table is throttling".into()));
        }
        self.inner.apply_delivery_event(text, event).await
    }
    async fn replace_delivery(
        &self,
        text: &TextRef,
        expected: &Delivery,
        new: &Delivery,
    ) -> StoreResult<StoredText> {
        self.inner.replace_delivery(text, expected, new).await
    }
    async fn record_refused_opt_out(
        &self,
        text: &TextRef,
        number: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<chrono::DateTime<chrono::Utc>> {
        self.inner.record_refused_opt_out(text, number, at).await
    }
    async fn texts_in_flight(
        &self,
        queued_before: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TextRef, Delivery)>> {
        self.inner.texts_in_flight(queued_before, limit).await
    }
}

/// One notification with a status the store fails to record and a client's message: the message is
/// stored all the same, the invocation fails (SNS delivers it again), and the redelivery records the status
/// and stores no second message nor alert.
#[tokio::test]
async fn a_whatsapp_notification_that_fails_in_part_loses_nothing_and_doubles_nothing() {
    const MILO_OWNER: &str = "+14255550177";
    let (api, p, id, reply) = whatsapp_replied().await;
    let text = TextRef {
        practice_id: PracticeId::parse(&p).unwrap(),
        conversation_id: ConversationId(id.clone()),
        seq: reply["seq"].as_u64().unwrap(),
    };
    let callback = domain::whatsapp::callback_data(&OutboundText {
        text: text.clone(),
        attempt: 1,
        channel: Channel::Whatsapp,
        to: OWNER.into(),
        from: WA_ID.into(),
        body: "Rex is ready at 5".into(),
        message_id: MessageId(reply["id"].as_str().unwrap().into()),
        conversation_id: ConversationId(id.clone()),
        department_id: DepartmentId(reply["department_id"].as_str().unwrap().into()),
    });
    let entry = json!({"id": "1", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "321010217760100"},
        "statuses": [{"id": "wamid.R", "status": "delivered", "timestamp": "1795446401",
                      "biz_opaque_callback_data": callback}],
        "messages": [{"from": "14255550177", "id": "wamid.M", "timestamp": "1795446402",
                      "type": "text", "text": {"body": "Is Milo ready too?"}}]}}]});
    let event = whatsapp_notification(&entry);
    let flaky = FlakyOutbox {
        inner: api.store.clone(),
        down: AtomicBool::new(true),
    };
    let handle = || {
        inbound_router::whatsapp::handle_notifications(
            &flaky,
            &event,
            chrono::Utc::now(),
            &adapters::UlidIds,
        )
    };
    let first = handle().await;
    assert!(
        first.is_err(),
        "the invocation fails, so SNS delivers it again: {first:?}"
    );
    let milo = || async {
        let page = api
            .store
            .list_conversations(&text.practice_id, &ConversationFilter::default(), None, 100)
            .await
            .expect("list");
        page.conversations
            .into_iter()
            .filter(|c| c.client_id == MILO_OWNER)
            .collect::<Vec<_>>()
    };
    assert_eq!(milo().await.len(), 1, "the message was not lost");
    assert_eq!(delivery(&api, &p, &id).await["status"], "queued");

    flaky.down.store(false, Ordering::SeqCst);
    let again = handle().await.expect("the redelivery is handled");
    assert_eq!((again.routed, again.statuses_applied), (1, 1), "{again:?}");
    assert_eq!(delivery(&api, &p, &id).await["status"], "delivered");
    let milo = milo().await;
    assert_eq!(milo.len(), 1, "one conversation");
    let detail = api
        .store
        .conversation_detail(&text.practice_id, &milo[0].id, MessageRange::ALL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.messages.len(), 1, "the message is stored once");
    let mut alerts = 0;
    for alert in api.store.pending_alert_ids(100).await.unwrap() {
        let record = api.store.get_alert(&alert).await.unwrap().unwrap();
        if matches!(&record.alert.subject, AlertSubject::NewConversation(c) if c.conversation_id == milo[0].id)
        {
            alerts += 1;
        }
    }
    assert_eq!(alerts, 1, "one new-conversation alert");
}
#[tokio::test]
async fn a_provider_outage_leaves_every_reply_visibly_unconfirmed_and_a_retry_sends_each_once() {
    let fake = FakeTexting::start().await;
    let sender = sender(&fake).await;
    let api = Api::from(TestStore::open(StoreKind::Memory).await);
    let mut replies = Vec::new();
    for i in 0..3 {
        let p = Api::practice_id();
        let owner = format!("+1201555012{i}");
        let id = api
            .texted_conversation(&p, &format!("+1201555010{i}"), &owner)
            .await;
        let r = api.staff_reply(&p, &id, &format!("Reply {i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        replies.push((p, id, owner, r.body["id"].as_str().unwrap().to_owned()));
    }
    // End User Messaging answers 5xx to every call: each reply is unconfirmed (the provider may have it),
    // none shown as sent, none resent by itself.
    fake.outage(Behaviour::ServerError, 3);
    api.deliver_texts_with(&sender).await;
    api.deliver_texts_with(&sender).await;
    for (p, id, _, _) in &replies {
        assert_eq!(delivery(&api, p, id).await["status"], "unconfirmed");
    }
    assert_eq!(fake.sms().len(), 3, "one call each, no silent resend");
    // After the outage, staff retry each: one new send each, delivered once.
    for (p, id, _, message) in &replies {
        let r = api.retry_text(p, id, message).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }
    api.deliver_texts_with(&sender).await;
    let sent = fake.sms();
    for (p, id, owner, _) in &replies {
        assert_eq!(delivery(&api, p, id).await["status"], "sent");
        let to_owner: Vec<_> = sent.iter().filter(|s| &s.destination == owner).collect();
        assert_eq!(to_owner.len(), 2, "{owner}: the refused call and the retry");
        assert_eq!(
            to_owner[1]
                .context
                .get(context::ATTEMPT)
                .map(String::as_str),
            Some("2")
        );
    }
}

/// Every way a send can go wrong at once, over 14 replies: End User Messaging accepting, answering 5xx,
/// throttling, refusing the number, stalling; a sender killed after claiming; a stream record that never
/// reached a sender. After one delivery pass and one sweep (its clock past `SWEEP_AFTER`), every reply stands
/// where a user would expect, none left `queued` or `sending`, and End User Messaging got at most one call
/// per reply.
#[tokio::test]
async fn every_reply_ends_sent_or_visibly_failed_or_unconfirmed_and_none_is_sent_twice() {
    use domain::conversation::{DeliveryEvent, DeliveryStatus};
    use domain::store::TextRef;
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Fate {
        Provider(Behaviour),
        KilledSender,
        LostRecord,
    }
    let fates = [
        Fate::Provider(Behaviour::Accept),
        Fate::Provider(Behaviour::ServerError),
        Fate::Provider(Behaviour::Throttle),
        Fate::Provider(Behaviour::Invalid),
        Fate::Provider(Behaviour::OptedOut),
        Fate::Provider(Behaviour::Stall),
        Fate::KilledSender,
    ];
    let fake = FakeTexting::start().await;
    let sender = sender(&fake).await;
    let api = Api::from(TestStore::open(StoreKind::Memory).await);
    let mut replies = Vec::new();
    for (i, fate) in fates.iter().chain(&[Fate::LostRecord; 7]).enumerate() {
        let p = Api::practice_id();
        let owner = format!("+1201555{:04}", 2000 + i);
        let id = api
            .texted_conversation(&p, &format!("+1201555{:04}", 3000 + i), &owner)
            .await;
        api.deliver_texts_with(&sender).await; // nothing queued yet: the client's text is no reply
        let r = api.staff_reply(&p, &id, &format!("Reply {i}")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let text = TextRef {
            practice_id: domain::identity::PracticeId::parse(&p).unwrap(),
            conversation_id: domain::conversation::ConversationId(id.clone()),
            seq: r.body["seq"].as_u64().unwrap(),
        };
        match fate {
            Fate::Provider(b) => fake.set(&owner, *b),
            Fate::KilledSender => {
                let claim =
                    DeliveryEvent::new(DeliveryStatus::Sending, chrono::Utc::now(), Some(1));
                api.store
                    .apply_delivery_event(&text, &claim)
                    .await
                    .expect("claim")
                    .expect("claimed");
            }
            Fate::LostRecord => {}
        }
        if *fate == Fate::LostRecord {
            api.lose_changes().await;
        } else {
            api.deliver_texts_with(&sender).await;
        }
        replies.push((p, id, owner, *fate));
    }
    let later = || chrono::Utc::now() + domain::texting::SWEEP_AFTER + chrono::Duration::seconds(1);
    let report = domain::texting::sweep_texts(api.store.as_ref(), &sender, &later)
        .await
        .expect("sweep");
    assert_eq!(
        (report.stuck, report.sent, report.unconfirmed),
        (8, 7, 1),
        "{report:?}"
    );

    let sent = fake.sms();
    for (p, id, owner, fate) in &replies {
        let d = delivery(&api, p, id).await;
        let expected = match fate {
            Fate::Provider(Behaviour::Accept) | Fate::LostRecord => (json!("sent"), Value::Null),
            Fate::Provider(Behaviour::ServerError)
            | Fate::Provider(Behaviour::Stall)
            | Fate::KilledSender => (json!("unconfirmed"), Value::Null),
            Fate::Provider(Behaviour::Throttle) => (json!("failed"), json!("throttled_too_long")),
            Fate::Provider(Behaviour::Invalid) => (json!("failed"), json!("invalid_number")),
            Fate::Provider(Behaviour::OptedOut) => (json!("failed"), json!("opted_out")),
        };
        assert_eq!(
            (d["status"].clone(), d["reason"].clone()),
            expected,
            "{fate:?}"
        );
        let calls = sent.iter().filter(|s| &s.destination == owner).count();
        let expected_calls = usize::from(*fate != Fate::KilledSender);
        assert_eq!(calls, expected_calls, "{fate:?}: calls to {owner}");
    }
}
