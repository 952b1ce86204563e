//! The storage contract for conversations (`domain::store::Store`'s conversation methods), written once and
//! run on every store: the embedded `EmbeddedStore` in memory and on a file, and the `DynamoStore` on
//! DynamoDB Local (each test on a table of its own). The concurrency tests go through `domain::conversation`,
//! as the functions do. A few checks
//! only the DynamoDB store can answer (request budgets, the raw item layout) come at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use adapters::store::DynamoStore;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, Utc};
use domain::alert::{AlertKind, PendingAlert};
use domain::conversation::rate_limit::{ClientRateLimits, Limit};
use domain::conversation::{
    self, transfer_notice, Author, Channel, Conversation, ConversationId, ConversationStatus,
    Inbound, Message, MessageId, Routed,
};
use domain::department::Department;
use domain::error::{DomainError, InvalidCode};
use domain::identity::{Caller, DepartmentId, Ids, PracticeId, Role};
use domain::practice::Practice;
use domain::reminder::DueShards;
use domain::store::{
    ConversationDetail, ConversationFilter, ConversationPage, MessageRange, NewConversation,
    OpenConversation, RoutingContext, Store, StoreError,
};
use tokio::sync::Barrier;
use vetchat_tests::{
    default_department, fresh_dynamo_store, sample_department, sample_practice, t0, TestStore,
};

type DynStore = Arc<dyn Store>;

vetchat_tests::on_every_store!(
    a_conversation_starts_takes_messages_and_reads_back,
    a_client_has_one_open_conversation,
    starting_in_a_deleted_department_is_not_found_and_writes_nothing,
    a_redelivered_inbound_message_is_stored_once,
    ending_releases_the_claim_and_the_count,
    a_department_with_open_conversations_cannot_be_deleted,
    lists_newest_activity_first_with_filters,
    pages_walk_every_conversation_exactly_once,
    foreign_and_garbled_cursors_are_refused,
    another_practice_never_sees_a_conversation,
    thirty_two_texts_from_one_number_start_one_conversation,
    a_department_deleted_while_chats_start_never_keeps_one,
    counts_match_the_truth_after_concurrent_starts_ends_and_messages,
    a_client_is_limited_per_window_and_others_staff_and_texts_are_not,
    concurrent_messages_of_one_client_never_pass_the_limit,
    new_conversations_are_limited_when_staff_end_them_quickly,
    two_hundred_texts_from_one_number_one_conversation_one_alert,
);

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/// Ids unique in the test process, in creation order.
struct TestIds;

impl Ids for TestIds {
    fn next(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}_{:010}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

fn id(prefix: &str) -> String {
    TestIds.next(prefix)
}

/// A new practice whose default department has the id routing derives (`DepartmentId::default_for`).
async fn setup(store: &DynStore) -> (Practice, Department) {
    let mut practice = sample_practice();
    practice.default_department_id = DepartmentId::default_for(&practice.id);
    let default = default_department(&practice);
    store
        .create_practice(&practice, &default)
        .await
        .expect("create practice");
    (practice, default)
}

/// A department visible in the app, open 09:00–18:00 on weekdays (New York): `t0()` is a Monday 09:30.
async fn create_department(store: &DynStore, practice_id: &PracticeId, name: &str) -> Department {
    let mut d = sample_department(practice_id, name);
    d.settings.visible_in_app = true;
    store
        .create_department(&d)
        .await
        .expect("create department");
    d
}

fn conversation(
    practice_id: &PracticeId,
    department_id: &DepartmentId,
    client_id: &str,
    at: DateTime<Utc>,
) -> Conversation {
    Conversation {
        reply_from: None,
        last_whatsapp_at: None,
        id: ConversationId(id("cnv")),
        practice_id: practice_id.clone(),
        department_id: department_id.clone(),
        client_id: client_id.to_owned(),
        channel: Channel::App,
        status: ConversationStatus::Open,
        started_at: at,
        last_message_at: at,
        resolved_at: None,
        department_name: "Reception".into(),
        last_seq: 0,
        sms_opted_out_at: None,
        after_hours_replied_at: None,
    }
}

/// The client's next message in `c`: the `seq` after `c.last_seq`.
fn client_message(c: &Conversation, at: DateTime<Utc>, body: &str) -> Message {
    Message {
        id: MessageId(id("msg")),
        conversation_id: c.id.clone(),
        seq: c.last_seq + 1,
        at,
        author: Author::Client {
            id: c.client_id.clone(),
        },
        channel: c.channel,
        body: body.to_owned(),
        department_id: c.department_id.clone(),
        department_name: c.department_name.clone(),
        delivery: None,
    }
}

/// `c` as it is once its messages reach `last_seq`.
fn at_seq(c: &Conversation, last_seq: u64) -> Conversation {
    Conversation {
        last_seq,
        ..c.clone()
    }
}

/// A new conversation with its first message and its new-conversation alert.
fn new_conversation(mut c: Conversation, body: &str, dedup_key: Option<&str>) -> NewConversation {
    let messages = vec![client_message(&c, c.started_at, body)];
    c.last_seq = 1;
    let alert = PendingAlert::new_conversation(&TestIds, &c, body, c.started_at);
    NewConversation {
        conversation: c,
        messages,
        alert: Some(alert),
        dedup_key: dedup_key.map(str::to_owned),
        rate: None,
    }
}

/// Starts a conversation for `client_id` in `department_id` at `at`; panics if the store refuses.
async fn start(
    store: &DynStore,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
    client_id: &str,
    at: DateTime<Utc>,
) -> NewConversation {
    let new = new_conversation(
        conversation(practice_id, department_id, client_id, at),
        "Hello, my dog ate a sock",
        None,
    );
    store
        .start_conversation(&new)
        .await
        .expect("start conversation");
    new
}

fn open_of(c: &Conversation) -> OpenConversation {
    OpenConversation::of(c)
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
async fn claim(
    store: &DynStore,
    practice_id: &PracticeId,
    client_id: &str,
) -> Option<OpenConversation> {
    store
        .routing_context(
            practice_id,
            client_id,
            &DepartmentId::default_for(practice_id),
        )
        .await
        .expect("routing_context")
        .open_conversation
}

async fn detail(
    store: &DynStore,
    practice_id: &PracticeId,
    id: &ConversationId,
) -> ConversationDetail {
    store
        .conversation_detail(practice_id, id, MessageRange::ALL)
        .await
        .expect("conversation_detail")
        .expect("the conversation exists")
}

fn ids(conversations: &[Conversation]) -> Vec<&str> {
    conversations.iter().map(|c| c.id.as_str()).collect()
}

/// Every page of a listing, walked with `limit`.
async fn pages(
    store: &DynStore,
    practice_id: &PracticeId,
    filter: &ConversationFilter,
    limit: usize,
) -> Vec<ConversationPage> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_conversations(practice_id, filter, cursor.as_deref(), limit)
            .await
            .expect("list_conversations");
        cursor = page.next_cursor.clone();
        pages.push(page);
        assert!(pages.len() < 1000, "the cursor never runs out");
        if cursor.is_none() {
            return pages;
        }
    }
}

/// The whole listing (large pages).
async fn list_all(
    store: &DynStore,
    practice_id: &PracticeId,
    filter: &ConversationFilter,
) -> Vec<Conversation> {
    pages(store, practice_id, filter, 100)
        .await
        .into_iter()
        .flat_map(|p| p.conversations)
        .collect()
}

fn filter(
    status: Option<ConversationStatus>,
    department_id: Option<&DepartmentId>,
) -> ConversationFilter {
    ConversationFilter {
        status,
        department_id: department_id.cloned(),
    }
}

