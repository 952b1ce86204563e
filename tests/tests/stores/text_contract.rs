//! The storage contract for text replies (`domain::store::TextOutbox`), run on every store: the reply's
//! message item carries its `delivery`, found by its `TextRef` (what the send's context carries), changed by
//! status events under the domain's rule, concurrently, and replaced by a staff retry only from what was read.
//! DynamoDB's request budgets at the end.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use domain::conversation::{
    self, Channel, Delivery, DeliveryEvent, DeliveryStatus, FailureReason, StartInput,
};
use domain::identity::{Caller, DepartmentId, Ids, Role};
use domain::practice::Practice;
use domain::store::{Store, StoreError, TextRef};
use domain::texting::{sweep_texts, SweepReport, SWEEP_AFTER};
use vetchat_tests::{default_department, fresh_dynamo_store, sample_practice, t0, with_numbers};

type DynStore = Arc<dyn Store>;

vetchat_tests::on_every_store!(
    a_text_reply_is_stored_with_its_delivery_and_found_by_its_ref,
    status_events_in_any_order_end_where_the_domain_rule_says,
    concurrent_claims_of_one_text_let_exactly_one_sender_send,
    chatwoot_14120_a_retry_queues_one_new_attempt_from_what_was_read,
    whatsapp_free_form_replies_go_out_only_within_24_hours_of_the_clients_last_message,
    a_text_reply_carries_the_number_the_client_wrote_to,
    the_texts_in_flight_are_those_waiting_for_or_with_a_sender,
    the_sweep_sends_a_text_no_sender_claimed_once,
    a_text_left_sending_by_a_killed_sender_becomes_unconfirmed_never_resent,
);

struct TestIds;

