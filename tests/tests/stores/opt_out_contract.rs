//! The storage contract for opt-outs and the after-hours text, run on every store: a number's opt-out
//! record per practice (read with the routing context, written in the keyword's own write with the open
//! conversation's copy `sms_opted_out_at`, checked as read by the writes that copy it), the provider's
//! refusal recorded once, and the after-hours text once per conversation per closed period. Through
//! `domain::conversation` where the functions go through it. DynamoDB's layout and budgets at the end.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use adapters::store::DynamoStore;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::conversation::{
    self, Author, AutoReplyKind, Channel, ConversationId, Inbound, Outcome, Routed, StartInput,
};
use domain::error::{ConflictCode, DomainError};
use domain::identity::{Caller, DepartmentId, Ids, Role};
use domain::practice::Practice;
use domain::store::{MessageRange, OptKeywordWrite, Store, StoreError, TextRef};
use vetchat_tests::{default_department, fresh_dynamo_store, sample_practice, t0, TestStore};

type DynStore = Arc<dyn Store>;

vetchat_tests::on_every_store!(
    a_keyword_opts_the_number_out_of_one_practice_and_start_opts_it_back_in,
    a_keyword_joins_the_open_conversation_and_sets_its_copy_in_the_same_write,
    writes_that_copy_the_record_fail_when_it_changed_since_the_read,
    the_providers_refusal_is_recorded_once_with_its_first_instant,
    a_text_gets_the_after_hours_text_once_per_closed_period,
    a_stop_racing_the_first_text_leaves_the_conversation_showing_the_opt_out,
    a_transferred_conversation_gets_its_new_departments_after_hours_text,
);

const NUMBER: &str = "+12015550111";

struct TestIds;

impl Ids for TestIds {
    fn next(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}_o{:010}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A practice in New York whose default department keeps the default hours (09:00–18:00 on weekdays).
async fn setup(store: &DynStore) -> Practice {
    let mut practice = sample_practice();
    practice.default_department_id = DepartmentId::default_for(&practice.id);
    store
        .create_practice(&practice, &default_department(&practice))
        .await
        .expect("create practice");
    practice
}

/// A New York wall-clock instant in March 2026 (EST, UTC-5): `ny(2, 18, 30)` is Monday 2 March, 18:30.
fn ny(day: u32, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 3, day, h, m, 0)
        .single()
        .expect("a New York instant")
        .with_timezone(&Utc)
}

fn text(practice: &Practice, body: &str) -> Inbound {
    text_from(practice, NUMBER, body)
}

fn text_from(practice: &Practice, number: &str, body: &str) -> Inbound {
    Inbound {
        practice_id: practice.id.clone(),
        channel: Channel::Sms,
        client_id: number.into(),
        department_id: None,
        to: None,
        body: body.into(),
        dedup_key: None,
        rate_limits: None,
    }
}

async fn route(store: &DynStore, practice: &Practice, body: &str, at: DateTime<Utc>) -> Routed {
    conversation::route_inbound(store.as_ref(), text(practice, body), at, &TestIds)
        .await
        .expect("route_inbound")
}

async fn opted_out_at(store: &DynStore, practice: &Practice) -> Option<DateTime<Utc>> {
    store
        .routing_context(&practice.id, NUMBER, &practice.default_department_id)
        .await
        .expect("routing_context")
        .sms_opted_out_at
}

async fn copy_on(
    store: &DynStore,
    practice: &Practice,
    id: &ConversationId,
) -> Option<DateTime<Utc>> {
    store
        .get_conversation(&practice.id, id)
        .await
        .expect("get_conversation")
        .expect("the conversation")
        .sms_opted_out_at
}

fn staff(practice: &Practice) -> Caller {
    Caller {
        sub: "staff-1".into(),
        practice_id: practice.id.clone(),
        role: Role::Staff,
    }
}