/// Newest activity first, ties by id (descending): the order every list answers.
fn newest_first(mut conversations: Vec<Conversation>) -> Vec<Conversation> {
    conversations.sort_by(|a, b| (b.last_message_at, &b.id).cmp(&(a.last_message_at, &a.id)));
    conversations
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
    channel: Channel,
    client_id: &str,
    department_id: Option<&DepartmentId>,
    body: &str,
) -> Inbound {
    Inbound {
        to: None,
        practice_id: practice_id.clone(),
        channel,
        client_id: client_id.to_owned(),
        department_id: department_id.cloned(),
        body: body.to_owned(),
        dedup_key: None,
        rate_limits: None,
    }
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

// ---------------------------------------------------------------------------------------------------------
// Start, append, read
// ---------------------------------------------------------------------------------------------------------

async fn a_conversation_starts_takes_messages_and_reads_back(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let new = start(&store, &practice.id, &default.id, "client-1", t0()).await;
    let c = new.conversation.clone();

    let ctx = store
        .routing_context(&practice.id, "client-1", &default.id)
        .await
        .expect("routing_context");
    let mut counted = default.clone();
    counted.open_conversations = 1;
    assert_eq!(
        ctx,
        RoutingContext {
            practice: Some(practice.clone()),
            department: Some(counted),
            open_conversation: Some(open_of(&c)),
            client_rate: None,
            sms_opted_out_at: None,
        }
    );
    assert_eq!(
        claim(&store, &practice.id, "client-2").await,
        None,
        "another client"
    );
    let unknown = store
        .routing_context(&practice.id, "client-1", &DepartmentId(id("dep")))
        .await
        .expect("routing_context");
    assert_eq!(
        (unknown.department, unknown.open_conversation),
        (None, Some(open_of(&c)))
    );
    let nobody = store
        .routing_context(&PracticeId(id("prc")), "client-1", &default.id)
        .await
        .expect("routing_context");
    assert_eq!(
        nobody,
        RoutingContext {
            practice: None,
            department: None,
            open_conversation: None,
            client_rate: None,
            sms_opted_out_at: None,
        }
    );

    assert_eq!(
        store.get_conversation(&practice.id, &c.id).await,
        Ok(Some(c.clone()))
    );
    assert_eq!(
        detail(&store, &practice.id, &c.id).await,
        ConversationDetail {
            conversation: c.clone(),
            messages: new.messages.clone(),
            transfers: vec![],
            next_after: None,
        }
    );
    assert_eq!(
        store
            .get_conversation(&practice.id, &ConversationId(id("cnv")))
            .await,
        Ok(None)
    );
    assert_eq!(
        store
            .conversation_detail(&practice.id, &ConversationId(id("cnv")), MessageRange::ALL)
            .await,
        Ok(None)
    );

    // A batch is stored in seq order (the order it was written in), whatever the times say; the activity
    // moves to its latest message.
    let later = client_message(&c, t0() + Duration::minutes(6), "still there?");
    let earlier = client_message(&at_seq(&c, 2), t0() + Duration::minutes(5), "it was blue");
    store
        .append_messages(
            &practice.id,
            &open_of(&c),
            &[later.clone(), earlier.clone()],
            None,
        )
        .await
        .expect("append");
    // Within one microsecond, by nanoseconds.
    let close = client_message(
        &at_seq(&c, 3),
        t0() + Duration::minutes(6) + Duration::nanoseconds(500),
        "hello?",
    );
    // A writer that read an older seq is refused, and writes nothing.
    assert_eq!(
        store
            .append_messages(
                &practice.id,
                &open_of(&c),
                &[client_message(&c, t0(), "stale")],
                None
            )
            .await,
        Err(StoreError::VersionMismatch)
    );
    store
        .append_messages(
            &practice.id,
            &open_of(&at_seq(&c, 3)),
            std::slice::from_ref(&close),
            None,
        )
        .await
        .expect("append");

    let read = detail(&store, &practice.id, &c.id).await;
    assert_eq!(
        read.messages,
        vec![new.messages[0].clone(), later, earlier, close.clone()]
    );
    assert_eq!(
        read.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let moved = Conversation {
        last_message_at: close.at,
        last_seq: 4,
        ..c.clone()
    };
    assert_eq!(read.conversation, moved);
    assert_eq!(
        store.get_conversation(&practice.id, &c.id).await,
        Ok(Some(moved.clone()))
    );
    assert_eq!(
        list_all(&store, &practice.id, &ConversationFilter::default()).await,
        vec![moved]
    );
    assert_eq!(
        t.pending_alerts().await,
        vec![new.alert.clone().expect("an alert")]
    );
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(1));
}

async fn a_client_has_one_open_conversation(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    let first = start(&store, &practice.id, &default.id, "client-1", t0()).await;

    // The same client, another department, even with a gateway message id: refused, nothing written.
    let second = new_conversation(
        conversation(
            &practice.id,
            &surgery.id,
            "client-1",
            t0() + Duration::minutes(1),
        ),
        "again",
        Some("gw-1"),
    );
    assert_eq!(
        store.start_conversation(&second).await,
        Err(StoreError::ClientHasOpenConversation)
    );
    assert_eq!(
        store
            .get_conversation(&practice.id, &second.conversation.id)
            .await,
        Ok(None)
    );
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(0));
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(1));
    assert_eq!(
        claim(&store, &practice.id, "client-1").await,
        Some(open_of(&first.conversation))
    );
    assert_eq!(
        t.pending_alerts().await,
        vec![first.alert.clone().expect("an alert")]
    );
    assert_eq!(
        ids(&list_all(&store, &practice.id, &ConversationFilter::default()).await),
        vec![first.conversation.id.as_str()]
    );
    // The refused start did not keep its gateway message id.
    let m = client_message(&first.conversation, t0() + Duration::minutes(2), "again");
    store
        .append_messages(
            &practice.id,
            &open_of(&first.conversation),
            &[m],
            Some("gw-1"),
        )
        .await
        .expect("the id is new");

    // Another client is independent.
    start(&store, &practice.id, &surgery.id, "client-2", t0()).await;
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(1));
}

async fn starting_in_a_deleted_department_is_not_found_and_writes_nothing(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    store.delete_department(&surgery).await.expect("delete");

    let new = new_conversation(
        conversation(&practice.id, &surgery.id, "client-1", t0()),
        "hello",
        Some("gw-1"),
    );
    assert_eq!(
        store.start_conversation(&new).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        store
            .get_conversation(&practice.id, &new.conversation.id)
            .await,
        Ok(None)
    );
    assert_eq!(
        store
            .conversation_detail(&practice.id, &new.conversation.id, MessageRange::ALL)
            .await,
        Ok(None)
    );
    assert_eq!(claim(&store, &practice.id, "client-1").await, None);
    assert_eq!(
        open_count(&store, &practice.id, &surgery.id).await,
        None,
        "not re-created by the counter"
    );
    assert_eq!(t.pending_alerts().await, vec![]);
    assert_eq!(
        list_all(&store, &practice.id, &ConversationFilter::default()).await,
        vec![]
    );

    // Neither the claim nor the gateway message id was kept: the same message starts in the default one.
    let retry = new_conversation(
        conversation(&practice.id, &default.id, "client-1", t0()),
        "hello",
        Some("gw-1"),
    );
    store
        .start_conversation(&retry)
        .await
        .expect("start in the default department");
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(1));

    // A department that never existed, likewise.
    let nowhere = new_conversation(
        conversation(&practice.id, &DepartmentId(id("dep")), "client-2", t0()),
        "hello",
        None,
    );
    assert_eq!(
        store.start_conversation(&nowhere).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(claim(&store, &practice.id, "client-2").await, None);
}

async fn a_redelivered_inbound_message_is_stored_once(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let first = new_conversation(
        conversation(&practice.id, &default.id, "+12025550101", t0()),
        "hi",
        Some("gw-1"),
    );
    let c = first.conversation.clone();
    store.start_conversation(&first).await.expect("start");

    // The gateway delivers the first message again (a new message id, the same gateway id).
    let again = client_message(&c, t0() + Duration::seconds(30), "hi");
    assert_eq!(
        store
            .append_messages(&practice.id, &open_of(&c), &[again], Some("gw-1"))
            .await,
        Err(StoreError::DuplicateInbound(c.id.clone()))
    );
    let m2 = client_message(&c, t0() + Duration::minutes(1), "second");
    store
        .append_messages(
            &practice.id,
            &open_of(&c),
            std::slice::from_ref(&m2),
            Some("gw-2"),
        )
        .await
        .expect("a new message");
    let m2_again = client_message(&at_seq(&c, 2), t0() + Duration::minutes(2), "second");
    assert_eq!(
        store
            .append_messages(
                &practice.id,
                &open_of(&at_seq(&c, 2)),
                &[m2_again],
                Some("gw-2")
            )
            .await,
        Err(StoreError::DuplicateInbound(c.id.clone()))
    );
    let read = detail(&store, &practice.id, &c.id).await;
    assert_eq!(read.messages, vec![first.messages[0].clone(), m2.clone()]);
    assert_eq!(
        read.conversation.last_message_at, m2.at,
        "a refused append moves nothing"
    );

    // After the conversation ended, a redelivery would start a new one: it names the first instead.
    store
        .end_conversation(&read.conversation, t0() + Duration::hours(1))
        .await
        .expect("end");
    let late = new_conversation(
        conversation(
            &practice.id,
            &default.id,
            "+12025550101",
            t0() + Duration::hours(2),
        ),
        "hi",
        Some("gw-1"),
    );
    assert_eq!(
        store.start_conversation(&late).await,
        Err(StoreError::DuplicateInbound(c.id.clone()))
    );
    assert_eq!(
        store
            .get_conversation(&practice.id, &late.conversation.id)
            .await,
        Ok(None)
    );
    assert_eq!(claim(&store, &practice.id, "+12025550101").await, None);
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(0));
    assert_eq!(t.pending_alerts().await.len(), 1);

    // Gateway ids are per practice.
    let (other, other_default) = setup(&store).await;
    let elsewhere = new_conversation(
        conversation(&other.id, &other_default.id, "+12025550101", t0()),
        "hi",
        Some("gw-1"),
    );
    store
        .start_conversation(&elsewhere)
        .await
        .expect("another practice's gw-1");
}