impl Ids for TestIds {
    fn next(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}_t{:010}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

fn staff(practice: &Practice) -> Caller {
    Caller {
        sub: "staff-1".into(),
        practice_id: practice.id.clone(),
        role: Role::Staff,
    }
}

async fn setup(store: &DynStore) -> Practice {
    let mut practice = with_numbers(sample_practice(), &["+12015550100"]);
    practice.default_department_id = DepartmentId::default_for(&practice.id);
    let default = default_department(&practice);
    store
        .create_practice(&practice, &default)
        .await
        .expect("create practice");
    practice
}

/// A staff-started conversation on `channel`: its first message is a staff reply (seq 1).
async fn started(store: &DynStore, practice: &Practice, channel: Channel, to: &str) -> TextRef {
    let c = conversation::staff_start(
        store.as_ref(),
        &staff(practice),
        StartInput {
            department_id: practice.default_department_id.clone(),
            client_id: to.into(),
            body: "Rex's vaccines are due".into(),
            channel: Some(channel),
        },
        t0(),
        &TestIds,
    )
    .await
    .expect("staff_start");
    TextRef {
        practice_id: practice.id.clone(),
        conversation_id: c.id,
        seq: 1,
    }
}

fn at(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}

async fn a_text_reply_is_stored_with_its_delivery_and_found_by_its_ref(store: DynStore) {
    let practice = setup(&store).await;
    let text = started(&store, &practice, Channel::Sms, "+12015550111").await;
    let found = store.get_text(&text).await.expect("get").expect("a text");
    assert_eq!(found.client_id, "+12015550111");
    assert_eq!(found.message.seq, 1);
    assert_eq!(
        found.message.delivery,
        Some(Delivery::queued(Some(1), t0()))
    );
    // An app conversation's message is no text.
    let app = started(&store, &practice, Channel::App, "owner-1").await;
    assert_eq!(store.get_text(&app).await.expect("get"), None);
    // Nor is a message that is not there, or another practice's.
    let missing = TextRef {
        seq: 2,
        ..text.clone()
    };
    assert_eq!(store.get_text(&missing).await.expect("get"), None);
    let foreign = TextRef {
        practice_id: sample_practice().id,
        ..text.clone()
    };
    assert_eq!(store.get_text(&foreign).await.expect("get"), None);
    let event = DeliveryEvent::new(DeliveryStatus::Sending, at(1), Some(1));
    assert_eq!(
        store
            .apply_delivery_event(&foreign, &event)
            .await
            .expect("apply"),
        None
    );
}

async fn status_events_in_any_order_end_where_the_domain_rule_says(store: DynStore) {
    let practice = setup(&store).await;
    let events = [
        DeliveryEvent::new(DeliveryStatus::Sending, at(1), Some(1)),
        DeliveryEvent::new(DeliveryStatus::Sent, at(2), Some(1)),
        DeliveryEvent::failed(FailureReason::CarrierUnreachable, at(3), Some(1)),
        DeliveryEvent::new(DeliveryStatus::Unconfirmed, at(4), Some(1)),
        DeliveryEvent::new(DeliveryStatus::Delivered, at(5), Some(1)),
    ];
    // Every order of four of them, and the lot repeated: each store ends where the rule does.
    let orders: Vec<Vec<usize>> = vec![
        vec![0, 1, 2, 3],
        vec![3, 2, 1, 0],
        vec![1, 3, 0, 2, 2, 1],
        vec![2, 0, 1, 3],
        vec![4, 1, 0, 2, 3],
        vec![0, 2, 4, 1, 4],
    ];
    for (i, order) in orders.iter().enumerate() {
        let text = started(&store, &practice, Channel::Sms, &format!("+1201555012{i}")).await;
        let mut expected = Delivery::queued(Some(1), t0());
        for &e in order {
            let applied = store
                .apply_delivery_event(&text, &events[e])
                .await
                .expect("apply");
            match expected.apply(&events[e]) {
                Some(next) => {
                    assert_eq!(
                        applied.map(|t| t.message.delivery),
                        Some(Some(next.clone())),
                        "order {order:?}, event {e}"
                    );
                    expected = next;
                }
                None => assert_eq!(applied, None, "order {order:?}, event {e} changes nothing"),
            }
        }
        let stored = store.get_text(&text).await.expect("get").expect("text");
        assert_eq!(stored.message.delivery, Some(expected), "order {order:?}");
    }
}

async fn concurrent_claims_of_one_text_let_exactly_one_sender_send(store: DynStore) {
    let practice = setup(&store).await;
    let text = started(&store, &practice, Channel::Sms, "+12015550111").await;
    let claims = (0..8).map(|i| {
        let (store, text) = (store.clone(), text.clone());
        tokio::spawn(async move {
            let claim = DeliveryEvent::new(DeliveryStatus::Sending, at(i), Some(1));
            store.apply_delivery_event(&text, &claim).await
        })
    });
    let won = futures_util::future::join_all(claims)
        .await
        .into_iter()
        .map(|r| r.expect("task").expect("apply"))
        .filter(Option::is_some)
        .count();
    assert_eq!(won, 1, "one claim wins, the others see it taken");
}

async fn chatwoot_14120_a_retry_queues_one_new_attempt_from_what_was_read(store: DynStore) {
    let practice = setup(&store).await;
    let text = started(&store, &practice, Channel::Sms, "+12015550111").await;
    let failed = store
        .apply_delivery_event(
            &text,
            &DeliveryEvent::failed(FailureReason::ProviderError, at(1), Some(1)),
        )
        .await
        .expect("apply")
        .expect("failed")
        .message
        .delivery
        .expect("delivery");
    let again = failed.retry(at(2)).expect("retryable");
    let retried = store
        .replace_delivery(&text, &failed, &again)
        .await
        .expect("retry");
    assert_eq!(retried.message.delivery, Some(again.clone()));
    assert_eq!(again.status, DeliveryStatus::Queued);
    // A second retry from the same read (a double click) finds it moved.
    assert_eq!(
        store.replace_delivery(&text, &failed, &again).await,
        Err(StoreError::VersionMismatch)
    );
    // The first attempt's late failure leaves the new attempt queued; its claim is attempt 2's.
    let late = DeliveryEvent::failed(FailureReason::Expired, at(3), Some(1));
    assert_eq!(
        store
            .apply_delivery_event(&text, &late)
            .await
            .expect("apply"),
        None
    );
    let claim = DeliveryEvent::new(DeliveryStatus::Sending, at(4), Some(2));
    let claimed = store
        .apply_delivery_event(&text, &claim)
        .await
        .expect("apply")
        .expect("claimed");
    assert_eq!(
        claimed.message.delivery.map(|d| (d.status, d.attempt)),
        Some((DeliveryStatus::Sending, 2))
    );
    let missing = TextRef { seq: 9, ..text };
    assert_eq!(
        store.replace_delivery(&missing, &failed, &again).await,
        Err(StoreError::NotFound)
    );
}

const WA_ID: &str = "phone-number-id-0123456789abcdef0123456789abcdef";

/// A practice with a WhatsApp number, and a WhatsApp message of its client's at `at` (the conversation).
async fn whatsapp_conversation(
    store: &DynStore,
    at: DateTime<Utc>,
) -> (Practice, conversation::ConversationId) {
    let mut practice = sample_practice();
    practice.default_department_id = DepartmentId::default_for(&practice.id);
    practice.whatsapp_numbers = vec![domain::practice::WhatsappNumber {
        phone_number_id: WA_ID.into(),
        number: "+12015550100".into(),
    }];
    let default = default_department(&practice);
    store
        .create_practice(&practice, &default)
        .await
        .expect("create practice");
    let routed = write_on_whatsapp(store, &practice, at).await;
    (practice, routed)
}

async fn write_on_whatsapp(
    store: &DynStore,
    practice: &Practice,
    at: DateTime<Utc>,
) -> conversation::ConversationId {
    let inbound = conversation::Inbound {
        practice_id: practice.id.clone(),
        channel: Channel::Whatsapp,
        client_id: "+14255550150".into(),
        department_id: None,
        to: Some(WA_ID.into()),
        body: "Is Rex ok?".into(),
        dedup_key: None,
        rate_limits: None,
    };
    conversation::route_inbound(store.as_ref(), inbound, at, &TestIds)
        .await
        .expect("route")
        .conversation_id
        .expect("a conversation")
}

async fn whatsapp_reply(
    store: &DynStore,
    practice: &Practice,
    id: &conversation::ConversationId,
    at: DateTime<Utc>,
) -> domain::DomainResult<conversation::Message> {
    conversation::staff_reply(
        store.as_ref(),
        &staff(practice),
        id,
        "Rex is fine",
        at,
        &TestIds,
    )
    .await
}

fn window_closed(result: &domain::DomainResult<conversation::Message>) -> bool {
    matches!(
        result,
        Err(domain::DomainError::Conflict {
            code: domain::ConflictCode::WhatsappWindowClosed,
            ..
        })
    )
}

async fn message_count(
    store: &DynStore,
    practice: &Practice,
    id: &conversation::ConversationId,
) -> usize {
    store
        .conversation_detail(&practice.id, id, domain::store::MessageRange::ALL)
        .await
        .expect("detail")
        .expect("the conversation")
        .messages
        .len()
}

async fn whatsapp_free_form_replies_go_out_only_within_24_hours_of_the_clients_last_message(
    store: DynStore,
) {
    let hours = |h: i64| t0() + Duration::hours(h);
    let (practice, id) = whatsapp_conversation(&store, hours(0)).await;
    let inside = whatsapp_reply(&store, &practice, &id, hours(24))
        .await
        .expect("inside the window");
    assert_eq!(
        inside.delivery.as_ref().map(|d| d.status),
        Some(DeliveryStatus::Queued)
    );
    // A second past 24 hours: refused, and nothing stored (so nothing is sent).
    let late = whatsapp_reply(&store, &practice, &id, hours(24) + Duration::seconds(1)).await;
    assert!(window_closed(&late), "{late:?}");
    assert_eq!(message_count(&store, &practice, &id).await, 2);
    // Staff reading the conversation see when the client last wrote.
    let c = store
        .get_conversation(&practice.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.last_whatsapp_at, Some(hours(0)));
    // The reply inside the window failed; its retry two days later is refused too, and it stays failed.
    let text = TextRef::of(&practice.id, &inside);
    store
        .apply_delivery_event(
            &text,
            &DeliveryEvent::failed(FailureReason::ProviderError, hours(25), Some(1)),
        )
        .await
        .expect("apply")
        .expect("failed");
    let retry = conversation::retry_text(
        store.as_ref(),
        &staff(&practice),
        &id,
        &inside.id,
        hours(48),
    )
    .await;
    assert!(window_closed(&retry), "{retry:?}");
    let d = store
        .get_text(&text)
        .await
        .unwrap()
        .unwrap()
        .message
        .delivery
        .unwrap();
    assert_eq!((d.status, d.attempt), (DeliveryStatus::Failed, 1));
    // The client writes again (joining the conversation): the window opens from that message.
    assert_eq!(write_on_whatsapp(&store, &practice, hours(50)).await, id);
    let c = store
        .get_conversation(&practice.id, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.last_whatsapp_at, Some(hours(50)));
    whatsapp_reply(&store, &practice, &id, hours(73))
        .await
        .expect("inside the new window");
    let retried = conversation::retry_text(
        store.as_ref(),
        &staff(&practice),
        &id,
        &inside.id,
        hours(73),
    )
    .await
    .expect("the retry inside the new window");
    assert_eq!(
        retried.delivery.map(|d| (d.status, d.attempt)),
        Some((DeliveryStatus::Queued, 2))
    );
}

async fn a_text_reply_carries_the_number_the_client_wrote_to(store: DynStore) {
    let (practice, id) = whatsapp_conversation(&store, t0()).await;
    let reply = whatsapp_reply(&store, &practice, &id, at(60))
        .await
        .expect("reply");
    let found = store
        .get_text(&TextRef::of(&practice.id, &reply))
        .await
        .expect("get")
        .expect("a text");
    assert_eq!(found.reply_from.as_deref(), Some(WA_ID));
    assert_eq!(found.client_id, "+14255550150");
    assert_eq!(found.message.channel, Channel::Whatsapp);
}

/// The in-flight texts of `practice` queued before `before`, as (seq, status).
async fn in_flight(
    store: &DynStore,
    practice: &Practice,
    before: DateTime<Utc>,
) -> Vec<(TextRef, DeliveryStatus)> {
    store
        .texts_in_flight(before, 100)
        .await
        .expect("texts_in_flight")
        .into_iter()
        .filter(|(t, _)| t.practice_id == practice.id)
        .map(|(t, d)| (t, d.status))
        .collect()
}

async fn the_texts_in_flight_are_those_waiting_for_or_with_a_sender(store: DynStore) {
    let practice = setup(&store).await;
    let first = started(&store, &practice, Channel::Sms, "+12015550111").await;
    let second = started(&store, &practice, Channel::Sms, "+12015550112").await;
    started(&store, &practice, Channel::App, "owner-1").await;
    // Both queued at t0: listed (oldest first) when asked for those queued before t0 + 1 s, not before t0.
    let listed = in_flight(&store, &practice, at(1)).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|(_, s)| *s == DeliveryStatus::Queued));
    assert!(in_flight(&store, &practice, t0()).await.is_empty());
    // Claimed: still in flight, now sending. Answered: gone.
    let claim = DeliveryEvent::new(DeliveryStatus::Sending, at(2), Some(1));
    store
        .apply_delivery_event(&first, &claim)
        .await
        .expect("claim");
    let sent = DeliveryEvent::new(DeliveryStatus::Sent, at(3), Some(1));
    store
        .apply_delivery_event(&second, &claim)
        .await
        .expect("claim");
    store
        .apply_delivery_event(&second, &sent)
        .await
        .expect("sent");
    assert_eq!(
        in_flight(&store, &practice, at(10)).await,
        vec![(first.clone(), DeliveryStatus::Sending)]
    );
    let failed = DeliveryEvent::failed(FailureReason::ProviderError, at(4), Some(1));
    let failed = store
        .apply_delivery_event(&first, &failed)
        .await
        .expect("fail")
        .expect("failed")
        .message
        .delivery
        .expect("delivery");
    assert!(in_flight(&store, &practice, at(10)).await.is_empty());
    // A staff retry puts it back, as queued at the retry.
    let again = failed.retry(at(20)).expect("retryable");
    store
        .replace_delivery(&first, &failed, &again)
        .await
        .expect("retry");
    assert!(in_flight(&store, &practice, at(20)).await.is_empty());
    assert_eq!(
        in_flight(&store, &practice, at(21)).await,
        vec![(first, DeliveryStatus::Queued)]
    );
}