async fn a_keyword_opts_the_number_out_of_one_practice_and_start_opts_it_back_in(t: TestStore) {
    let store = t.store();
    let (a, b) = (setup(&store).await, setup(&store).await);
    let stop = route(&store, &a, "STOP", t0()).await;
    assert_eq!(
        (stop.conversation_id, stop.outcome, stop.opted_out_at),
        (None, Outcome::OptedOut, Some(t0()))
    );
    assert_eq!(opted_out_at(&store, &a).await, Some(t0()));
    assert_eq!(opted_out_at(&store, &b).await, None, "another practice");
    // Stored nowhere else: no conversation, no alert.
    let ctx = store
        .routing_context(&a.id, NUMBER, &a.default_department_id)
        .await
        .unwrap();
    assert_eq!(ctx.open_conversation, None);
    assert_eq!(ctx.department.map(|d| d.open_conversations), Some(0));
    // Again later: the first instant stays.
    route(&store, &a, "stop", t0() + Duration::hours(1)).await;
    assert_eq!(opted_out_at(&store, &a).await, Some(t0()));
    let start = route(&store, &a, "Start", t0() + Duration::hours(2)).await;
    assert_eq!(
        (start.outcome, start.opted_out_at),
        (Outcome::OptedIn, None)
    );
    assert_eq!(opted_out_at(&store, &a).await, None);
}

async fn a_keyword_joins_the_open_conversation_and_sets_its_copy_in_the_same_write(t: TestStore) {
    let store = t.store();
    let practice = setup(&store).await;
    let first = route(&store, &practice, "Is Rex ready?", t0()).await;
    let id = first.conversation_id.expect("a conversation");
    let at = t0() + Duration::minutes(1);
    let stop = route(&store, &practice, "STOP", at).await;
    assert_eq!(
        (stop.conversation_id.as_ref(), stop.new_conversation),
        (Some(&id), false)
    );
    assert_eq!(copy_on(&store, &practice, &id).await, Some(at));
    assert_eq!(opted_out_at(&store, &practice).await, Some(at));
    // The keyword took the next seq on both copies of `last_seq`: the next message follows it.
    let hello = route(&store, &practice, "hello?", at + Duration::minutes(1)).await;
    assert_eq!(hello.conversation_id.as_ref(), Some(&id));
    let detail = store
        .conversation_detail(&practice.id, &id, MessageRange::ALL)
        .await
        .unwrap()
        .unwrap();
    let seqs: Vec<(u64, &str)> = detail
        .messages
        .iter()
        .map(|m| (m.seq, m.body.as_str()))
        .collect();
    assert_eq!(seqs, [(1, "Is Rex ready?"), (2, "STOP"), (3, "hello?")]);
    // A staff reply is refused from the conversation item alone.
    let refused =
        conversation::staff_reply(store.as_ref(), &staff(&practice), &id, "Hi", at, &TestIds).await;
    assert!(
        matches!(
            &refused,
            Err(DomainError::Conflict {
                code: ConflictCode::SmsOptedOut,
                ..
            })
        ),
        "{refused:?}"
    );
    route(&store, &practice, "UNSTOP", at + Duration::minutes(2)).await;
    assert_eq!(copy_on(&store, &practice, &id).await, None);
    assert_eq!(opted_out_at(&store, &practice).await, None);
    let reply =
        conversation::staff_reply(store.as_ref(), &staff(&practice), &id, "Hi", at, &TestIds).await;
    assert_eq!(reply.expect("a reply again").seq, 5);
}