// ---------------------------------------------------------------------------------------------------------
// End, and departments with conversations
// ---------------------------------------------------------------------------------------------------------

async fn ending_releases_the_claim_and_the_count(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    let c = start(&store, &practice.id, &surgery.id, "client-1", t0())
        .await
        .conversation;
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(1));

    let at = t0() + Duration::hours(1);
    let ended = store.end_conversation(&c, at).await.expect("end");
    assert_eq!(
        ended,
        Conversation {
            status: ConversationStatus::Resolved,
            resolved_at: Some(at),
            ..c.clone()
        }
    );
    assert_eq!(
        store.get_conversation(&practice.id, &c.id).await,
        Ok(Some(ended.clone()))
    );
    assert_eq!(
        detail(&store, &practice.id, &c.id).await.conversation,
        ended
    );
    assert_eq!(claim(&store, &practice.id, "client-1").await, None);
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(0));

    // Ended is ended: no more messages, no second end.
    let m = client_message(&c, at + Duration::minutes(1), "one more thing");
    assert_eq!(
        store
            .append_messages(&practice.id, &open_of(&c), &[m], None)
            .await,
        Err(StoreError::NotFound)
    );
    assert_eq!(detail(&store, &practice.id, &c.id).await.messages.len(), 1);
    assert_eq!(
        store.end_conversation(&c, at).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(
        store.end_conversation(&ended, at).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(0));
    // The domain treats a second end as done.
    let again = conversation::end_conversation(
        store.as_ref(),
        &staff(&practice.id),
        &c.id,
        at + Duration::hours(1),
    )
    .await
    .expect("ending twice is not an error");
    assert_eq!(again, ended);
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(0));

    // The client may start again; a copy in another department (moved meanwhile) cannot end it.
    let c2 = start(
        &store,
        &practice.id,
        &surgery.id,
        "client-1",
        t0() + Duration::hours(3),
    )
    .await
    .conversation;
    let moved = Conversation {
        department_id: default.id.clone(),
        ..c2.clone()
    };
    assert_eq!(
        store.end_conversation(&moved, at).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(
        claim(&store, &practice.id, "client-1").await,
        Some(open_of(&c2))
    );
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(1));
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(0));
    assert_eq!(
        store.get_conversation(&practice.id, &c2.id).await,
        Ok(Some(c2.clone()))
    );
    // Unknown conversation.
    let ghost = conversation(&practice.id, &surgery.id, "client-9", t0());
    assert_eq!(
        store.end_conversation(&ghost, at).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(1));
}

async fn a_department_with_open_conversations_cannot_be_deleted(t: TestStore) {
    let store = t.store();
    let (practice, _) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    let a = start(&store, &practice.id, &surgery.id, "client-a", t0())
        .await
        .conversation;
    let b = start(&store, &practice.id, &surgery.id, "client-b", t0())
        .await
        .conversation;

    // The caller's copy says 0 open conversations; the stored counter decides.
    assert_eq!(surgery.open_conversations, 0);
    assert_eq!(
        store.delete_department(&surgery).await,
        Err(StoreError::HasOpenConversations)
    );
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, Some(2));
    store
        .end_conversation(&a, t0() + Duration::hours(1))
        .await
        .expect("end a");
    assert_eq!(
        store.delete_department(&surgery).await,
        Err(StoreError::HasOpenConversations)
    );
    store
        .end_conversation(&b, t0() + Duration::hours(1))
        .await
        .expect("end b");
    assert_eq!(store.delete_department(&surgery).await, Ok(()));
    assert_eq!(open_count(&store, &practice.id, &surgery.id).await, None);
    assert_eq!(
        store.delete_department(&surgery).await,
        Err(StoreError::NotFound)
    );
    // Its name is free; its resolved conversations are still there to read.
    create_department(&store, &practice.id, "Surgery").await;
    assert_eq!(
        detail(&store, &practice.id, &a.id)
            .await
            .conversation
            .status,
        ConversationStatus::Resolved
    );
}

// ---------------------------------------------------------------------------------------------------------
// Lists
// ---------------------------------------------------------------------------------------------------------

async fn lists_newest_activity_first_with_filters(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    assert_eq!(
        store
            .list_conversations(&practice.id, &ConversationFilter::default(), None, 10)
            .await,
        Ok(ConversationPage {
            conversations: vec![],
            next_cursor: None
        })
    );

    let minutes = |m: i64| t0() + Duration::minutes(m);
    let mut truth = Vec::new();
    for (i, department) in [&default, &surgery, &default, &surgery, &default]
        .into_iter()
        .enumerate()
    {
        let c = start(
            &store,
            &practice.id,
            &department.id,
            &format!("client-{i}"),
            minutes(i as i64),
        )
        .await
        .conversation;
        truth.push(c);
    }
    // Two with the very same activity instant: the id orders them.
    for client in ["tie-a", "tie-b"] {
        truth.push(
            start(&store, &practice.id, &surgery.id, client, minutes(7))
                .await
                .conversation,
        );
    }
    // c1 and c4 end; c0 gets a message and becomes the newest.
    for i in [1, 4] {
        truth[i] = store
            .end_conversation(&truth[i], minutes(30))
            .await
            .expect("end");
    }
    let m = client_message(&truth[0], minutes(20), "news");
    store
        .append_messages(&practice.id, &open_of(&truth[0]), &[m], None)
        .await
        .expect("append");
    truth[0].last_message_at = minutes(20);
    truth[0].last_seq = 2;

    let expect = |keep: &dyn Fn(&Conversation) -> bool| {
        newest_first(truth.iter().filter(|c| keep(c)).cloned().collect())
    };
    let all = expect(&|_| true);
    assert_eq!(
        all[0].id, truth[0].id,
        "the conversation with the newest message first"
    );
    let open = ConversationStatus::Open;
    let resolved = ConversationStatus::Resolved;
    let cases: Vec<(ConversationFilter, Vec<Conversation>)> = vec![
        (filter(None, None), all.clone()),
        (filter(Some(open), None), expect(&|c| c.status == open)),
        (
            filter(Some(resolved), None),
            expect(&|c| c.status == resolved),
        ),
        (
            filter(None, Some(&surgery.id)),
            expect(&|c| c.department_id == surgery.id),
        ),
        (
            filter(Some(open), Some(&surgery.id)),
            expect(&|c| c.status == open && c.department_id == surgery.id),
        ),
        (
            filter(Some(resolved), Some(&default.id)),
            expect(&|c| c.status == resolved && c.department_id == default.id),
        ),
        (filter(None, Some(&DepartmentId(id("dep")))), vec![]),
    ];
    for (f, expected) in cases {
        assert!(f.department_id.is_some() || !expected.is_empty());
        let page = store
            .list_conversations(&practice.id, &f, None, 100)
            .await
            .expect("list");
        assert_eq!(page.conversations, expected, "{f:?}");
        assert_eq!(page.next_cursor, None, "{f:?}: everything on one page");
    }
}