async fn the_sweep_sends_a_text_no_sender_claimed_once(store: DynStore) {
    let practice = setup(&store).await;
    // Stored, and its stream record never reached a sender (lost, or parked on the dead-letter queue).
    let text = started(&store, &practice, Channel::Sms, "+12015550111").await;
    let provider = adapters::senders::RecordingSender::new();
    // Within SWEEP_AFTER a sender may still be on its way: left alone.
    let early = || t0() + SWEEP_AFTER - Duration::seconds(1);
    let report = sweep_texts(store.as_ref(), &provider, &early)
        .await
        .expect("sweep");
    assert_eq!(report, SweepReport::default());
    assert!(provider.replies().is_empty());
    // Past it: sent once, from the practice number, and no longer in flight.
    let late = || t0() + SWEEP_AFTER + Duration::seconds(1);
    let report = sweep_texts(store.as_ref(), &provider, &late)
        .await
        .expect("sweep");
    assert_eq!((report.stuck, report.sent, report.unconfirmed), (1, 1, 0));
    let replies = provider.replies();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        (replies[0].to.as_str(), replies[0].from.as_str()),
        ("+12015550111", "+12015550100")
    );
    let stored = store.get_text(&text).await.expect("get").expect("text");
    assert_eq!(
        stored.message.delivery.map(|d| d.status),
        Some(DeliveryStatus::Sent)
    );
    // The next sweeps, and the stream record arriving at last, send nothing more.
    let report = sweep_texts(store.as_ref(), &provider, &late)
        .await
        .expect("sweep");
    assert_eq!(report, SweepReport::default());
    let resent = domain::texting::send_text(store.as_ref(), &provider, &text, &late)
        .await
        .expect("send_text");
    assert_eq!(resent, domain::texting::SendReport::NothingToSend);
    assert_eq!(provider.replies().len(), 1);
}