async fn writes_that_copy_the_record_fail_when_it_changed_since_the_read(t: TestStore) {
    let store = t.store();
    let practice = setup(&store).await;
    let stop = |read: Option<DateTime<Utc>>| OptKeywordWrite {
        practice_id: practice.id.clone(),
        number: NUMBER.into(),
        opted_out_at: Some(t0()),
        read,
        joins: None,
        dedup_key: None,
        received_at: t0(),
    };
    assert_eq!(store.record_opt_keyword(&stop(None)).await, Ok(()));
    // Read before that STOP: refused, the record kept.
    let stale = OptKeywordWrite {
        opted_out_at: None,
        ..stop(None)
    };
    assert_eq!(
        store.record_opt_keyword(&stale).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(opted_out_at(&store, &practice).await, Some(t0()));
    // A conversation started from a read without the opt-out is refused and nothing is written; the
    // domain reads again and starts it with the copy.
    let c = conversation::staff_start(
        store.as_ref(),
        &staff(&practice),
        StartInput {
            department_id: practice.default_department_id.clone(),
            client_id: NUMBER.into(),
            body: "Rex's vaccines are due".into(),
            channel: Some(Channel::App),
        },
        t0(),
        &TestIds,
    )
    .await
    .expect("an app conversation with the same id is not a text");
    assert_eq!(c.sms_opted_out_at, None);
    conversation::end_conversation(store.as_ref(), &staff(&practice), &c.id, t0())
        .await
        .unwrap();
    let started = route(&store, &practice, "hello", t0() + Duration::minutes(1)).await;
    let id = started.conversation_id.expect("a conversation");
    assert_eq!(copy_on(&store, &practice, &id).await, Some(t0()));
    let mut stale_start = store
        .get_conversation(&practice.id, &id)
        .await
        .unwrap()
        .unwrap();
    stale_start.id = ConversationId("cnv_stale".into());
    stale_start.client_id = "+12015550122".into();
    let other = OptKeywordWrite {
        number: "+12015550122".into(),
        ..stop(None)
    };
    store.record_opt_keyword(&other).await.unwrap();
    stale_start.sms_opted_out_at = None;
    let new = domain::store::NewConversation {
        conversation: stale_start,
        messages: vec![],
        alert: None,
        dedup_key: None,
        rate: None,
    };
    assert_eq!(
        store.start_conversation(&new).await,
        Err(StoreError::VersionMismatch)
    );
    let ctx = store
        .routing_context(
            &practice.id,
            "+12015550122",
            &practice.default_department_id,
        )
        .await
        .unwrap();
    assert_eq!(ctx.open_conversation, None, "nothing written");
    // A keyword read without a conversation, when one started meanwhile: refused.
    let late = OptKeywordWrite {
        read: Some(t0()),
        ..stop(Some(t0()))
    };
    assert_eq!(
        store.record_opt_keyword(&late).await,
        Err(StoreError::ClientHasOpenConversation)
    );
}

async fn the_providers_refusal_is_recorded_once_with_its_first_instant(t: TestStore) {
    let store = t.store();
    let practice = setup(&store).await;
    let c = conversation::staff_start(
        store.as_ref(),
        &staff(&practice),
        StartInput {
            department_id: practice.default_department_id.clone(),
            client_id: NUMBER.into(),
            body: "Rex's vaccines are due".into(),
            channel: Some(Channel::Sms),
        },
        t0(),
        &TestIds,
    )
    .await
    .expect("staff_start");
    let text = TextRef {
        practice_id: practice.id.clone(),
        conversation_id: c.id.clone(),
        seq: 1,
    };
    let first = t0() + Duration::seconds(5);
    assert_eq!(
        store.record_refused_opt_out(&text, NUMBER, first).await,
        Ok(first)
    );
    // A replay, or a later refusal: the first instant stays.
    let later = first + Duration::minutes(3);
    assert_eq!(
        store.record_refused_opt_out(&text, NUMBER, later).await,
        Ok(first)
    );
    assert_eq!(opted_out_at(&store, &practice).await, Some(first));
    assert_eq!(copy_on(&store, &practice, &c.id).await, Some(first));
    // Another practice is untouched.
    let other = setup(&store).await;
    assert_eq!(opted_out_at(&store, &other).await, None);
}

/// The default hours (09:00–18:00 on weekdays, New York): texts at night, the next morning, the next night.
async fn a_text_gets_the_after_hours_text_once_per_closed_period(t: TestStore) {
    let store = t.store();
    let practice = setup(&store).await;
    let monday_night = route(&store, &practice, "Is Rex ready?", ny(2, 18, 30)).await;
    assert_eq!(monday_night.outcome, Outcome::AfterHoursMessageLeft);
    assert_eq!(monday_night.auto_replies.len(), 1);
    let id = monday_night
        .conversation_id
        .clone()
        .expect("a conversation");
    let answers = [
        route(&store, &practice, "Hello?", ny(2, 19, 0)).await,
        route(&store, &practice, "Anyone?", ny(2, 23, 59)).await,
        route(&store, &practice, "Still there?", ny(3, 6, 0)).await,
        // Open: no after-hours text.
        route(&store, &practice, "Good morning", ny(3, 10, 0)).await,
        // Tuesday night is another closed period: one again, and only one.
        route(&store, &practice, "Rex is limping", ny(3, 20, 0)).await,
        route(&store, &practice, "Please call", ny(3, 21, 0)).await,
    ];
    let replies: Vec<usize> = answers.iter().map(|r| r.auto_replies.len()).collect();
    assert_eq!(replies, [0, 0, 0, 0, 1, 0]);
    assert_eq!(answers[3].outcome, Outcome::Delivered);
    assert_eq!(answers[4].outcome, Outcome::AfterHoursMessageLeft);
    let detail = store
        .conversation_detail(&practice.id, &id, MessageRange::ALL)
        .await
        .unwrap()
        .unwrap();
    let after_hours: Vec<(u64, DateTime<Utc>)> = detail
        .messages
        .iter()
        .filter(|m| {
            m.author
                == Author::Auto {
                    reply: AutoReplyKind::AfterHours,
                }
        })
        .map(|m| (m.seq, m.at))
        .collect();
    assert_eq!(after_hours.len(), 2, "{after_hours:?}");
    assert!(detail
        .messages
        .iter()
        .filter(|m| matches!(m.author, Author::Auto { .. }))
        .all(|m| m.delivery.is_some()));
    assert_eq!(
        detail.conversation.after_hours_replied_at,
        Some(after_hours[1].1),
        "the conversation remembers the last one"
    );
}

/// A STOP from a number with no conversation and its first text, at once, many times over: whichever
/// commits first, the conversation ends up showing the opt-out (the keyword's write requires the claim still
/// absent, the start the record still as read; the loser reads again).
async fn a_stop_racing_the_first_text_leaves_the_conversation_showing_the_opt_out(t: TestStore) {
    let store = t.store();
    let practice = setup(&store).await;
    for round in 0..12 {
        let number = format!("+1201555{:04}", 2000 + round);
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let go = |body: &'static str| {
            let (store, practice, number, barrier) = (
                store.clone(),
                practice.clone(),
                number.clone(),
                barrier.clone(),
            );
            tokio::spawn(async move {
                barrier.wait().await;
                let m = text_from(&practice, &number, body);
                conversation::route_inbound(store.as_ref(), m, t0(), &TestIds)
                    .await
                    .expect("route_inbound")
            })
        };
        let (stop, hello) = (go("STOP"), go("Is Rex ready?"));
        let (stop, hello) = (stop.await.unwrap(), hello.await.unwrap());
        assert_eq!(stop.outcome, Outcome::OptedOut);
        let id = hello
            .conversation_id
            .expect("the text is in a conversation");
        let record = store
            .routing_context(&practice.id, &number, &practice.default_department_id)
            .await
            .unwrap()
            .sms_opted_out_at;
        assert_eq!(record, Some(t0()), "round {round}");
        let c = store
            .get_conversation(&practice.id, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            c.sms_opted_out_at, record,
            "round {round}: the copy is the record"
        );
        // The keyword either joined the conversation or was stored nowhere else.
        assert!(
            stop.conversation_id.is_none() || stop.conversation_id.as_ref() == Some(&id),
            "round {round}: {stop:?}"
        );
    }
}

