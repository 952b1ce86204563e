//! The storage contract for transfers and alert delivery (`domain::store::Store`'s `transfer_conversation`
//! and the outbox's delivery side), written once and run on every store: the embedded
//! `EmbeddedStore` in memory and on a file, and the `DynamoStore` on DynamoDB Local (each test on a table of
//! its own). Most tests go through the domain services, as the functions do:
//! `domain::conversation::transfer_conversation` and `domain::alert::dispatch::dispatch_alert`, with the
//! recording and fault-injecting senders. Checks only the
//! DynamoDB store can answer (request budgets, the raw item layout) come at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use adapters::senders::{FaultySender, RecordingSender};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use domain::alert::dispatch::{self, DispatchReport, CLAIM_LEASE};
use domain::alert::{
    AlertKind, AlertRecord, AlertSender, AlertStatus, DeliveryChannel, DeliveryOutcome,
    PendingAlert,
};
use domain::conversation::{
    self, transfer_notice, AlertId, Author, Channel, Conversation, ConversationId,
    ConversationStatus, Inbound, Message, MessageId, Transfer, TransferInput,
};
use domain::department::Department;
use domain::error::{ConflictCode, DomainError, InvalidCode};
use domain::identity::{Caller, DepartmentId, Ids, PracticeId, Role};
use domain::practice::Practice;
use domain::store::{ConversationFilter, NewConversation, OpenConversation, Store, StoreError};
use tokio::sync::Barrier;
use vetchat_tests::{
    default_department, fresh_dynamo_store, sample_department, sample_practice, t0, TestStore,
};

type DynStore = Arc<dyn Store>;

vetchat_tests::on_every_store!(
    // Transfers
    a_transfer_moves_the_conversation_its_count_claim_and_history_and_alerts_the_target,
    transfers_that_make_no_sense_are_refused_and_change_nothing,
    a_transfer_from_where_the_conversation_no_longer_is_is_a_version_mismatch,
    an_end_racing_a_transfer_leaves_a_consistent_state,
    transfers_racing_each_other_leave_a_consistent_chain,
    // The outbox's delivery side, through the store
    a_claim_holds_until_its_lease_ends_or_its_outcome_is_recorded,
    the_first_recorded_outcome_stays,
    delivery_keys_with_any_characters_round_trip,
    pending_alerts_are_listed_oldest_first_until_completed,
    unknown_alerts_are_not_found,
    // Dispatch
    each_recipient_gets_an_alert_once_and_the_alert_is_done,
    a_replayed_dispatch_sends_nothing_again,
    a_department_with_alerts_off_gets_nothing_and_the_alert_is_done,
    a_practice_outside_the_us_and_canada_gets_emails_only,
    a_transfer_alert_reaches_the_target_department,
    a_refused_address_is_recorded_failed_and_the_others_are_sent,
    an_outage_leaves_the_alert_pending_and_its_claims_released,
    two_dispatchers_at_once_send_each_recipient_exactly_once,
    a_crash_between_send_and_record_repeats_only_that_one_message,
);

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

const DASHBOARD: &str = "https://dashboard.example/app";
const DESK: &str = "desk@riverside.example";
/// An address with the characters a DynamoDB expression would choke on, were keys ever spliced into one.
const VET: &str = "dr.o'neil+alerts@riverside.example";
const PHONE: &str = "+12025550123";

/// Ids unique in the test process, in creation order.
struct TestIds;