async fn a_text_left_sending_by_a_killed_sender_becomes_unconfirmed_never_resent(store: DynStore) {
    let practice = setup(&store).await;
    let text = started(&store, &practice, Channel::Sms, "+12015550111").await;
    // A sender claimed it at t0 + 5 s and was killed before recording the provider's answer.
    let claim = DeliveryEvent::new(DeliveryStatus::Sending, at(5), Some(1));
    store
        .apply_delivery_event(&text, &claim)
        .await
        .expect("claim");
    let provider = adapters::senders::RecordingSender::new();
    // The claim is younger than SWEEP_AFTER (the text was queued before it): the sender may be alive.
    let soon = || at(5) + SWEEP_AFTER - Duration::seconds(1);
    let report = sweep_texts(store.as_ref(), &provider, &soon)
        .await
        .expect("sweep");
    assert_eq!(report, SweepReport::default());
    let stored = store.get_text(&text).await.expect("get").expect("text");
    assert_eq!(
        stored.message.delivery.map(|d| d.status),
        Some(DeliveryStatus::Sending)
    );
    // Past it: unconfirmed (the provider may have it), nothing sent, out of flight.
    let late = || at(5) + SWEEP_AFTER + Duration::seconds(1);
    let report = sweep_texts(store.as_ref(), &provider, &late)
        .await
        .expect("sweep");
    assert_eq!((report.stuck, report.sent, report.unconfirmed), (1, 0, 1));
    assert!(
        provider.replies().is_empty(),
        "an ambiguous send is never repeated by the sweep"
    );
    let delivery = store
        .get_text(&text)
        .await
        .expect("get")
        .expect("text")
        .message
        .delivery
        .expect("delivery");
    assert_eq!(
        (delivery.status, delivery.reason),
        (DeliveryStatus::Unconfirmed, None)
    );
    assert!(in_flight(&store, &practice, late()).await.is_empty());
    // The killed sender's provider did deliver it after all: the owner has it.
    let delivered = DeliveryEvent::new(DeliveryStatus::Delivered, late(), Some(1));
    let after = store
        .apply_delivery_event(&text, &delivered)
        .await
        .expect("apply")
        .expect("changed");
    assert_eq!(
        after.message.delivery.map(|d| d.status),
        Some(DeliveryStatus::Delivered)
    );
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB only: request budgets
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn dynamo_a_staff_text_reply_and_a_status_event_stay_within_budget() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let store: DynStore = dynamo.clone();
    let practice = setup(&store).await;
    let text = started(&store, &practice, Channel::Sms, "+12015550111").await;

    dynamo.request_counter().reset();
    let reply = conversation::staff_reply(
        store.as_ref(),
        &staff(&practice),
        &text.conversation_id,
        "Ready at 5",
        at(1),
        &TestIds,
    )
    .await
    .expect("reply");
    assert_eq!(
        reply.delivery.map(|d| d.status),
        Some(DeliveryStatus::Queued)
    );
    let counts = dynamo.request_counts();
    assert_eq!(
        (
            counts.get("GetItem"),
            counts.get("TransactWriteItems"),
            counts.len()
        ),
        (Some(&1), Some(&1), 2),
        "a staff reply by text: 1 read + 1 transactional write, {counts:?}"
    );

    for event in [
        DeliveryEvent::new(DeliveryStatus::Delivered, at(2), Some(1)),
        // Late, and so refused by the condition: still one request.
        DeliveryEvent::new(DeliveryStatus::Sent, at(3), Some(1)),
    ] {
        dynamo.request_counter().reset();
        store
            .apply_delivery_event(&text, &event)
            .await
            .expect("apply");
        let counts = dynamo.request_counts();
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            vec![("UpdateItem".to_owned(), 1)],
            "a status event: 1 conditional write"
        );
    }
}

#[tokio::test]
async fn dynamo_a_whatsapp_reply_inside_or_outside_the_window_stays_within_budget() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let store: DynStore = dynamo.clone();
    let (practice, id) = whatsapp_conversation(&store, t0()).await;
    dynamo.request_counter().reset();
    whatsapp_reply(&store, &practice, &id, at(60))
        .await
        .expect("reply");
    let counts = dynamo.request_counts();
    assert_eq!(
        (
            counts.get("GetItem"),
            counts.get("TransactWriteItems"),
            counts.len()
        ),
        (Some(&1), Some(&1), 2),
        "a WhatsApp reply: 1 read + 1 transactional write, {counts:?}"
    );
    dynamo.request_counter().reset();
    let late = whatsapp_reply(&store, &practice, &id, t0() + Duration::hours(25)).await;
    assert!(window_closed(&late));
    let counts = dynamo.request_counts();
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        vec![("GetItem".to_owned(), 1)],
        "refused after the one read: no write"
    );
}