async fn pages_walk_every_conversation_exactly_once(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let surgery = create_department(&store, &practice.id, "Surgery").await;
    let mut truth = Vec::new();
    for i in 0..13i64 {
        let department = if i % 2 == 0 { &default } else { &surgery };
        // Some share an instant, so ties fall on page boundaries too.
        let at = t0() + Duration::minutes(i / 2);
        let mut c = start(
            &store,
            &practice.id,
            &department.id,
            &format!("client-{i}"),
            at,
        )
        .await
        .conversation;
        if i % 3 == 0 {
            c = store
                .end_conversation(&c, at + Duration::hours(1))
                .await
                .expect("end");
        }
        truth.push(c);
    }

    let filters = [
        filter(None, None),
        filter(Some(ConversationStatus::Open), None),
        filter(Some(ConversationStatus::Resolved), None),
        filter(None, Some(&surgery.id)),
        filter(Some(ConversationStatus::Open), Some(&default.id)),
    ];
    for f in &filters {
        let expected = newest_first(
            truth
                .iter()
                .filter(|c| f.status.is_none_or(|s| c.status == s))
                .filter(|c| {
                    f.department_id
                        .as_ref()
                        .is_none_or(|d| &c.department_id == d)
                })
                .cloned()
                .collect(),
        );
        for limit in [1, 2, 3, 5, 13, 20] {
            let pages = pages(&store, &practice.id, f, limit).await;
            let walked: Vec<Conversation> =
                pages.iter().flat_map(|p| p.conversations.clone()).collect();
            assert_eq!(ids(&walked), ids(&expected), "{f:?}, limit {limit}");
            assert_eq!(walked, expected);
            // Full pages until the last; no empty page after a full one.
            let (last, full) = pages.split_last().expect("a page");
            assert!(
                full.iter().all(|p| p.conversations.len() == limit),
                "{f:?}, limit {limit}"
            );
            assert!(!last.conversations.is_empty() && last.conversations.len() <= limit);
            assert_eq!(
                pages.len(),
                expected.len().div_ceil(limit),
                "{f:?}, limit {limit}"
            );
        }
    }
}

async fn foreign_and_garbled_cursors_are_refused(t: TestStore) {
    let store = t.store();
    let (a, a_default) = setup(&store).await;
    let (b, b_default) = setup(&store).await;
    for i in 0..3 {
        start(
            &store,
            &a.id,
            &a_default.id,
            &format!("a-{i}"),
            t0() + Duration::minutes(i),
        )
        .await;
        start(
            &store,
            &b.id,
            &b_default.id,
            &format!("b-{i}"),
            t0() + Duration::minutes(i),
        )
        .await;
    }
    let everything = ConversationFilter::default();
    let first = store
        .list_conversations(&a.id, &everything, None, 1)
        .await
        .expect("list");
    let cursor = first.next_cursor.expect("more than one page");

    let truncated = &cursor[..cursor.len() / 2];
    let mut flipped = cursor.clone().into_bytes();
    flipped[cursor.len() / 2] = if flipped[cursor.len() / 2] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let flipped = String::from_utf8(flipped).expect("ascii");
    for garbled in [
        "",
        "not a cursor!",
        "AAAA",
        "e30",
        "bnVsbA",
        truncated,
        flipped.as_str(),
    ] {
        let r = store
            .list_conversations(&a.id, &everything, Some(garbled), 10)
            .await;
        match r {
            Err(StoreError::BadCursor) => {}
            // A flipped character may still decode: then it may only ever show A's own conversations.
            Ok(page) if garbled == flipped => {
                assert!(page.conversations.iter().all(|c| c.practice_id == a.id));
            }
            other => panic!("cursor {garbled:?}: {other:?}"),
        }
    }

    // A's cursor in B's hands: refused, or at most a page of B's own, never A's conversations.
    match store
        .list_conversations(&b.id, &everything, Some(&cursor), 10)
        .await
    {
        Err(StoreError::BadCursor) => {}
        Ok(page) => assert!(
            page.conversations.iter().all(|c| c.practice_id == b.id),
            "{page:?}"
        ),
        Err(other) => panic!("{other:?}"),
    }
    // A's cursor still works for A.
    let rest = store
        .list_conversations(&a.id, &everything, Some(&cursor), 10)
        .await
        .expect("list");
    assert_eq!(rest.conversations.len(), 2);
    assert!(rest.conversations.iter().all(|c| c.practice_id == a.id));
}

async fn another_practice_never_sees_a_conversation(t: TestStore) {
    let store = t.store();
    let (a, a_default) = setup(&store).await;
    let (b, b_default) = setup(&store).await;
    let new = start(&store, &a.id, &a_default.id, "shared-client", t0()).await;
    let c = new.conversation.clone();

    assert_eq!(store.get_conversation(&b.id, &c.id).await, Ok(None));
    assert_eq!(
        store
            .conversation_detail(&b.id, &c.id, MessageRange::ALL)
            .await,
        Ok(None)
    );
    assert_eq!(
        list_all(&store, &b.id, &ConversationFilter::default()).await,
        vec![]
    );
    assert_eq!(
        list_all(
            &store,
            &b.id,
            &filter(Some(ConversationStatus::Open), Some(&a_default.id))
        )
        .await,
        vec![]
    );
    let ctx = store
        .routing_context(&b.id, "shared-client", &a_default.id)
        .await
        .expect("routing_context");
    assert_eq!(
        ctx,
        RoutingContext {
            practice: Some(b.clone()),
            department: None,
            open_conversation: None,
            client_rate: None,
            sms_opted_out_at: None,
        }
    );

    // Writes addressed through B do not reach A's conversation.
    let m = client_message(&c, t0() + Duration::minutes(1), "through B");
    assert_eq!(
        store.append_messages(&b.id, &open_of(&c), &[m], None).await,
        Err(StoreError::NotFound)
    );
    let as_b = Conversation {
        practice_id: b.id.clone(),
        department_id: b_default.id.clone(),
        ..c.clone()
    };
    assert_eq!(
        store.end_conversation(&as_b, t0()).await,
        Err(StoreError::VersionMismatch)
    );
    assert_eq!(open_count(&store, &b.id, &b_default.id).await, Some(0));

    // B may even hold a conversation with the same id and the same client: both stand apart.
    let same_id = new_conversation(as_b.clone(), "B's own", None);
    store
        .start_conversation(&same_id)
        .await
        .expect("B's conversation");
    assert_eq!(detail(&store, &a.id, &c.id).await.messages, new.messages);
    assert_eq!(
        detail(&store, &b.id, &c.id).await.messages,
        same_id.messages
    );
    assert_eq!(
        claim(&store, &a.id, "shared-client").await,
        Some(open_of(&c))
    );
    assert_eq!(
        claim(&store, &b.id, "shared-client").await,
        Some(open_of(&as_b))
    );
    store.end_conversation(&as_b, t0()).await.expect("end B's");
    assert_eq!(detail(&store, &a.id, &c.id).await.conversation, c);
    assert_eq!(open_count(&store, &a.id, &a_default.id).await, Some(1));
    assert_eq!(
        list_all(&store, &a.id, &ConversationFilter::default()).await,
        vec![c]
    );
}

// ---------------------------------------------------------------------------------------------------------
// Real concurrency, through the routing service: every racer starts at a barrier.
// ---------------------------------------------------------------------------------------------------------

async fn thirty_two_texts_from_one_number_start_one_conversation(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    const FROM: &str = "+12025550142";
    let bodies: Vec<String> = (0..32).map(|i| format!("text {i}")).collect();

    let s = store.clone();
    let pid = practice.id.clone();
    let results = race(bodies.clone(), move |body| {
        let (s, pid) = (s.clone(), pid.clone());
        async move {
            let message = inbound(&pid, Channel::Sms, FROM, None, &body);
            conversation::route_inbound(s.as_ref(), message, t0(), &TestIds).await
        }
    })
    .await;

    let routed: Vec<Routed> = results
        .into_iter()
        .map(|r| r.expect("every text is taken"))
        .collect();
    assert_eq!(
        routed.iter().filter(|r| r.new_conversation).count(),
        1,
        "{routed:?}"
    );
    let conversations: BTreeSet<&ConversationId> = routed
        .iter()
        .filter_map(|r| r.conversation_id.as_ref())
        .collect();
    assert_eq!(
        conversations.len(),
        1,
        "one conversation: {conversations:?}"
    );
    let id = routed[0].conversation_id.clone().expect("a conversation");
    assert!(routed
        .iter()
        .all(|r| r.department_id.as_ref() == Some(&default.id)));

    let read = detail(&store, &practice.id, &id).await;
    let stored: BTreeSet<&str> = read.messages.iter().map(|m| m.body.as_str()).collect();
    let sent: BTreeSet<&str> = bodies.iter().map(String::as_str).collect();
    assert_eq!(stored, sent);
    assert_eq!(
        read.messages.len(),
        32,
        "each text once, no auto-replies to texts"
    );
    assert_eq!(read.conversation.status, ConversationStatus::Open);
    assert_eq!(
        list_all(&store, &practice.id, &ConversationFilter::default())
            .await
            .len(),
        1
    );

    let alerts = t.pending_alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(
        (
            &alerts[0]
                .subject
                .conversation()
                .expect("about a conversation")
                .conversation_id,
            alerts[0].kind(),
            &alerts[0].department_id
        ),
        (&id, AlertKind::NewConversation, &default.id)
    );
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(1));
    assert_eq!(
        claim(&store, &practice.id, FROM)
            .await
            .map(|o| o.conversation_id),
        Some(id)
    );
}