impl Ids for TestIds {
    fn next(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}_{:010}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Hands out one given id: to build the alert a service must have written, with the id it got.
struct FixedId(String);

impl Ids for FixedId {
    fn next(&self, _prefix: &str) -> String {
        self.0.clone()
    }
}

fn id(prefix: &str) -> String {
    TestIds.next(prefix)
}

/// A new practice (in `country`) whose default department has the id routing derives.
async fn setup_in(store: &DynStore, country: &str) -> (Practice, Department) {
    let mut practice = sample_practice();
    practice.country = country.to_owned();
    practice.default_department_id = DepartmentId::default_for(&practice.id);
    let default = default_department(&practice);
    store
        .create_practice(&practice, &default)
        .await
        .expect("create practice");
    (practice, default)
}

async fn setup(store: &DynStore) -> (Practice, Department) {
    setup_in(store, "US").await
}

/// A department visible in the app, open 09:00–18:00 on weekdays (New York): `t0()` is a Monday 09:30.
async fn create_department(store: &DynStore, practice_id: &PracticeId, name: &str) -> Department {
    create_department_with(store, practice_id, name, false).await
}

/// The same, with its alerts on (two emails, one text) or off (the same recipients, switched off).
async fn create_department_with(
    store: &DynStore,
    practice_id: &PracticeId,
    name: &str,
    alerts_on: bool,
) -> Department {
    let mut d = sample_department(practice_id, name);
    d.settings.visible_in_app = true;
    d.settings.alerts.enabled = alerts_on;
    d.settings.alerts.emails = vec![DESK.to_owned(), VET.to_owned()];
    d.settings.alerts.sms_numbers = vec![PHONE.to_owned()];
    store
        .create_department(&d)
        .await
        .expect("create department");
    d
}

fn staff(practice_id: &PracticeId) -> Caller {
    Caller {
        sub: "staff-1".into(),
        practice_id: practice_id.clone(),
        role: Role::Staff,
    }
}

fn inbound(
    practice_id: &PracticeId,
    client_id: &str,
    department_id: &DepartmentId,
    body: &str,
) -> Inbound {
    Inbound {
        to: None,
        practice_id: practice_id.clone(),
        channel: Channel::App,
        client_id: client_id.to_owned(),
        department_id: Some(department_id.clone()),
        body: body.to_owned(),
        dedup_key: None,
        rate_limits: None,
    }
}

/// A client's app message into `department_id` at `at` (a new conversation, with its alert, if the client
/// has none open). Returns the conversation it landed in.
async fn message(
    store: &DynStore,
    practice_id: &PracticeId,
    client_id: &str,
    department_id: &DepartmentId,
    body: &str,
    at: DateTime<Utc>,
) -> ConversationId {
    conversation::route_inbound(
        store.as_ref(),
        inbound(practice_id, client_id, department_id, body),
        at,
        &TestIds,
    )
    .await
    .expect("route_inbound")
    .conversation_id
    .expect("a conversation")
}

async fn transfer(
    store: &DynStore,
    practice_id: &PracticeId,
    id: &ConversationId,
    to: &DepartmentId,
    note: Option<&str>,
    at: DateTime<Utc>,
) -> Result<Conversation, DomainError> {
    conversation::transfer_conversation(
        store.as_ref(),
        &staff(practice_id),
        id,
        TransferInput {
            department_id: to.clone(),
            note: note.map(str::to_owned),
        },
        at,
        &TestIds,
    )
    .await
}

async fn get(store: &DynStore, practice_id: &PracticeId, id: &ConversationId) -> Conversation {
    store
        .get_conversation(practice_id, id)
        .await
        .expect("get_conversation")
        .expect("the conversation exists")
}

async fn transfers_of(
    store: &DynStore,
    practice_id: &PracticeId,
    id: &ConversationId,
) -> Vec<Transfer> {
    store
        .conversation_detail(practice_id, id, domain::store::MessageRange::ALL)
        .await
        .expect("conversation_detail")
        .expect("the conversation exists")
        .transfers
}

/// The department's `open_conversations`, `None` if it is gone.
async fn open_count(
    store: &DynStore,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
) -> Option<u32> {
    store
        .practice_and_department(practice_id, department_id)
        .await
        .expect("practice_and_department")
        .1
        .map(|d| d.open_conversations)
}

/// The client's open-conversation claim, as routing reads it.
/// The client's open-conversation claim, as routing reads it: the conversation and its department.
async fn claim(
    store: &DynStore,
    practice_id: &PracticeId,
    client_id: &str,
) -> Option<(ConversationId, DepartmentId)> {
    store
        .routing_context(
            practice_id,
            client_id,
            &DepartmentId::default_for(practice_id),
        )
        .await
        .expect("routing_context")
        .open_conversation
        .map(|o: OpenConversation| (o.conversation_id, o.department_id))
}

async fn alert(store: &DynStore, id: &AlertId) -> AlertRecord {
    store
        .get_alert(id)
        .await
        .expect("get_alert")
        .expect("the alert exists")
}

async fn pending_ids(store: &DynStore) -> Vec<AlertId> {
    store
        .pending_alert_ids(1000)
        .await
        .expect("pending_alert_ids")
}

/// Every alert of a conversation the outbox holds (whatever its status), oldest first.
async fn alerts_of(t: &TestStore, conversation_id: &ConversationId) -> Vec<PendingAlert> {
    let mut alerts: Vec<PendingAlert> = t
        .all_alerts()
        .await
        .into_iter()
        .filter(|a| {
            a.subject
                .conversation()
                .is_some_and(|about| &about.conversation_id == conversation_id)
        })
        .collect();
    alerts.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    alerts
}

/// The one alert of a conversation that is still pending.
async fn only_alert_of(t: &TestStore, conversation_id: &ConversationId) -> AlertId {
    let store = t.store();
    let mut pending = Vec::new();
    for a in alerts_of(t, conversation_id).await {
        if alert(&store, &a.id).await.status == AlertStatus::Pending {
            pending.push(a.id);
        }
    }
    assert_eq!(pending.len(), 1, "one pending alert: {pending:?}");
    pending.remove(0)
}

async fn dispatch(
    store: &DynStore,
    sender: &dyn AlertSender,
    id: &AlertId,
    now: DateTime<Utc>,
) -> DispatchReport {
    dispatch::dispatch_alert(store.as_ref(), sender, id, now, DASHBOARD)
        .await
        .expect("dispatch_alert")
}

fn report(sent: usize, failed: usize, pending: usize, done: bool) -> DispatchReport {
    DispatchReport {
        sent,
        failed,
        pending,
        done,
    }
}

/// The idempotency key the dispatcher gives one recipient of an alert.
fn delivery_key(alert_id: &AlertId, channel: DeliveryChannel, to: &str) -> String {
    let channel = match channel {
        DeliveryChannel::Email => "email",
        DeliveryChannel::Sms => "sms",
    };
    format!("{alert_id}:{channel}:{to}")
}

/// The three deliveries of an alert to a department with alerts on (US practice).
fn all_keys(alert_id: &AlertId) -> Vec<String> {
    let mut keys = vec![
        delivery_key(alert_id, DeliveryChannel::Email, DESK),
        delivery_key(alert_id, DeliveryChannel::Email, VET),
        delivery_key(alert_id, DeliveryChannel::Sms, PHONE),
    ];
    keys.sort();
    keys
}

fn sent_at(at: DateTime<Utc>) -> DeliveryOutcome {
    DeliveryOutcome::Sent { at }
}

/// A practice with a department whose alerts are on, and a new conversation there with its alert.
async fn alerting(
    t: &TestStore,
    country: &str,
    alerts_on: bool,
) -> (Practice, Department, ConversationId, AlertId) {
    let store = t.store();
    let (practice, _) = setup_in(&store, country).await;
    let desk = create_department_with(&store, &practice.id, "Front Desk", alerts_on).await;
    let c = message(
        &store,
        &practice.id,
        "client-1",
        &desk.id,
        "My cat is limping",
        t0(),
    )
    .await;
    let alert_id = only_alert_of(t, &c).await;
    (practice, desk, c, alert_id)
}

/// Runs every racer on its own task, all released at once by a barrier; results in racer order.
async fn race<T, R, F, Fut>(racers: Vec<T>, run: F) -> Vec<R>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
{
    let barrier = Arc::new(Barrier::new(racers.len()));
    let run = Arc::new(run);
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|racer| {
            let (barrier, run) = (barrier.clone(), run.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                run(racer).await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("racer task"));
    }
    results
}

/// Open conversations per department, counted from the conversations themselves.
async fn open_truth(store: &DynStore, practice_id: &PracticeId) -> BTreeMap<DepartmentId, u32> {
    let mut truth = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_conversations(
                practice_id,
                &ConversationFilter::default(),
                cursor.as_deref(),
                100,
            )
            .await
            .expect("list_conversations");
        for c in page
            .conversations
            .iter()
            .filter(|c| c.status == ConversationStatus::Open)
        {
            *truth.entry(c.department_id.clone()).or_default() += 1;
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            return truth;
        }
    }
}

/// Every department's counter equals the number of conversations open in it.
async fn assert_counts_are_the_truth(
    store: &DynStore,
    practice_id: &PracticeId,
    departments: &[DepartmentId],
) {
    let truth = open_truth(store, practice_id).await;
    for d in departments {
        assert_eq!(
            open_count(store, practice_id, d).await,
            Some(truth.get(d).copied().unwrap_or(0)),
            "department {d}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Transfers
// ---------------------------------------------------------------------------------------------------------

async fn a_transfer_moves_the_conversation_its_count_claim_and_history_and_alerts_the_target(
    t: TestStore,
) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    let p = &practice.id;
    let c = message(&store, p, "client-1", &default.id, "She ate a sock", t0()).await;
    let started = get(&store, p, &c).await;
    let new_conversation_alert = only_alert_of(&t, &c).await;

    let at = t0() + Duration::minutes(10);
    let moved = transfer(&store, p, &c, &surgery.id, Some("  Needs an x-ray  "), at)
        .await
        .expect("transfer");
    assert_eq!(
        moved,
        Conversation {
            department_id: surgery.id.clone(),
            department_name: "Surgery".into(),
            last_seq: started.last_seq + 1,
            ..started.clone()
        }
    );
    assert_eq!(get(&store, p, &c).await, moved);
    let first = Transfer {
        from: default.id.clone(),
        to: surgery.id.clone(),
        by: "staff-1".into(),
        at,
        note: Some("Needs an x-ray".into()),
    };
    assert_eq!(transfers_of(&store, p, &c).await, vec![first.clone()]);
    assert_eq!(open_count(&store, p, &default.id).await, Some(0));
    assert_eq!(open_count(&store, p, &surgery.id).await, Some(1));
    assert_eq!(
        claim(&store, p, "client-1").await,
        Some((c.clone(), surgery.id.clone()))
    );
    // Lists by department follow it.
    let in_surgery = store
        .list_conversations(
            p,
            &ConversationFilter {
                status: Some(ConversationStatus::Open),
                department_id: Some(surgery.id.clone()),
            },
            None,
            10,
        )
        .await
        .expect("list");
    assert_eq!(in_surgery.conversations, vec![moved.clone()]);

    // The target department's alert, beside the new-conversation one, quoting the client's last words.
    let alerts = alerts_of(&t, &c).await;
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0].id, new_conversation_alert);
    let transfer_alert = alerts[1].clone();
    assert_eq!(
        transfer_alert,
        PendingAlert::transfer(
            &FixedId(transfer_alert.id.0.clone()),
            &started,
            first.clone(),
            "She ate a sock",
            at,
        )
    );
    assert_eq!(
        alert(&store, &transfer_alert.id).await,
        AlertRecord {
            alert: transfer_alert.clone(),
            status: AlertStatus::Pending,
            outcomes: BTreeMap::new(),
        }
    );
    assert!(pending_ids(&store).await.contains(&transfer_alert.id));

    // The client's next message, naming the old department, joins the conversation where it is now.
    let routed = conversation::route_inbound(
        store.as_ref(),
        inbound(p, "client-1", &default.id, "Is she OK?"),
        at + Duration::minutes(1),
        &TestIds,
    )
    .await
    .expect("route_inbound");
    assert_eq!(
        (
            routed.conversation_id.clone(),
            routed.department_id.clone(),
            routed.new_conversation
        ),
        (Some(c.clone()), Some(surgery.id.clone()), false)
    );
    assert_eq!(open_count(&store, p, &surgery.id).await, Some(1));
    assert_eq!(alerts_of(&t, &c).await.len(), 2, "joining alerts nobody");

    // And back, without a note: the history keeps both moves, in order.
    let back_at = at + Duration::minutes(5);
    let back = transfer(&store, p, &c, &default.id, Some("   "), back_at)
        .await
        .expect("transfer back");
    assert_eq!(back.department_id, default.id);
    let second = Transfer {
        from: surgery.id.clone(),
        to: default.id.clone(),
        by: "staff-1".into(),
        at: back_at,
        note: None,
    };
    assert_eq!(transfers_of(&store, p, &c).await, vec![first, second]);
    assert_eq!(open_count(&store, p, &default.id).await, Some(1));
    assert_eq!(open_count(&store, p, &surgery.id).await, Some(0));
    assert_eq!(
        claim(&store, p, "client-1").await.map(|o| o.1),
        Some(default.id.clone())
    );
    let alerts = alerts_of(&t, &c).await;
    assert_eq!(alerts.len(), 3);
    assert_eq!(
        (
            alerts[2].department_id.clone(),
            alerts[2]
                .subject
                .conversation()
                .expect("about one")
                .preview
                .as_str()
        ),
        (default.id.clone(), "Is she OK?")
    );

    // Ending it ends it where it is now.
    conversation::end_conversation(store.as_ref(), &staff(p), &c, back_at + Duration::hours(1))
        .await
        .expect("end");
    assert_eq!(open_count(&store, p, &default.id).await, Some(0));
    assert_eq!(claim(&store, p, "client-1").await, None);
}