/// The after-hours text is the department's the conversation is in now: after a transfer to a department
/// closed at that hour, a text gets that department's message (the default department is open).
async fn a_transferred_conversation_gets_its_new_departments_after_hours_text(t: TestStore) {
    let store = t.store();
    let practice = setup(&store).await;
    let mut night = vetchat_tests::sample_department(&practice.id, "Night desk");
    night.settings.hours = domain::schedule::WeeklyHours::default();
    night.settings.hours.mon = None;
    night.settings.chat.after_hours_message = "The night desk answers from Tuesday.".into();
    store
        .create_department(&night)
        .await
        .expect("create department");
    // Monday 09:30 New York: the default department is open.
    let first = route(&store, &practice, "Is Rex ready?", t0()).await;
    assert_eq!(first.auto_replies, vec![]);
    let id = first.conversation_id.expect("a conversation");
    conversation::transfer_conversation(
        store.as_ref(),
        &staff(&practice),
        &id,
        conversation::TransferInput {
            department_id: night.id.clone(),
            note: None,
        },
        t0(),
        &TestIds,
    )
    .await
    .expect("transfer");
    let r = route(&store, &practice, "Hello?", t0() + Duration::minutes(1)).await;
    assert_eq!(r.department_id.as_ref(), Some(&night.id));
    assert_eq!(r.outcome, Outcome::AfterHoursMessageLeft);
    let texts: Vec<&str> = r.auto_replies.iter().map(|a| a.text.as_str()).collect();
    assert_eq!(texts, ["The night desk answers from Tuesday."]);
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB only: the item layout and the budgets
// ---------------------------------------------------------------------------------------------------------

async fn requests<F: Future>(store: &DynamoStore, f: F) -> (F::Output, BTreeMap<String, u64>) {
    store.request_counter().reset();
    let out = f.await;
    (out, store.request_counts())
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// The keyword is 1 read + 1 transaction; the staff reply keeps its budget of 1 read + 1 transaction, and
/// its refusal for the opt-out costs the read alone; the record is where the layout says.
#[tokio::test]
async fn dynamo_opt_outs_are_where_the_layout_says_within_budget() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let store: DynStore = dynamo.clone();
    let d = dynamo.as_ref();
    let practice = setup(&store).await;
    let first = route(&store, &practice, "Is Rex ready?", t0()).await;
    let id = first.conversation_id.expect("a conversation");
    let caller = staff(&practice);
    let reply = || conversation::staff_reply(store.as_ref(), &caller, &id, "Yes", t0(), &TestIds);

    let (r, n) = requests(d, reply()).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        n,
        counts(&[("GetItem", 1), ("TransactWriteItems", 1)]),
        "a staff reply"
    );

    let (r, n) = requests(
        d,
        conversation::route_inbound(store.as_ref(), text(&practice, "STOP"), t0(), &TestIds),
    )
    .await;
    assert_eq!(r.expect("routed").outcome, Outcome::OptedOut);
    assert_eq!(
        n,
        counts(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a keyword into the open conversation"
    );

    let (r, n) = requests(d, reply()).await;
    assert!(r.is_err());
    assert_eq!(
        n,
        counts(&[("GetItem", 1)]),
        "a refused reply reads and writes nothing"
    );

    let item = vetchat_tests::dynamo_client()
        .await
        .get_item()
        .table_name(dynamo.table_name())
        .key(
            "PK",
            AttributeValue::S(format!("OPTOUT#{}#{NUMBER}", practice.id)),
        )
        .key("SK", AttributeValue::S("OPTOUT".into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem")
        .item
        .expect("the opt-out record");
    assert_eq!(
        item.get("number")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str),
        Some(NUMBER)
    );
    let at: DateTime<Utc> = item
        .get("opted_out_at")
        .and_then(|v| v.as_s().ok())
        .and_then(|s| s.parse().ok())
        .expect("opted_out_at, an instant");
    assert_eq!(at, t0());
}
