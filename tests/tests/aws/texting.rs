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