async fn transfers_that_make_no_sense_are_refused_and_change_nothing(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let p = &practice.id;
    let surgery = create_department(&store, p, "Surgery").await;
    let gone = create_department(&store, p, "Closed Wing").await;
    store.delete_department(&gone).await.expect("delete");
    let c = message(&store, p, "client-1", &default.id, "hello", t0()).await;
    let before = get(&store, p, &c).await;
    let alerts_before = t.all_alerts().await.len();
    let at = t0() + Duration::minutes(1);

    let unchanged = |what: &'static str| {
        let (store, t, c, before, default, surgery, gone) = (
            store.clone(),
            t.clone(),
            c.clone(),
            before.clone(),
            default.id.clone(),
            surgery.id.clone(),
            gone.id.clone(),
        );
        let p = p.clone();
        async move {
            assert_eq!(get(&store, &p, &c).await, before, "{what}: conversation");
            assert_eq!(transfers_of(&store, &p, &c).await, vec![], "{what}");
            assert_eq!(open_count(&store, &p, &default).await, Some(1), "{what}");
            assert_eq!(open_count(&store, &p, &surgery).await, Some(0), "{what}");
            assert_eq!(
                open_count(&store, &p, &gone).await,
                None,
                "{what}: not re-created"
            );
            assert_eq!(
                claim(&store, &p, "client-1").await,
                Some((c.clone(), default.clone())),
                "{what}: claim"
            );
            assert_eq!(
                t.all_alerts().await.len(),
                alerts_before,
                "{what}: no alert"
            );
        }
    };

    let same = transfer(&store, p, &c, &default.id, None, at).await;
    assert!(
        matches!(
            same,
            Err(DomainError::Invalid {
                code: InvalidCode::SameDepartment,
                ..
            })
        ),
        "{same:?}"
    );
    unchanged("same department").await;

    let deleted = transfer(&store, p, &c, &gone.id, None, at).await;
    assert!(
        matches!(deleted, Err(DomainError::NotFound("department"))),
        "{deleted:?}"
    );
    unchanged("deleted department").await;

    let unknown = transfer(&store, p, &c, &DepartmentId(id("dep")), None, at).await;
    assert!(
        matches!(unknown, Err(DomainError::NotFound("department"))),
        "{unknown:?}"
    );
    unchanged("unknown department").await;

    // Another practice's conversation does not exist for this caller.
    let (other, _) = setup(&store).await;
    let elsewhere = transfer(&store, &other.id, &c, &surgery.id, None, at).await;
    assert!(
        matches!(elsewhere, Err(DomainError::NotFound("conversation"))),
        "{elsewhere:?}"
    );
    unchanged("another practice").await;

    // Ended: refused as resolved, and nothing moves.
    conversation::end_conversation(store.as_ref(), &staff(p), &c, at)
        .await
        .expect("end");
    let resolved = transfer(&store, p, &c, &surgery.id, None, at).await;
    assert!(
        matches!(
            resolved,
            Err(DomainError::Conflict {
                code: ConflictCode::ConversationResolved,
                ..
            })
        ),
        "{resolved:?}"
    );
    assert_eq!(get(&store, p, &c).await.department_id, default.id);
    assert_eq!(transfers_of(&store, p, &c).await, vec![]);
    assert_eq!(open_count(&store, p, &default.id).await, Some(0));
    assert_eq!(open_count(&store, p, &surgery.id).await, Some(0));
    assert_eq!(t.all_alerts().await.len(), alerts_before);
}