async fn a_department_deleted_while_chats_start_never_keeps_one(t: TestStore) {
    let store = t.store();
    let (practice, _) = setup(&store).await;
    const CHATS: usize = 8;
    let mut outcomes = BTreeMap::new();
    // The delete is released a little later each round, so both outcomes (and the window between a
    // chat's read and its write) come up.
    for (round, delete_after_ms) in [0u64, 3, 10, 30, 60, 120, 250].into_iter().enumerate() {
        let department = create_department(&store, &practice.id, &format!("Round {round}")).await;
        enum Racer {
            Chat(String, u64),
            Delete(u64),
        }
        enum Result_ {
            Chat(Result<Routed, DomainError>),
            Delete(Result<(), StoreError>),
        }
        let mut racers: Vec<Racer> = (0..CHATS)
            .map(|i| Racer::Chat(format!("r{round}-client-{i}"), (i as u64 * 3) % 8))
            .collect();
        racers.insert(CHATS / 2, Racer::Delete(delete_after_ms));

        let (s, pid, d) = (store.clone(), practice.id.clone(), department.clone());
        let results = race(racers, move |racer| {
            let (s, pid, d) = (s.clone(), pid.clone(), d.clone());
            async move {
                match racer {
                    Racer::Chat(client, delay) => {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        let message = inbound(&pid, Channel::App, &client, Some(&d.id), "hello");
                        Result_::Chat(
                            conversation::route_inbound(s.as_ref(), message, t0(), &TestIds).await,
                        )
                    }
                    Racer::Delete(delay) => {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                        Result_::Delete(s.delete_department(&d).await)
                    }
                }
            }
        })
        .await;

        let mut started = 0;
        let mut refused = 0;
        let mut deleted = None;
        for r in results {
            match r {
                Result_::Chat(Ok(routed)) => {
                    assert!(routed.new_conversation);
                    assert_eq!(routed.department_id.as_ref(), Some(&department.id));
                    started += 1;
                }
                Result_::Chat(Err(DomainError::Invalid {
                    code: InvalidCode::DepartmentNotVisible,
                    ..
                })) => refused += 1,
                Result_::Chat(Err(e)) => panic!("round {round}: {e:?}"),
                Result_::Delete(r) => deleted = Some(r),
            }
        }
        let listed = list_all(&store, &practice.id, &filter(None, Some(&department.id))).await;
        match deleted.expect("the delete ran") {
            Ok(()) => {
                // The delete won: no chat got in, before or after.
                assert_eq!((started, refused), (0, CHATS), "round {round}");
                assert_eq!(
                    listed,
                    vec![],
                    "round {round}: a conversation in a deleted department"
                );
                assert_eq!(open_count(&store, &practice.id, &department.id).await, None);
                *outcomes.entry("delete won").or_insert(0) += 1;
            }
            Err(StoreError::HasOpenConversations) => {
                // A chat won: the department stays, and so does every chat.
                assert_eq!((started, refused), (CHATS, 0), "round {round}");
                assert_eq!(listed.len(), CHATS);
                assert_eq!(
                    open_count(&store, &practice.id, &department.id).await,
                    Some(CHATS as u32)
                );
                *outcomes.entry("a chat won").or_insert(0) += 1;
            }
            Err(e) => panic!("round {round}: delete {e:?}"),
        }
    }
    eprintln!("outcomes: {outcomes:?}");
    // Every alert belongs to a conversation that exists.
    for alert in t.pending_alerts().await {
        assert!(store
            .get_conversation(
                &practice.id,
                &alert
                    .subject
                    .conversation()
                    .expect("about a conversation")
                    .conversation_id,
            )
            .await
            .expect("get")
            .is_some());
    }
}

async fn counts_match_the_truth_after_concurrent_starts_ends_and_messages(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let a = create_department(&store, &practice.id, "Alpha").await;
    let b = create_department(&store, &practice.id, "Beta").await;
    let departments = [default.id.clone(), a.id.clone(), b.id.clone()];
    let pid = practice.id.clone();

    // Phase 1: twelve clients start, concurrently.
    let s = store.clone();
    let (p, deps) = (pid.clone(), departments.clone());
    let first: Vec<Routed> = race((0..12).collect::<Vec<usize>>(), move |i| {
        let (s, p, d) = (s.clone(), p.clone(), deps[i % 3].clone());
        async move {
            let message = inbound(&p, Channel::App, &format!("old-{i}"), Some(&d), "first");
            conversation::route_inbound(s.as_ref(), message, t0(), &TestIds).await
        }
    })
    .await
    .into_iter()
    .map(|r| r.expect("start"))
    .collect();
    assert!(first.iter().all(|r| r.new_conversation));

    // Phase 2, all at once: each old conversation ended twice, each old client writes again (joining the
    // old conversation or, after its end, starting a new one), and twelve new clients start.
    enum Racer {
        End(ConversationId),
        Write(String, DepartmentId, String),
    }
    let mut racers = Vec::new();
    for (i, r) in first.iter().enumerate() {
        racers.push(Racer::End(
            r.conversation_id.clone().expect("a conversation"),
        ));
        racers.push(Racer::End(
            r.conversation_id.clone().expect("a conversation"),
        ));
        racers.push(Racer::Write(
            format!("old-{i}"),
            departments[(i + 1) % 3].clone(),
            format!("again {i}"),
        ));
        racers.push(Racer::Write(
            format!("new-{i}"),
            departments[i % 3].clone(),
            format!("new {i}"),
        ));
    }
    let s = store.clone();
    let p = pid.clone();
    let results = race(racers, move |racer| {
        let (s, p) = (s.clone(), p.clone());
        async move {
            let now = t0() + Duration::minutes(5);
            match racer {
                Racer::End(id) => conversation::end_conversation(s.as_ref(), &staff(&p), &id, now)
                    .await
                    .map(|c| (c.id, String::new())),
                Racer::Write(client, department, body) => {
                    let message = inbound(&p, Channel::App, &client, Some(&department), &body);
                    conversation::route_inbound(s.as_ref(), message, now, &TestIds)
                        .await
                        .map(|r| (r.conversation_id.expect("a conversation"), body))
                }
            }
        }
    })
    .await;

    // Every write landed in the conversation it was answered with.
    for r in results {
        let (id, body) = r.expect("every end and every message succeeds");
        let read = detail(&store, &pid, &id).await;
        if !body.is_empty() {
            assert!(
                read.messages.iter().any(|m| m.body == body),
                "{body} in {id}"
            );
        }
    }
    for r in &first {
        assert_eq!(
            detail(&store, &pid, r.conversation_id.as_ref().unwrap())
                .await
                .conversation
                .status,
            ConversationStatus::Resolved
        );
    }

    // The counters, the claims and the alerts agree with the conversations.
    let all = list_all(&store, &pid, &ConversationFilter::default()).await;
    let open: Vec<&Conversation> = all
        .iter()
        .filter(|c| c.status == ConversationStatus::Open)
        .collect();
    for d in &departments {
        let truth = open.iter().filter(|c| &c.department_id == d).count();
        assert_eq!(
            open_count(&store, &pid, d).await,
            Some(truth as u32),
            "department {d}"
        );
        assert_eq!(
            list_all(
                &store,
                &pid,
                &filter(Some(ConversationStatus::Open), Some(d))
            )
            .await
            .len(),
            truth
        );
    }
    let clients: BTreeSet<&str> = all.iter().map(|c| c.client_id.as_str()).collect();
    for client in clients {
        let open_ones: Vec<&&Conversation> =
            open.iter().filter(|c| c.client_id == client).collect();
        assert!(
            open_ones.len() <= 1,
            "{client} has {} open conversations",
            open_ones.len()
        );
        assert_eq!(
            claim(&store, &pid, client).await,
            open_ones.first().map(|c| open_of(c)),
            "{client}"
        );
    }
    assert!(open.len() >= 12, "the new clients' conversations are open");
    let alerts = t.pending_alerts().await;
    let alerted: BTreeSet<&ConversationId> = alerts
        .iter()
        .map(|a| {
            &a.subject
                .conversation()
                .expect("about a conversation")
                .conversation_id
        })
        .collect();
    assert_eq!(alerts.len(), all.len(), "one alert per conversation");
    assert_eq!(alerted, all.iter().map(|c| &c.id).collect());
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB only: request budgets and the item layout
// ---------------------------------------------------------------------------------------------------------

/// The requests `f` sends, by operation.
async fn requests<F: Future>(store: &DynamoStore, f: F) -> (F::Output, BTreeMap<String, u64>) {
    store.request_counter().reset();
    let out = f.await;
    (out, store.request_counts())
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test]
async fn dynamo_conversation_requests_stay_within_budget() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let store: DynStore = dynamo.clone();
    let (practice, default) = setup(&store).await;
    let d = dynamo.as_ref();

    let (r, n) = requests(
        d,
        store.routing_context(&practice.id, "client-1", &default.id),
    )
    .await;
    assert!(r.is_ok());
    assert_eq!(n, counts(&[("BatchGetItem", 1)]), "routing_context");

    let new = new_conversation(
        conversation(&practice.id, &default.id, "client-1", t0()),
        "hi",
        Some("gw-1"),
    );
    let c = new.conversation.clone();
    let (r, n) = requests(d, store.start_conversation(&new)).await;
    assert_eq!(
        (r, n),
        (Ok(()), counts(&[("TransactWriteItems", 1)])),
        "start_conversation"
    );
    let (r, n) = requests(d, store.start_conversation(&new)).await;
    assert_eq!(
        (r, n),
        (
            Err(StoreError::ClientHasOpenConversation),
            counts(&[("TransactWriteItems", 1)])
        ),
        "a refused start"
    );

    let m = client_message(&c, t0() + Duration::minutes(1), "more");
    let (r, n) = requests(
        d,
        store.append_messages(&practice.id, &open_of(&c), &[m], Some("gw-2")),
    )
    .await;
    assert_eq!(
        (r, n),
        (Ok(()), counts(&[("TransactWriteItems", 1)])),
        "append_messages"
    );

    let (r, n) = requests(d, store.get_conversation(&practice.id, &c.id)).await;
    assert!(matches!(r, Ok(Some(_))));
    assert_eq!(n, counts(&[("GetItem", 1)]), "get_conversation");
    let (r, n) = requests(
        d,
        store.conversation_detail(&practice.id, &c.id, MessageRange::ALL),
    )
    .await;
    assert_eq!(r.expect("detail").expect("exists").messages.len(), 2);
    assert_eq!(n, counts(&[("Query", 1)]), "conversation_detail");
    // A page that stops short of the last message: the Query, and the conversation item read on its own.
    let one = MessageRange { after: 0, limit: 1 };
    let (r, n) = requests(d, store.conversation_detail(&practice.id, &c.id, one)).await;
    assert_eq!(r.expect("detail").expect("exists").next_after, Some(1));
    assert_eq!(
        n,
        counts(&[("GetItem", 1), ("Query", 1)]),
        "a first page of two"
    );
    // The client's read is one Query, whatever the page, and so is a refusal.
    for range in [
        MessageRange::ALL,
        one,
        MessageRange {
            after: 2,
            limit: 100,
        },
    ] {
        let (r, n) = requests(
            d,
            store.client_messages(&practice.id, "client-1", &c.id, range),
        )
        .await;
        assert!(matches!(r, Ok(Some(_))), "{r:?}");
        assert_eq!(n, counts(&[("Query", 1)]), "client_messages {range:?}");
        let (r, n) = requests(
            d,
            store.client_messages(&practice.id, "client-2", &c.id, range),
        )
        .await;
        assert_eq!(r, Ok(None), "another client");
        assert_eq!(
            n,
            counts(&[("Query", 1)]),
            "client_messages of another client {range:?}"
        );
    }
    let (r, n) = requests(d, store.client_conversations(&practice.id, "client-1", 100)).await;
    assert_eq!(r.expect("list").len(), 1);
    assert_eq!(n, counts(&[("Query", 1)]), "client_conversations");

    // A staff reply: the conversation read, one transaction.
    let staff = Caller {
        sub: "staff-1".into(),
        practice_id: practice.id.clone(),
        role: Role::Staff,
    };
    let (r, n) = requests(
        d,
        conversation::staff_reply(store.as_ref(), &staff, &c.id, "on our way", t0(), &TestIds),
    )
    .await;
    assert_eq!(r.expect("reply").seq, 3);
    assert_eq!(
        n,
        counts(&[("GetItem", 1), ("TransactWriteItems", 1)]),
        "a staff reply"
    );

    let open = filter(Some(ConversationStatus::Open), None);
    let (r, n) = requests(d, store.list_conversations(&practice.id, &open, None, 20)).await;
    assert_eq!(r.expect("list").conversations.len(), 1);
    assert_eq!(n, counts(&[("Query", 1)]), "list with a status");
    let (r, n) = requests(
        d,
        store.list_conversations(&practice.id, &ConversationFilter::default(), None, 20),
    )
    .await;
    assert_eq!(r.expect("list").conversations.len(), 1);
    assert_eq!(n, counts(&[("Query", 2)]), "list of both statuses");

    let current = store
        .get_conversation(&practice.id, &c.id)
        .await
        .expect("get")
        .expect("exists");
    let (r, n) = requests(
        d,
        store.end_conversation(&current, t0() + Duration::hours(1)),
    )
    .await;
    assert!(r.is_ok());
    assert_eq!(n, counts(&[("TransactWriteItems", 1)]), "end_conversation");

    // Through the routing service: a new conversation, then a message into it, 1 read + 1 write each.
    let text = || inbound(&practice.id, Channel::Sms, "+12025550199", None, "hello");
    let (r, n) = requests(
        d,
        conversation::route_inbound(store.as_ref(), text(), t0(), &TestIds),
    )
    .await;
    assert!(r.expect("routed").new_conversation);
    assert_eq!(
        n,
        counts(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a new conversation"
    );
    let (r, n) = requests(
        d,
        conversation::route_inbound(store.as_ref(), text(), t0(), &TestIds),
    )
    .await;
    assert!(!r.expect("routed").new_conversation);
    assert_eq!(
        n,
        counts(&[("BatchGetItem", 1), ("TransactWriteItems", 1)]),
        "a message into an open conversation"
    );
}

#[tokio::test]
async fn dynamo_conversation_items_are_where_the_layout_says() {
    let dynamo = Arc::new(fresh_dynamo_store().await);
    let store: DynStore = dynamo.clone();
    let client = vetchat_tests::dynamo_client().await;
    let table = dynamo.table_name().to_owned();
    let (practice, default) = setup(&store).await;
    let at = t0() + Duration::nanoseconds(123_456_789);
    let new = new_conversation(
        conversation(&practice.id, &default.id, "client-1", at),
        "hi",
        Some("gw-1"),
    );
    let c = new.conversation.clone();
    store.start_conversation(&new).await.expect("start");

    let get = |pk: String, sk: String| {
        let (client, table) = (client.clone(), table.clone());
        async move {
            client
                .get_item()
                .table_name(table)
                .key("PK", AttributeValue::S(pk))
                .key("SK", AttributeValue::S(sk))
                .consistent_read(true)
                .send()
                .await
                .expect("GetItem")
                .item
        }
    };
    let string = |item: &std::collections::HashMap<String, AttributeValue>, name: &str| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| panic!("no string {name} in {item:?}"))
    };
    let conversation_pk = format!("CONV#{}#{}", practice.id, c.id);
    // The conversation item sorts right after its messages.
    let item = get(conversation_pk.clone(), "MSG~".into())
        .await
        .expect("conversation item");
    assert_eq!(
        string(&item, "GSI1PK"),
        format!("CONVS#{}#open", practice.id)
    );
    assert_eq!(
        string(&item, "GSI1SK"),
        format!("2026-03-02T14:30:00.123456789Z#{}", c.id)
    );
    // Messages by seq, each naming the conversation's client (a page that stops short of the conversation
    // item still says whose it is).
    let message = get(conversation_pk.clone(), "MSG#00000000000000000001".into())
        .await
        .expect("message item");
    assert_eq!(string(&message, "id"), new.messages[0].id.to_string());
    assert_eq!(string(&message, "client_id"), "client-1");
    assert_eq!(
        (string(&item, "GSI2PK"), string(&item, "GSI2SK")),
        (
            format!("CLIENT#{}#client-1", practice.id),
            format!("2026-03-02T14:30:00.123456789Z#{}", c.id)
        ),
        "an app conversation is in its client's list"
    );
    let claim_item = get(format!("OPEN#{}#client-1", practice.id), "OPEN".into())
        .await
        .expect("claim item");
    assert_eq!(
        (
            string(&claim_item, "conversation_id"),
            string(&claim_item, "department_id")
        ),
        (c.id.to_string(), default.id.to_string())
    );
    assert_eq!(
        (claim_item.get("last_seq"), item.get("last_seq")),
        (
            Some(&AttributeValue::N("1".into())),
            Some(&AttributeValue::N("1".into()))
        ),
        "the claim holds the conversation's last seq"
    );
    let dedup = get(format!("INBOUND#{}#gw-1", practice.id), "INBOUND".into())
        .await
        .expect("dedup item");
    assert_eq!(string(&dedup, "conversation_id"), c.id.to_string());
    let expires_at: i64 = dedup
        .get("expires_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse().ok())
        .expect("expires_at, a number");
    // Seven days from when the message arrived (the time the store is handed; it reads no clock).
    let in_a_week = (at + Duration::days(7)).timestamp();
    assert_eq!(expires_at, in_a_week, "TTL in 7 days");
    let alert = new.alert.clone().expect("alert");
    let alert_item = get(format!("ALERT#{}", alert.id), "ALERT".into())
        .await
        .expect("alert item");
    assert_eq!(string(&alert_item, "status"), "pending");
    assert_eq!(
        vetchat_tests::dynamo_pending_alerts(&dynamo).await,
        vec![alert]
    );
    let department = get(
        format!("PRACTICE#{}", practice.id),
        format!("DEPT#{}", default.id),
    )
    .await
    .expect("department item");
    assert_eq!(
        department.get("open_conversations"),
        Some(&AttributeValue::N("1".into()))
    );

    // Ended: in the resolved partition, the claim gone, the counter back.
    store
        .end_conversation(&c, t0() + Duration::hours(1))
        .await
        .expect("end");
    let item = get(conversation_pk, "MSG~".into())
        .await
        .expect("conversation item");
    assert_eq!(
        string(&item, "GSI1PK"),
        format!("CONVS#{}#resolved", practice.id)
    );
    assert_eq!(string(&item, "status"), "resolved");
    assert!(get(format!("OPEN#{}#client-1", practice.id), "OPEN".into())
        .await
        .is_none());
    let department = get(
        format!("PRACTICE#{}", practice.id),
        format!("DEPT#{}", default.id),
    )
    .await
    .expect("department item");
    assert_eq!(
        department.get("open_conversations"),
        Some(&AttributeValue::N("0".into()))
    );
}