async fn a_transfer_from_where_the_conversation_no_longer_is_is_a_version_mismatch(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let p = &practice.id;
    let a = create_department(&store, p, "Alpha").await;
    let b = create_department(&store, p, "Beta").await;
    let c = message(&store, p, "client-1", &default.id, "hello", t0()).await;
    let stale = get(&store, p, &c).await;
    transfer(&store, p, &c, &a.id, None, t0() + Duration::minutes(1))
        .await
        .expect("transfer");
    let alerts_before = t.all_alerts().await.len();

    // A caller that still sees it in the default department.
    let move_ = |to: &DepartmentId| Transfer {
        from: stale.department_id.clone(),
        to: to.clone(),
        by: "staff-2".into(),
        at: t0() + Duration::minutes(2),
        note: None,
    };
    let alert = |to: &DepartmentId| {
        PendingAlert::transfer(&TestIds, &stale, move_(to), "", t0() + Duration::minutes(2))
    };
    // The system message a transfer writes, the seq after what the caller read.
    let notice = |c: &Conversation, to: &DepartmentId| Message {
        id: MessageId(id("msg")),
        conversation_id: c.id.clone(),
        seq: c.last_seq + 1,
        at: t0() + Duration::minutes(2),
        author: Author::System,
        channel: c.channel,
        body: transfer_notice("Beta"),
        department_id: to.clone(),
        department_name: "Beta".into(),
        delivery: None,
    };
    assert_eq!(
        store
            .transfer_conversation(&stale, &move_(&b.id), &notice(&stale, &b.id), &alert(&b.id))
            .await,
        Err(StoreError::VersionMismatch)
    );
    // The conversation rule comes first: a gone target behind a stale read is still a mismatch.
    assert_eq!(
        store
            .transfer_conversation(
                &stale,
                &move_(&DepartmentId(id("dep"))),
                &notice(&stale, &DepartmentId(id("dep"))),
                &alert(&DepartmentId(id("dep")))
            )
            .await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(get(&store, p, &c).await.department_id, a.id);
    assert_eq!(transfers_of(&store, p, &c).await.len(), 1);
    assert_counts_are_the_truth(&store, p, &[default.id.clone(), a.id.clone(), b.id.clone()]).await;
    assert_eq!(t.all_alerts().await.len(), alerts_before);

    // Ended meanwhile, likewise.
    let current = get(&store, p, &c).await;
    store
        .end_conversation(&current, t0() + Duration::minutes(3))
        .await
        .expect("end");
    let from_a = Transfer {
        from: a.id.clone(),
        ..move_(&b.id)
    };
    assert_eq!(
        store
            .transfer_conversation(&current, &from_a, &notice(&current, &b.id), &alert(&b.id))
            .await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(open_count(&store, p, &b.id).await, Some(0));
    assert_eq!(claim(&store, p, "client-1").await, None);
}

async fn an_end_racing_a_transfer_leaves_a_consistent_state(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let p = practice.id.clone();
    let surgery = create_department(&store, &p, "Surgery").await;
    let departments = [default.id.clone(), surgery.id.clone()];
    let mut transfers_won = 0;
    for round in 0..6 {
        let client = format!("client-{round}");
        let c = message(&store, &p, &client, &default.id, "hello", t0()).await;
        enum Racer {
            End,
            Transfer,
        }
        let (s, pid, cid, to) = (store.clone(), p.clone(), c.clone(), surgery.id.clone());
        let results = race(vec![Racer::End, Racer::Transfer], move |racer| {
            let (s, pid, cid, to) = (s.clone(), pid.clone(), cid.clone(), to.clone());
            async move {
                let at = t0() + Duration::minutes(5);
                match racer {
                    Racer::End => {
                        conversation::end_conversation(s.as_ref(), &staff(&pid), &cid, at)
                            .await
                            .map(|c| c.department_id)
                    }
                    Racer::Transfer => transfer(&s, &pid, &cid, &to, Some("race"), at)
                        .await
                        .map(|c| c.department_id),
                }
            }
        })
        .await;
        let mut results = results.into_iter();
        let ended = results.next().expect("end result");
        let moved = results.next().expect("transfer result");

        // Ending always succeeds, wherever the conversation is by then.
        let ended_in = ended.expect("ending succeeds");
        let read = get(&store, &p, &c).await;
        assert_eq!(read.status, ConversationStatus::Resolved, "round {round}");
        assert_eq!(read.department_id, ended_in, "round {round}");
        let history = transfers_of(&store, &p, &c).await;
        match moved {
            Ok(to) => {
                // The transfer went first: recorded once, and the end found it in its new department.
                transfers_won += 1;
                assert_eq!(to, surgery.id, "round {round}");
                assert_eq!(ended_in, surgery.id, "round {round}");
                assert_eq!(history.len(), 1, "round {round}");
                assert_eq!(
                    (history[0].from.clone(), history[0].to.clone()),
                    (default.id.clone(), surgery.id.clone())
                );
                let transfer_alerts = alerts_of(&t, &c)
                    .await
                    .into_iter()
                    .filter(|a| a.kind() == AlertKind::Transfer)
                    .count();
                assert_eq!(transfer_alerts, 1, "round {round}");
            }
            Err(DomainError::Conflict {
                code: ConflictCode::ConversationResolved,
                ..
            }) => {
                assert_eq!(ended_in, default.id, "round {round}");
                assert_eq!(history, vec![], "round {round}: no transfer recorded");
                assert!(
                    alerts_of(&t, &c)
                        .await
                        .iter()
                        .all(|a| a.kind() == AlertKind::NewConversation),
                    "round {round}: no transfer alert"
                );
            }
            Err(other) => panic!("round {round}: unexpected {other:?}"),
        }
        assert_eq!(claim(&store, &p, &client).await, None, "round {round}");
        assert_counts_are_the_truth(&store, &p, &departments).await;
    }
    eprintln!("transfers that won the race: {transfers_won} of 6");
}

async fn transfers_racing_each_other_leave_a_consistent_chain(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let p = practice.id.clone();
    let a = create_department(&store, &p, "Alpha").await;
    let b = create_department(&store, &p, "Beta").await;
    let departments = [default.id.clone(), a.id.clone(), b.id.clone()];
    for round in 0..5 {
        let client = format!("client-{round}");
        let c = message(&store, &p, &client, &default.id, "hello", t0()).await;
        // Two staff send it to Alpha, one to Beta, at once.
        let targets = vec![a.id.clone(), b.id.clone(), a.id.clone()];
        let (s, pid, cid) = (store.clone(), p.clone(), c.clone());
        let results = race(targets.clone(), move |to| {
            let (s, pid, cid) = (s.clone(), pid.clone(), cid.clone());
            async move { transfer(&s, &pid, &cid, &to, None, t0() + Duration::minutes(5)).await }
        })
        .await;

        let mut won = 0;
        for (to, result) in targets.iter().zip(results) {
            match result {
                Ok(moved) => {
                    won += 1;
                    assert_eq!(&moved.department_id, to, "round {round}");
                }
                // It was already there when this one looked again.
                Err(DomainError::Invalid {
                    code: InvalidCode::SameDepartment,
                    ..
                }) => {}
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert!(won >= 1, "round {round}: somebody moves it");

        // One recorded transfer per winning move, forming one chain from where it started to where it is.
        let read = get(&store, &p, &c).await;
        let history = transfers_of(&store, &p, &c).await;
        assert_eq!(history.len(), won, "round {round}: {history:?}");
        assert_eq!(history[0].from, default.id, "round {round}");
        for pair in history.windows(2) {
            assert_eq!(pair[0].to, pair[1].from, "round {round}: {history:?}");
        }
        assert_eq!(
            history.last().map(|t| &t.to),
            Some(&read.department_id),
            "round {round}"
        );
        assert_eq!(read.status, ConversationStatus::Open);
        let transfer_alerts: Vec<DepartmentId> = alerts_of(&t, &c)
            .await
            .into_iter()
            .filter(|a| a.kind() == AlertKind::Transfer)
            .map(|a| a.department_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let targets_moved_to: Vec<DepartmentId> = history
            .iter()
            .map(|t| t.to.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(transfer_alerts, targets_moved_to, "round {round}");
        assert_eq!(
            alerts_of(&t, &c)
                .await
                .iter()
                .filter(|a| a.kind() == AlertKind::Transfer)
                .count(),
            won,
            "round {round}: one alert per move"
        );
        assert_eq!(
            claim(&store, &p, &client).await,
            Some((c.clone(), read.department_id.clone())),
            "round {round}"
        );
        assert_counts_are_the_truth(&store, &p, &departments).await;
    }
}

// ---------------------------------------------------------------------------------------------------------
// The outbox's delivery side, through the store
// ---------------------------------------------------------------------------------------------------------

/// A practice and a new conversation with its (new-conversation) alert, written by the store directly.
async fn stored_alert(store: &DynStore, created_at: DateTime<Utc>) -> PendingAlert {
    let (practice, default) = setup(store).await;
    let c = Conversation {
        reply_from: None,
        last_whatsapp_at: None,
        id: ConversationId(id("cnv")),
        practice_id: practice.id.clone(),
        department_id: default.id.clone(),
        client_id: id("client"),
        channel: Channel::Sms,
        status: ConversationStatus::Open,
        started_at: created_at,
        last_message_at: created_at,
        resolved_at: None,
        department_name: default.settings.name.clone(),
        last_seq: 0,
        sms_opted_out_at: None,
        after_hours_replied_at: None,
    };
    let alert = PendingAlert::new_conversation(&TestIds, &c, "hello", created_at);
    store
        .start_conversation(&NewConversation {
            conversation: c,
            messages: vec![],
            alert: Some(alert.clone()),
            dedup_key: None,
            rate: None,
        })
        .await
        .expect("start");
    alert
}

async fn a_claim_holds_until_its_lease_ends_or_its_outcome_is_recorded(t: TestStore) {
    let store = t.store();
    let a = stored_alert(&store, t0()).await;
    let now = t0() + Duration::minutes(1);
    let until = now + CLAIM_LEASE;
    let k1 = delivery_key(&a.id, DeliveryChannel::Email, DESK);
    let k2 = delivery_key(&a.id, DeliveryChannel::Sms, PHONE);

    assert_eq!(store.claim_delivery(&a.id, &k1, now, until).await, Ok(true));
    // Held: not by a duplicate, nor by anyone before the lease ends.
    assert_eq!(
        store.claim_delivery(&a.id, &k1, now, until).await,
        Ok(false)
    );
    assert_eq!(
        store
            .claim_delivery(
                &a.id,
                &k1,
                until - Duration::nanoseconds(1),
                until + CLAIM_LEASE
            )
            .await,
        Ok(false)
    );
    // Another delivery of the same alert is independent.
    assert_eq!(store.claim_delivery(&a.id, &k2, now, until).await, Ok(true));
    // A lease that has ended (at its very end, too) may be taken over.
    assert_eq!(
        store
            .claim_delivery(&a.id, &k1, until, until + CLAIM_LEASE)
            .await,
        Ok(true)
    );
    // Released: free at once.
    store.release_delivery(&a.id, &k2).await.expect("release");
    assert_eq!(store.claim_delivery(&a.id, &k2, now, until).await, Ok(true));
    // Releasing what is not claimed is fine.
    store.release_delivery(&a.id, &k2).await.expect("release");
    store
        .release_delivery(&a.id, &k2)
        .await
        .expect("release again");

    // Recorded: never claimable again, not even long after every lease.
    store
        .record_delivery(&a.id, &k1, &sent_at(now))
        .await
        .expect("record");
    let much_later = now + Duration::days(30);
    assert_eq!(
        store
            .claim_delivery(&a.id, &k1, much_later, much_later + CLAIM_LEASE)
            .await,
        Ok(false)
    );
    assert_eq!(
        alert(&store, &a.id).await,
        AlertRecord {
            alert: a.clone(),
            status: AlertStatus::Pending,
            outcomes: BTreeMap::from([(k1.clone(), sent_at(now))]),
        }
    );
}

async fn the_first_recorded_outcome_stays(t: TestStore) {
    let store = t.store();
    let a = stored_alert(&store, t0()).await;
    let k = delivery_key(&a.id, DeliveryChannel::Email, VET);
    let now = t0() + Duration::minutes(1);
    // Recorded without a claim (a dispatcher whose lease ran out while it sent): still recorded.
    store
        .record_delivery(&a.id, &k, &sent_at(now))
        .await
        .expect("record");
    store
        .record_delivery(
            &a.id,
            &k,
            &DeliveryOutcome::Failed {
                at: now + Duration::seconds(1),
                reason: "late".into(),
            },
        )
        .await
        .expect("a second record is not an error");
    store
        .record_delivery(&a.id, &k, &sent_at(now + Duration::seconds(2)))
        .await
        .expect("nor a third");
    assert_eq!(
        alert(&store, &a.id).await.outcomes,
        BTreeMap::from([(k, sent_at(now))])
    );
}

async fn delivery_keys_with_any_characters_round_trip(t: TestStore) {
    let store = t.store();
    let a = stored_alert(&store, t0()).await;
    let now = t0() + Duration::minutes(1);
    // Characters that mean something in a DynamoDB expression or document path.
    let keys = [
        delivery_key(&a.id, DeliveryChannel::Email, VET),
        delivery_key(&a.id, DeliveryChannel::Sms, PHONE),
        format!("{}:email:a.b[0]#c :d,e=f@x.example", a.id),
        format!("{}:email:ÿnïcødé@例え.jp", a.id),
    ];
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            store.claim_delivery(&a.id, k, now, now + CLAIM_LEASE).await,
            Ok(true),
            "{k}"
        );
        let outcome = if i % 2 == 0 {
            sent_at(now)
        } else {
            DeliveryOutcome::Failed {
                at: now,
                reason: format!("refused: {k}"),
            }
        };
        store
            .record_delivery(&a.id, k, &outcome)
            .await
            .expect("record");
    }
    let read = alert(&store, &a.id).await;
    assert_eq!(
        read.outcomes.keys().cloned().collect::<BTreeSet<_>>(),
        keys.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(
        read.outcomes[&keys[3]],
        DeliveryOutcome::Failed {
            at: now,
            reason: format!("refused: {}", keys[3]),
        }
    );
    // A key that is a prefix of a recorded one is another key.
    let prefix = format!("{}:email:dr", a.id);
    assert_eq!(
        store
            .claim_delivery(&a.id, &prefix, now, now + CLAIM_LEASE)
            .await,
        Ok(true)
    );
}

async fn pending_alerts_are_listed_oldest_first_until_completed(t: TestStore) {
    let store = t.store();
    // Written oldest first (the embedded store lists in write order, DynamoDB by `created_at`).
    let first = stored_alert(&store, t0()).await;
    let second = stored_alert(&store, t0() + Duration::nanoseconds(1)).await;
    let third = stored_alert(&store, t0() + Duration::minutes(1)).await;
    assert_eq!(
        pending_ids(&store).await,
        vec![first.id.clone(), second.id.clone(), third.id.clone()]
    );
    assert_eq!(
        store.pending_alert_ids(2).await,
        Ok(vec![first.id.clone(), second.id.clone()])
    );
    assert_eq!(store.pending_alert_ids(0).await, Ok(vec![]));

    store.complete_alert(&second.id).await.expect("complete");
    assert_eq!(
        pending_ids(&store).await,
        vec![first.id.clone(), third.id.clone()]
    );
    assert_eq!(alert(&store, &second.id).await.status, AlertStatus::Done);
    // Completing twice is harmless.
    store.complete_alert(&second.id).await.expect("again");
    store.complete_alert(&first.id).await.expect("complete");
    store.complete_alert(&third.id).await.expect("complete");
    assert_eq!(pending_ids(&store).await, vec![]);
    assert_eq!(
        alert(&store, &third.id).await,
        AlertRecord {
            alert: third,
            status: AlertStatus::Done,
            outcomes: BTreeMap::new(),
        }
    );
}

async fn unknown_alerts_are_not_found(t: TestStore) {
    let store = t.store();
    let nope = AlertId(id("alr"));
    let k = delivery_key(&nope, DeliveryChannel::Email, DESK);
    let now = t0();
    assert_eq!(store.get_alert(&nope).await, Ok(None));
    assert_eq!(
        store
            .claim_delivery(&nope, &k, now, now + CLAIM_LEASE)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.release_delivery(&nope, &k).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store.record_delivery(&nope, &k, &sent_at(now)).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(store.complete_alert(&nope).await, Err(StoreError::NotFound));
    // None of that created it.
    assert_eq!(store.get_alert(&nope).await, Ok(None));
    assert_eq!(pending_ids(&store).await, vec![]);
    // An unknown alert dispatched: nothing to do.
    let sender = RecordingSender::with_clock(t0);
    assert_eq!(
        dispatch(&store, &sender, &nope, now).await,
        report(0, 0, 0, true)
    );
    assert!(sender.sent().is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// Dispatch
// ---------------------------------------------------------------------------------------------------------

async fn each_recipient_gets_an_alert_once_and_the_alert_is_done(t: TestStore) {
    let store = t.store();
    let (practice, desk, c, alert_id) = alerting(&t, "US", true).await;
    assert_eq!(pending_ids(&store).await, vec![alert_id.clone()]);
    let sender = RecordingSender::with_clock(t0);
    let now = t0() + Duration::seconds(2);

    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(3, 0, 0, true)
    );
    let mut keys: Vec<String> = sender
        .deliveries()
        .iter()
        .map(|d| d.idempotency_key.clone())
        .collect();
    keys.sort();
    assert_eq!(keys, all_keys(&alert_id));
    for k in &keys {
        assert_eq!(sender.sent_count(k), 1, "{k}");
    }
    let sent = sender.sent();
    let to: BTreeSet<(DeliveryChannel, &str)> =
        sent.iter().map(|s| (s.channel, s.to.as_str())).collect();
    assert_eq!(
        to,
        BTreeSet::from([
            (DeliveryChannel::Email, DESK),
            (DeliveryChannel::Email, VET),
            (DeliveryChannel::Sms, PHONE),
        ])
    );
    assert!(sent.iter().all(|s| s.kind == AlertKind::NewConversation
        && s.department_id == desk.id
        && s.conversation_ids == vec![c.clone()]));
    assert!(sent
        .iter()
        .all(|s| s.body.contains(&format!("{DASHBOARD}/conversations/{c}"))));
    assert!(sent.iter().any(|s| s.body.contains(&practice.name)));

    let record = alert(&store, &alert_id).await;
    assert_eq!(record.status, AlertStatus::Done);
    assert_eq!(
        record.outcomes,
        all_keys(&alert_id)
            .into_iter()
            .map(|k| (k, sent_at(now)))
            .collect::<BTreeMap<_, _>>()
    );
    assert_eq!(pending_ids(&store).await, vec![]);
}

async fn a_replayed_dispatch_sends_nothing_again(t: TestStore) {
    let store = t.store();
    let (_, _, _, alert_id) = alerting(&t, "US", true).await;
    let sender = RecordingSender::with_clock(t0);
    let now = t0() + Duration::seconds(2);
    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(3, 0, 0, true)
    );
    let done = alert(&store, &alert_id).await;

    // The stream hands the same record over again, now and after every lease would have run out.
    for later in [now, now + Duration::seconds(1), now + Duration::days(1)] {
        assert_eq!(
            dispatch(&store, &sender, &alert_id, later).await,
            report(0, 0, 0, true)
        );
    }
    assert_eq!(sender.sent().len(), 3);
    for k in all_keys(&alert_id) {
        assert_eq!(sender.sent_count(&k), 1, "{k}");
    }
    assert_eq!(sender.repeated_keys(), Vec::<String>::new());
    assert_eq!(alert(&store, &alert_id).await, done, "nothing changed");

    // Even a dispatcher that found the alert pending before it completed (its read raced the completion)
    // cannot take a delivery: each outcome is recorded.
    for k in all_keys(&alert_id) {
        assert_eq!(
            store
                .claim_delivery(
                    &alert_id,
                    &k,
                    now + Duration::days(1),
                    now + Duration::days(2)
                )
                .await,
            Ok(false),
            "{k}"
        );
    }
}

async fn a_department_with_alerts_off_gets_nothing_and_the_alert_is_done(t: TestStore) {
    let store = t.store();
    let (_, _, _, alert_id) = alerting(&t, "US", false).await;
    let sender = RecordingSender::with_clock(t0);
    assert_eq!(
        dispatch(&store, &sender, &alert_id, t0()).await,
        report(0, 0, 0, true)
    );
    assert!(sender.sent().is_empty());
    let record = alert(&store, &alert_id).await;
    assert_eq!(
        (record.status, record.outcomes),
        (AlertStatus::Done, BTreeMap::new())
    );
    assert_eq!(pending_ids(&store).await, vec![]);
}

async fn a_practice_outside_the_us_and_canada_gets_emails_only(t: TestStore) {
    let store = t.store();
    // The department holds a number (the settings service would refuse it; the dispatcher must not rely
    // on that).
    let (_, _, _, alert_id) = alerting(&t, "GB", true).await;
    let sender = RecordingSender::with_clock(t0);
    assert_eq!(
        dispatch(&store, &sender, &alert_id, t0()).await,
        report(2, 0, 0, true)
    );
    let channels: Vec<DeliveryChannel> = sender.sent().iter().map(|s| s.channel).collect();
    assert_eq!(
        channels,
        vec![DeliveryChannel::Email, DeliveryChannel::Email]
    );
    assert_eq!(
        alert(&store, &alert_id)
            .await
            .outcomes
            .into_keys()
            .collect::<Vec<_>>(),
        vec![
            delivery_key(&alert_id, DeliveryChannel::Email, DESK),
            delivery_key(&alert_id, DeliveryChannel::Email, VET),
        ]
    );
}

async fn a_transfer_alert_reaches_the_target_department(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let p = &practice.id;
    let vets = create_department_with(&store, p, "Telehealth Vet", true).await;
    let c = message(
        &store,
        p,
        "client-1",
        &default.id,
        "Rash on his belly",
        t0(),
    )
    .await;
    // The default department's alerts are off: its new-conversation alert sends nothing.
    let first = only_alert_of(&t, &c).await;
    let sender = RecordingSender::with_clock(t0);
    assert_eq!(
        dispatch(&store, &sender, &first, t0()).await,
        report(0, 0, 0, true)
    );

    transfer(
        &store,
        p,
        &c,
        &vets.id,
        Some("Paid consult"),
        t0() + Duration::minutes(3),
    )
    .await
    .expect("transfer");
    let transfer_alert = only_alert_of(&t, &c).await;
    assert_eq!(pending_ids(&store).await, vec![transfer_alert.clone()]);
    assert_eq!(
        dispatch(
            &store,
            &sender,
            &transfer_alert,
            t0() + Duration::minutes(3)
        )
        .await,
        report(3, 0, 0, true)
    );
    let sent = sender.sent();
    assert!(sent
        .iter()
        .all(|s| s.kind == AlertKind::Transfer && s.department_id == vets.id));
    let email = sent
        .iter()
        .find(|s| s.channel == DeliveryChannel::Email)
        .expect("an email");
    assert_eq!(email.subject, "Conversation transferred to Telehealth Vet");
    assert!(email.body.contains("Paid consult"), "{}", email.body);
    assert!(email.body.contains("Rash on his belly"), "{}", email.body);
    assert_eq!(pending_ids(&store).await, vec![]);
}

async fn a_refused_address_is_recorded_failed_and_the_others_are_sent(t: TestStore) {
    let store = t.store();
    let (_, _, _, alert_id) = alerting(&t, "US", true).await;
    let recorder = RecordingSender::with_clock(t0);
    let sender = FaultySender::new(recorder.clone()).refuse(VET);
    let now = t0() + Duration::seconds(5);

    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(2, 1, 0, true)
    );
    let refused = delivery_key(&alert_id, DeliveryChannel::Email, VET);
    let record = alert(&store, &alert_id).await;
    assert_eq!(record.status, AlertStatus::Done);
    assert_eq!(record.outcomes.len(), 3);
    match &record.outcomes[&refused] {
        DeliveryOutcome::Failed { at, reason } => {
            assert_eq!(*at, now);
            assert!(
                reason.contains(VET) && reason.contains("refused"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    for k in all_keys(&alert_id).iter().filter(|k| **k != refused) {
        assert_eq!(record.outcomes[k], sent_at(now), "{k}");
        assert_eq!(recorder.sent_count(k), 1, "{k}");
    }
    assert_eq!(recorder.sent_count(&refused), 0);
    assert_eq!(pending_ids(&store).await, vec![]);

    // Never tried again.
    let calls = sender.calls();
    assert_eq!(
        dispatch(&store, &sender, &alert_id, now + Duration::hours(1)).await,
        report(0, 0, 0, true)
    );
    assert_eq!(sender.calls(), calls);
}

async fn an_outage_leaves_the_alert_pending_and_its_claims_released(t: TestStore) {
    let store = t.store();
    let (_, _, _, alert_id) = alerting(&t, "US", true).await;
    let recorder = RecordingSender::with_clock(t0);
    let sender = FaultySender::new(recorder.clone());
    let now = t0() + Duration::seconds(5);

    sender.outage(true);
    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(0, 0, 3, false)
    );
    assert_eq!(sender.calls(), 3);
    assert!(recorder.sent().is_empty());
    let record = alert(&store, &alert_id).await;
    assert_eq!(
        (record.status, record.outcomes),
        (AlertStatus::Pending, BTreeMap::new()),
        "nothing recorded"
    );
    assert_eq!(pending_ids(&store).await, vec![alert_id.clone()]);
    // Still down: tried again, still pending.
    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(0, 0, 3, false)
    );

    // Back up: the very next attempt, at the same instant (well within the lease the failed attempts took),
    // sends everything, because each claim was released.
    sender.outage(false);
    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(3, 0, 0, true)
    );
    for k in all_keys(&alert_id) {
        assert_eq!(recorder.sent_count(&k), 1, "{k}");
    }
    assert_eq!(alert(&store, &alert_id).await.status, AlertStatus::Done);
    assert_eq!(pending_ids(&store).await, vec![]);
}

async fn two_dispatchers_at_once_send_each_recipient_exactly_once(t: TestStore) {
    let store = t.store();
    let (practice, _) = setup(&store).await;
    let desk = create_department_with(&store, &practice.id, "Front Desk", true).await;
    let mut overlapped = 0;
    for round in 0..4 {
        let c = message(
            &store,
            &practice.id,
            &format!("client-{round}"),
            &desk.id,
            "hello",
            t0(),
        )
        .await;
        let alert_id = only_alert_of(&t, &c).await;
        let recorder = RecordingSender::with_clock(t0);
        // A slow provider, so the two dispatchers' sends overlap.
        let sender =
            FaultySender::new(recorder.clone()).delay(std::time::Duration::from_millis(40));
        let now = t0() + Duration::seconds(1);
        let (s, id, snd) = (store.clone(), alert_id.clone(), sender.clone());
        let reports = race(vec![(); 3], move |()| {
            let (s, id, snd) = (s.clone(), id.clone(), snd.clone());
            async move { dispatch(&s, &snd, &id, now).await }
        })
        .await;

        for k in all_keys(&alert_id) {
            assert_eq!(recorder.sent_count(&k), 1, "round {round}: {k}");
        }
        assert_eq!(recorder.repeated_keys(), Vec::<String>::new());
        assert_eq!(
            reports.iter().map(|r| r.sent).sum::<usize>(),
            3,
            "round {round}: {reports:?}"
        );
        assert_eq!(reports.iter().map(|r| r.failed).sum::<usize>(), 0);
        if reports.iter().filter(|r| r.sent > 0).count() > 1 {
            overlapped += 1;
        }
        // Whoever found a delivery claimed by another left it to that one (and did not complete the alert).
        for r in &reports {
            assert_eq!(r.done, r.pending == 0, "round {round}: {r:?}");
        }
        let record = alert(&store, &alert_id).await;
        assert_eq!(record.outcomes.len(), 3, "round {round}");
        // If the deliveries were split between them, neither completed it: the next attempt does, sending
        // nothing.
        assert_eq!(
            dispatch(&store, &sender, &alert_id, now).await,
            report(0, 0, 0, true),
            "round {round}"
        );
        assert_eq!(recorder.sent().len(), 3, "round {round}");
        assert_eq!(alert(&store, &alert_id).await.status, AlertStatus::Done);
    }
    assert!(
        overlapped > 0,
        "the dispatchers never shared an alert's deliveries: the race did not happen"
    );
    assert_eq!(pending_ids(&store).await, vec![]);
}

async fn a_crash_between_send_and_record_repeats_only_that_one_message(t: TestStore) {
    let store = t.store();
    let (_, _, _, alert_id) = alerting(&t, "US", true).await;
    let recorder = RecordingSender::with_clock(t0);
    // The first send goes out, then the dispatcher loses it (reported Transient, as a process that died
    // before recording would): SES and SNS take no idempotency token, so nothing downstream can tell.
    let sender = FaultySender::new(recorder.clone()).crash_after_send(1);
    let now = t0() + Duration::seconds(5);

    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(2, 0, 1, false)
    );
    let crashed = recorder.deliveries()[0].idempotency_key.clone();
    let record = alert(&store, &alert_id).await;
    assert_eq!(record.status, AlertStatus::Pending);
    assert!(
        !record.outcomes.contains_key(&crashed),
        "its outcome was never recorded"
    );
    assert_eq!(record.outcomes.len(), 2);
    assert_eq!(pending_ids(&store).await, vec![alert_id.clone()]);

    // The failure released the claim, so the next attempt sends that one message again, at once.
    assert_eq!(
        dispatch(&store, &sender, &alert_id, now).await,
        report(1, 0, 0, true)
    );
    assert_eq!(
        recorder.sent_count(&crashed),
        2,
        "the recipient gets it twice (the key travels with it)"
    );
    assert_eq!(recorder.repeated_keys(), vec![crashed.clone()]);
    for k in all_keys(&alert_id).iter().filter(|k| **k != crashed) {
        assert_eq!(recorder.sent_count(k), 1, "every other recipient once: {k}");
    }
    // Both copies carry the same idempotency key, so a receiver can spot the repeat.
    let copies: Vec<_> = recorder
        .deliveries()
        .into_iter()
        .filter(|d| d.idempotency_key == crashed)
        .collect();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0], copies[1]);
    assert_eq!(alert(&store, &alert_id).await.status, AlertStatus::Done);
    assert_eq!(pending_ids(&store).await, vec![]);
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB only: request budgets and the item layout
// ---------------------------------------------------------------------------------------------------------

/// The requests `f` sends, by operation.
async fn requests<F: Future>(
    store: &adapters::store::DynamoStore,
    f: F,
) -> (F::Output, BTreeMap<String, u64>) {
    store.request_counter().reset();
    let out = f.await;
    (out, store.request_counts())
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn dynamo_transfer_and_dispatch_stay_within_budget() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let t = TestStore::Dynamo(dynamo.clone());
    let store: DynStore = dynamo.clone();
    let d = dynamo.as_ref();
    let (practice, default) = setup(&store).await;
    let p = &practice.id;
    let desk = create_department_with(&store, p, "Front Desk", true).await;
    let c = message(&store, p, "client-1", &default.id, "hello", t0()).await;
    let first = only_alert_of(&t, &c).await;
    store.complete_alert(&first).await.expect("complete");

    // Transfer: the service's one read, one transaction.
    let (r, n) = requests(
        d,
        transfer(
            &store,
            p,
            &c,
            &desk.id,
            Some("please"),
            t0() + Duration::minutes(1),
        ),
    )
    .await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        n,
        counts(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "transfer"
    );
    let alert_id = only_alert_of(&t, &c).await;

    let (r, n) = requests(d, store.pending_alert_ids(100)).await;
    assert_eq!(r, Ok(vec![alert_id.clone()]));
    assert_eq!(n, counts(&[("Query", 1)]), "pending_alert_ids");

    // Dispatch to three recipients: the alert, the practice and department together, a claim and a
    // record per recipient, the completion.
    let sender = RecordingSender::with_clock(t0);
    let now = t0() + Duration::minutes(2);
    let (r, n) = requests(
        d,
        dispatch::dispatch_alert(store.as_ref(), &sender, &alert_id, now, DASHBOARD),
    )
    .await;
    assert_eq!(r.expect("dispatch"), report(3, 0, 0, true));
    assert_eq!(
        n,
        counts(&[
            ("BatchGetItem", 1),
            ("GetItem", 1),
            ("UpdateItem", 3 * 2 + 1)
        ]),
        "dispatch of one alert to three recipients"
    );

    // A replay of a done alert: one read.
    let (r, n) = requests(
        d,
        dispatch::dispatch_alert(store.as_ref(), &sender, &alert_id, now, DASHBOARD),
    )
    .await;
    assert_eq!(r.expect("dispatch"), report(0, 0, 0, true));
    assert_eq!(n, counts(&[("GetItem", 1)]), "replay");

    // A refused claim is one request.
    let k = delivery_key(&alert_id, DeliveryChannel::Email, DESK);
    let (r, n) = requests(d, store.claim_delivery(&alert_id, &k, now, now)).await;
    assert_eq!(r, Ok(false));
    assert_eq!(n, counts(&[("UpdateItem", 1)]), "a refused claim");
}

#[tokio::test]
async fn dynamo_alert_items_are_where_the_layout_says() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let t = TestStore::Dynamo(dynamo.clone());
    let store: DynStore = dynamo.clone();
    let (practice, default) = setup(&store).await;
    let p = &practice.id;
    let desk = create_department_with(&store, p, "Front Desk", true).await;
    let at = t0() + Duration::nanoseconds(123_456_789);
    let c = message(&store, p, "client-1", &default.id, "hello", at).await;
    let first = only_alert_of(&t, &c).await;
    let string = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| panic!("no string {name} in {item:?}"))
    };

    // Written pending, in the pending-alerts index, with empty delivery maps.
    let item = vetchat_tests::dynamo_raw_item(&dynamo, &format!("ALERT#{first}"), "ALERT")
        .await
        .expect("alert item");
    assert_eq!(string(&item, "status"), "pending");
    assert_eq!(string(&item, "GSI1PK"), "ALERTS#pending");
    assert_eq!(
        string(&item, "GSI1SK"),
        format!("2026-03-02T14:30:00.123456789Z#{first}")
    );
    let empty = AttributeValue::M(Default::default());
    assert_eq!(item.get("outcomes"), Some(&empty));
    assert_eq!(item.get("claims"), Some(&empty));

    // The transfer is kept on the conversation item (one read serves the next transfer), and its system
    // message takes the next seq.
    let moved_at = at + Duration::minutes(1);
    transfer(&store, p, &c, &desk.id, None, moved_at)
        .await
        .expect("transfer");
    let transfer_alert = alerts_of(&t, &c)
        .await
        .into_iter()
        .find(|a| a.kind() == AlertKind::Transfer)
        .expect("a transfer alert");
    let head = vetchat_tests::dynamo_raw_item(&dynamo, &format!("CONV#{p}#{c}"), "MSG~")
        .await
        .expect("conversation item");
    let transfers = head
        .get("transfers")
        .and_then(|v| v.as_l().ok())
        .expect("a list of transfers");
    let xfer = transfers[0].as_m().expect("a transfer");
    assert_eq!(
        (string(xfer, "from"), string(xfer, "to"), string(xfer, "by")),
        (
            default.id.to_string(),
            desk.id.to_string(),
            "staff-1".into()
        )
    );
    assert_eq!(head.get("last_seq"), Some(&AttributeValue::N("2".into())));
    let notice = vetchat_tests::dynamo_raw_item(
        &dynamo,
        &format!("CONV#{p}#{c}"),
        "MSG#00000000000000000002",
    )
    .await
    .expect("the transfer's system message");
    assert_eq!(
        string(&notice, "body"),
        "You are now chatting with Front Desk"
    );
    let claim_item = vetchat_tests::dynamo_raw_item(&dynamo, &format!("OPEN#{p}#client-1"), "OPEN")
        .await
        .expect("claim item");
    assert_eq!(string(&claim_item, "department_id"), desk.id.to_string());

    // Claims and outcomes under their keys, `@`, `+`, `:` and `'` as they are.
    let now = t0() + Duration::minutes(5);
    let id = &transfer_alert.id;
    let vet = delivery_key(id, DeliveryChannel::Email, VET);
    let phone = delivery_key(id, DeliveryChannel::Sms, PHONE);
    let desk_key = delivery_key(id, DeliveryChannel::Email, DESK);
    assert_eq!(
        store.claim_delivery(id, &vet, now, now + CLAIM_LEASE).await,
        Ok(true)
    );
    assert_eq!(
        store
            .claim_delivery(id, &phone, now, now + CLAIM_LEASE)
            .await,
        Ok(true)
    );
    store
        .record_delivery(id, &phone, &sent_at(now))
        .await
        .expect("record");
    let item = vetchat_tests::dynamo_raw_item(&dynamo, &format!("ALERT#{id}"), "ALERT")
        .await
        .expect("alert item");
    let claims = item["claims"].as_m().expect("claims map");
    assert_eq!(
        claims.keys().cloned().collect::<Vec<_>>(),
        vec![vet.clone()],
        "the recorded delivery's claim is gone"
    );
    assert_eq!(
        claims[&vet],
        AttributeValue::S("2026-03-02T14:36:00.000000000Z".into()),
        "the lease end, fixed-width"
    );
    let outcomes = item["outcomes"].as_m().expect("outcomes map");
    assert_eq!(
        outcomes.keys().cloned().collect::<Vec<_>>(),
        vec![phone.clone()]
    );
    let outcome = outcomes[&phone].as_m().expect("an outcome map");
    assert_eq!(outcome["status"], AttributeValue::S("sent".into()));
    assert!(!outcomes.contains_key(&desk_key));

    // Completed: done, and out of the index.
    store.complete_alert(id).await.expect("complete");
    let item = vetchat_tests::dynamo_raw_item(&dynamo, &format!("ALERT#{id}"), "ALERT")
        .await
        .expect("alert item");
    assert_eq!(string(&item, "status"), "done");
    assert!(!item.contains_key("GSI1PK") && !item.contains_key("GSI1SK"));
    assert_eq!(
        store.pending_alert_ids(10).await,
        Ok(vec![first.clone()]),
        "the other one is still pending"
    );
}