// ---------------------------------------------------------------------------------------------------------
// The embedded store on a file only
// ---------------------------------------------------------------------------------------------------------

/// The file closed and opened again (a restart of `cargo run`): every aggregate reads back as it was
/// written, indexes included: settings, the reminder's due instant, a conversation with its messages and
/// transfer (and its notice, the seq after), the client's claim and view, an inbound message seen, the alert
/// outbox with a delivery's outcome.
/// (`tests/tests/api/durability.rs` does it with `kill -9` under load.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_everything_reads_back_after_the_file_is_reopened() {
    use adapters::store::EmbeddedStore;
    use domain::alert::DeliveryOutcome;
    use domain::conversation::Transfer;

    let dir = tempfile::tempdir().expect("a temporary directory");
    let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).expect("open"));
    let (practice, team) = setup(&store).await;
    let grooming = create_department(&store, &practice.id, "Grooming").await;
    let mut reminded = team.clone();
    reminded.next_reminder_at = Some(t0() + Duration::hours(8));
    reminded.version += 1;
    store
        .update_department(&reminded, &team)
        .await
        .expect("reminder on");

    let started = start(&store, &practice.id, &team.id, "owner-1", t0()).await;
    let c = started.conversation.clone();
    let later = client_message(&c, t0() + Duration::minutes(1), "Still there?");
    store
        .append_messages(&practice.id, &open_of(&c), &[later], Some("gw-1"))
        .await
        .expect("append");
    let alert = started.alert.clone().expect("an alert");
    assert!(store
        .claim_delivery(&alert.id, "email:desk", t0(), t0() + Duration::seconds(60))
        .await
        .expect("claim"));
    store
        .record_delivery(&alert.id, "email:desk", &DeliveryOutcome::Sent { at: t0() })
        .await
        .expect("record");
    let transfer = Transfer {
        from: team.id.clone(),
        to: grooming.id.clone(),
        by: "staff-1".into(),
        at: t0() + Duration::minutes(2),
        note: Some("for the groomer".into()),
    };
    // As the transfer reads it: after the client's second message.
    let c = at_seq(&c, 2);
    let transfer_alert =
        PendingAlert::transfer(&TestIds, &c, transfer.clone(), "Still there?", transfer.at);
    let notice = Message {
        seq: 3,
        author: Author::System,
        body: transfer_notice("Grooming"),
        department_id: grooming.id.clone(),
        department_name: "Grooming".into(),
        ..client_message(&c, transfer.at, "")
    };
    let c = store
        .transfer_conversation(&c, &transfer, &notice, &transfer_alert)
        .await
        .expect("transfer");

    async fn snapshot(
        store: &DynStore,
        practice: &Practice,
        c: &Conversation,
        alert: &PendingAlert,
    ) -> String {
        let far = t0() + Duration::days(2);
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            store.practice_config(&practice.id).await,
            store
                .conversation_detail(&practice.id, &c.id, MessageRange::ALL)
                .await,
            store
                .client_messages(&practice.id, &c.client_id, &c.id, MessageRange::ALL)
                .await,
            store
                .client_conversations(&practice.id, &c.client_id, 10)
                .await,
            store
                .routing_context(&practice.id, &c.client_id, &practice.default_department_id)
                .await,
            store.get_alert(&alert.id).await,
            store.pending_alert_ids(10).await,
            store.due_reminders(far, DueShards::ALL, 10).await,
            store
                .list_conversations(&practice.id, &ConversationFilter::default(), None, 10)
                .await,
            store
                .open_conversations_in(&practice.id, &c.department_id)
                .await,
        )
    }
    let before = snapshot(&store, &practice, &c, &alert).await;
    assert!(
        before.contains("Still there?")
            && before.contains("for the groomer")
            && before.contains("You are now chatting with Grooming"),
        "{before}"
    );
    drop(store);

    let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).expect("reopen"));
    assert_eq!(snapshot(&store, &practice, &c, &alert).await, before);
    let again = client_message(&c, t0() + Duration::minutes(3), "Still there?");
    assert_eq!(
        store
            .append_messages(&practice.id, &open_of(&c), &[again], Some("gw-1"))
            .await,
        Err(StoreError::DuplicateInbound(c.id.clone())),
        "the inbound message seen is still known"
    );
}

// ---------------------------------------------------------------------------------------------------------
// Per-client rate limits (app and web), through the routing service, on every store.
// ---------------------------------------------------------------------------------------------------------

/// Small limits, so a test sends few messages: 2 new conversations in 10 minutes, 5 messages a minute.
fn small_limits() -> ClientRateLimits {
    ClientRateLimits {
        new_conversations: Limit {
            max: 2,
            window_secs: 600,
        },
        messages: Limit {
            max: 5,
            window_secs: 60,
        },
    }
}

/// An app message of `client_id`, counted against `limits`.
fn limited(
    practice_id: &PracticeId,
    client_id: &str,
    body: &str,
    limits: ClientRateLimits,
) -> Inbound {
    Inbound {
        to: None,
        rate_limits: Some(limits),
        ..inbound(practice_id, Channel::App, client_id, None, body)
    }
}

fn retry_after(r: &Result<Routed, DomainError>) -> Option<u32> {
    match r {
        Err(DomainError::RateLimited {
            retry_after_secs, ..
        }) => Some(*retry_after_secs),
        _ => None,
    }
}

/// The bodies a client wrote into a conversation (auto-replies and staff replies left out).
async fn client_bodies(
    store: &DynStore,
    practice_id: &PracticeId,
    id: &ConversationId,
) -> Vec<String> {
    detail(store, practice_id, id)
        .await
        .messages
        .into_iter()
        .filter(|m| matches!(m.author, Author::Client { .. }))
        .map(|m| m.body)
        .collect()
}

async fn a_client_is_limited_per_window_and_others_staff_and_texts_are_not(t: TestStore) {
    let store = t.store();
    let (practice, _default) = setup(&store).await;
    let p = &practice.id;
    let route = |m: Inbound, at: DateTime<Utc>| {
        let s = store.clone();
        async move { conversation::route_inbound(s.as_ref(), m, at, &TestIds).await }
    };
    let mut conversation_id = None;
    for k in 0..5 {
        let r = route(
            limited(p, "owner-1", &format!("m{k}"), small_limits()),
            t0() + Duration::seconds(k),
        )
        .await
        .expect("within the limit");
        assert_eq!(r.new_conversation, k == 0);
        conversation_id = r.conversation_id;
    }
    let id = conversation_id.unwrap();
    // The sixth within the minute: 429 with the seconds until the window (opened at t0) ends; nothing stored.
    let refused = route(
        limited(p, "owner-1", "m5", small_limits()),
        t0() + Duration::seconds(20),
    )
    .await;
    assert_eq!(retry_after(&refused), Some(40), "{refused:?}");
    assert_eq!(
        client_bodies(&store, p, &id).await,
        ["m0", "m1", "m2", "m3", "m4"]
    );

    // Another client, staff and the texting gateway are not held up by owner-1's window.
    let other = route(
        limited(p, "owner-2", "hello", small_limits()),
        t0() + Duration::seconds(20),
    )
    .await;
    assert!(other.is_ok(), "{other:?}");
    let reply = conversation::staff_reply(
        store.as_ref(),
        &staff(p),
        &id,
        "We are on it",
        t0() + Duration::seconds(21),
        &TestIds,
    )
    .await;
    assert!(reply.is_ok(), "{reply:?}");
    for k in 0..12 {
        let text = inbound(p, Channel::Sms, "+12025550177", None, &format!("text {k}"));
        let r = route(text, t0() + Duration::seconds(22)).await;
        assert!(r.is_ok(), "texts are never limited: {r:?}");
    }
    // Still refused at the window's last second; taken once it has ended (a new window opens).
    let refused = route(
        limited(p, "owner-1", "m5", small_limits()),
        t0() + Duration::seconds(59),
    )
    .await;
    assert_eq!(retry_after(&refused), Some(1));
    let r = route(
        limited(p, "owner-1", "m5", small_limits()),
        t0() + Duration::seconds(60),
    )
    .await;
    assert_eq!(r.expect("a new window").conversation_id, Some(id.clone()));
    assert_eq!(
        client_bodies(&store, p, &id).await,
        ["m0", "m1", "m2", "m3", "m4", "m5"]
    );
}

async fn concurrent_messages_of_one_client_never_pass_the_limit(t: TestStore) {
    let store = t.store();
    let (practice, _default) = setup(&store).await;
    // A new client's 12 messages at once (the first of them starts the conversation): 5 taken, 7 refused.
    let s = store.clone();
    let pid = practice.id.clone();
    let results = race((0..12).collect::<Vec<u32>>(), move |k| {
        let (s, pid) = (s.clone(), pid.clone());
        async move {
            let m = limited(&pid, "owner-1", &format!("burst {k}"), small_limits());
            conversation::route_inbound(s.as_ref(), m, t0(), &TestIds).await
        }
    })
    .await;
    let taken: Vec<&Routed> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let refused = results
        .iter()
        .filter(|r| retry_after(r) == Some(60))
        .count();
    assert_eq!((taken.len(), refused), (5, 7), "{results:?}");
    assert_eq!(taken.iter().filter(|r| r.new_conversation).count(), 1);
    let id = taken[0].conversation_id.clone();
    assert!(taken.iter().all(|r| r.conversation_id == id));
    let id = id.expect("a conversation");
    assert_eq!(
        client_bodies(&store, &practice.id, &id).await.len(),
        5,
        "the refused ones left nothing"
    );
    assert_eq!(
        list_all(&store, &practice.id, &ConversationFilter::default())
            .await
            .len(),
        1
    );
}

async fn new_conversations_are_limited_when_staff_end_them_quickly(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    let p = &practice.id;
    let mut at = t0();
    for k in 0..2 {
        let m = limited(p, "owner-1", &format!("new {k}"), small_limits());
        let r = conversation::route_inbound(store.as_ref(), m, at, &TestIds)
            .await
            .expect("taken");
        assert!(r.new_conversation);
        conversation::end_conversation(
            store.as_ref(),
            &staff(p),
            r.conversation_id.as_ref().unwrap(),
            at,
        )
        .await
        .expect("staff end it");
        at += Duration::minutes(1);
    }
    // A third new conversation within ten minutes of the first: refused until that window ends.
    let m = limited(p, "owner-1", "new 2", small_limits());
    let refused = conversation::route_inbound(store.as_ref(), m, at, &TestIds).await;
    assert_eq!(retry_after(&refused), Some(480), "{refused:?}");
    assert_eq!(
        list_all(&store, p, &ConversationFilter::default())
            .await
            .len(),
        2
    );
    assert_eq!(
        claim(&store, p, "owner-1").await,
        None,
        "no conversation was opened"
    );
    assert_eq!(open_count(&store, p, &default.id).await, Some(0));
    assert_eq!(
        t.pending_alerts().await.len(),
        2,
        "the refused one alerted nobody"
    );
    // Ten minutes after the first, its window is over: a new conversation is taken.
    let m = limited(p, "owner-1", "new 2", small_limits());
    let r = conversation::route_inbound(store.as_ref(), m, t0() + Duration::minutes(10), &TestIds)
        .await;
    assert!(r.expect("a new window").new_conversation);
}

/// Issue #19: a flood of texts from one number is never refused (never lose a pet owner's text), opens one
/// conversation and alerts once. 200 texts arrive at once and are handled 10 at a time (the inbound-text
/// entry's reserved concurrency, `InboundTextConcurrency`); a text that meets a 503 is handed again, as
/// SNS's retried delivery to the Lambda entry would, under its gateway message id, so none is stored twice.
async fn two_hundred_texts_from_one_number_one_conversation_one_alert(t: TestStore) {
    let store = t.store();
    let (practice, default) = setup(&store).await;
    const FROM: &str = "+12025550199";
    let s = store.clone();
    let pid = practice.id.clone();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(10));
    let results = race((0..200).collect::<Vec<u32>>(), move |k| {
        let (s, pid, in_flight) = (s.clone(), pid.clone(), in_flight.clone());
        async move {
            let _running = in_flight.acquire().await.expect("semaphore");
            let mut attempts = 0;
            loop {
                let text = Inbound {
                    to: None,
                    dedup_key: Some(format!("sms:flood-{k}")),
                    ..inbound(&pid, Channel::Sms, FROM, None, &format!("text {k}"))
                };
                attempts += 1;
                match conversation::route_inbound(s.as_ref(), text, t0(), &TestIds).await {
                    Err(DomainError::Unavailable(_)) if attempts < 20 => continue,
                    other => break other,
                }
            }
        }
    })
    .await;
    let routed: Vec<Routed> = results
        .into_iter()
        .map(|r| r.expect("every text is taken"))
        .collect();
    let conversations: BTreeSet<&ConversationId> = routed
        .iter()
        .filter_map(|r| r.conversation_id.as_ref())
        .collect();
    assert_eq!(
        conversations.len(),
        1,
        "one conversation: {conversations:?}"
    );
    let id = routed[0].conversation_id.clone().expect("a conversation");
    let mut bodies = client_bodies(&store, &practice.id, &id).await;
    bodies.sort();
    let mut sent: Vec<String> = (0..200).map(|k| format!("text {k}")).collect();
    sent.sort();
    assert_eq!(bodies, sent, "each of the 200 texts stored exactly once");
    let alerts = t.pending_alerts().await;
    assert_eq!(alerts.len(), 1, "one alert for the flood: {alerts:?}");
    assert_eq!(alerts[0].kind(), AlertKind::NewConversation);
    assert_eq!(alerts[0].department_id, default.id);
    assert_eq!(open_count(&store, &practice.id, &default.id).await, Some(1));
}
