//! The end-of-day unresolved-conversation reminder (docs/api.md: Departments `unresolved_reminder`, Alerts;
//! docs/architecture.md: Time, the reminder run's budget), on every store: the embedded `EmbeddedStore` in
//! memory and on a file, and the `DynamoStore` on DynamoDB Local (each test on a table of its own).
//!
//! Everything goes through the domain services the functions run: the settings service creates practices and
//! departments at instants chosen here (so each department's next reminder is computed from that time),
//! routing opens and ends conversations, and `domain::reminder::run_reminders` runs for an instant chosen
//! here too; what it stored is then delivered by `alert::dispatch::dispatch_alert`, as the alert dispatcher
//! does from the stream. Time travel is choosing that instant. The DynamoDB-only check of what a run reads
//! comes last.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use adapters::senders::{FaultySender, RecordingSender};
use adapters::store::{due_partition, DynamoStore, DUE_SHARDS};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use domain::alert::dispatch::dispatch_alert;
use domain::alert::{AlertKind, AlertSender, AlertSubject, Delivery, DeliveryChannel, SendError};
use domain::conversation::{self, AlertId, Channel, ConversationId, Inbound, StartInput};
use domain::identity::{Caller, DepartmentId, Ids, PracticeId, Role};
use domain::practice::PracticeInput;
use domain::reminder::{
    run_reminders, run_reminders_paged, DueReminder, DueShards, Paging, RunSummary,
};
use domain::settings;
use domain::store::Store;
use serde_json::{json, Value};
use tokio::sync::Barrier;
use vetchat_tests::{logged_dynamo_store, new_practice_id, GatedStore, RequestLog, TestStore};

type DynStore = Arc<dyn Store>;

vetchat_tests::on_every_store!(
    // Who gets what
    each_alert_email_gets_one_reminder_listing_the_open_conversations,
    the_reminder_has_its_own_switch_apart_from_the_alerts,
    a_department_with_the_reminder_off_gets_nothing,
    // When
    an_explicit_time_goes_at_that_time_and_not_a_second_before,
    without_a_time_it_goes_half_an_hour_before_that_days_closing,
    split_shifts_and_overnight_hours_are_reminded_before_the_last_window_ends,
    the_run_is_for_its_instant_not_the_wall_clock,
    // Once
    a_repeated_or_retried_run_sends_nothing_new_and_the_next_day_sends_again,
    overlapping_runs_send_each_reminder_once,
    runs_over_disjoint_ranges_of_shards_together_remind_each_department_once,
    a_run_goes_on_page_after_page_while_it_has_time,
    // Catch-up
    a_missed_run_is_caught_up_once_by_the_next_one,
    several_missed_days_send_one_reminder_and_the_due_instant_moves_on,
    // DST
    new_york_spring_forward,
    new_york_fall_back,
    london_spring_forward,
    // Settings changes
    moving_the_time_later_after_the_reminder_went_sends_no_second_one_that_day,
    moving_the_time_earlier_before_it_is_due_moves_the_reminder,
    the_due_list_follows_the_reminder_switch,
    // What a run reports
    the_summary_counts_each_outcome,
    an_outage_of_the_store_is_counted_and_the_next_run_takes_it_over,
    an_email_outage_leaves_the_reminder_to_the_dispatcher_and_no_run_stores_it_again,
);

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

const DASHBOARD: &str = "https://dashboard.example/app";
const DESK: &str = "desk@riverside.example";
/// An address with characters an expression or a key would choke on, were they ever spliced into one.
const VET: &str = "dr.o'neil+alerts@riverside.example";

/// Ids unique in the test process.
struct TestIds;

impl Ids for TestIds {
    fn next(&self, prefix: &str) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        format!("{prefix}_{:010}", NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// A practice set up through the settings service, with its callers.
struct Fx {
    practice_id: PracticeId,
    tz: Tz,
    admin: Caller,
    staff: Caller,
}

impl Fx {
    /// The instant of a practice-local wall-clock time, `"2031-06-09 17:30"` (unambiguous times only).
    fn local(&self, at: &str) -> DateTime<Utc> {
        local(self.tz, at)
    }

    fn default_department(&self) -> DepartmentId {
        DepartmentId::default_for(&self.practice_id)
    }
}

fn local(tz: Tz, at: &str) -> DateTime<Utc> {
    let naive = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S"))
        .unwrap_or_else(|e| panic!("{at:?}: {e}"));
    tz.from_local_datetime(&naive)
        .single()
        .unwrap_or_else(|| panic!("{at} is not one instant in {tz}"))
        .with_timezone(&Utc)
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339:?}: {e}"))
        .with_timezone(&Utc)
}

fn date(ymd: &str) -> NaiveDate {
    ymd.parse().unwrap_or_else(|e| panic!("{ymd:?}: {e}"))
}

/// `PUT /practice` at `now`: a US practice in `timezone` (its default department has the reminder off).
async fn practice(store: &DynStore, timezone: &str, now: DateTime<Utc>) -> Fx {
    let practice_id = new_practice_id();
    let caller = |role: Role| Caller {
        sub: format!("{}-1", role.as_str()),
        practice_id: practice_id.clone(),
        role,
    };
    let (admin, staff) = (caller(Role::Admin), caller(Role::Staff));
    settings::put_practice(
        store.as_ref(),
        &admin,
        PracticeInput {
            name: "Riverside Vets".into(),
            timezone: timezone.into(),
            country: "US".into(),
            sms_numbers: Vec::new(),
            whatsapp_numbers: Vec::new(),
        },
        now,
    )
    .await
    .expect("put_practice");
    Fx {
        tz: timezone.parse().expect("an IANA time zone"),
        practice_id,
        admin,
        staff,
    }
}

/// `POST /departments` at `now`; `body` is the request body (a `name` at least).
async fn department(store: &DynStore, fx: &Fx, body: Value, now: DateTime<Utc>) -> DepartmentId {
    let id = DepartmentId(TestIds.next("dep"));
    settings::create_department(store.as_ref(), &fx.admin, body, now, id.clone())
        .await
        .expect("create_department")
        .id
}

/// `PATCH /departments/{id}` at `now`.
async fn patch(store: &DynStore, fx: &Fx, id: &DepartmentId, body: Value, now: DateTime<Utc>) {
    settings::patch_department(store.as_ref(), &fx.admin, id, body, None, now)
        .await
        .expect("patch_department");
}

/// A department body with the reminder on (`at` optional), its alerts on or off, and two alert emails.
fn with_reminder(name: &str, at: Option<&str>, alerts_on: bool) -> Value {
    let reminder = match at {
        Some(at) => json!({"enabled": true, "at": at}),
        None => json!({"enabled": true}),
    };
    json!({
        "name": name,
        "visible_in_app": true,
        "alerts": {"enabled": alerts_on, "emails": [DESK, VET]},
        "unresolved_reminder": reminder,
    })
}

/// Every day 09:00–18:00 (so each date's default reminder is 17:30 local).
fn every_day_9_to_6() -> Value {
    let day = json!({"start": "09:00", "end": "18:00"});
    json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day})
}

/// Staff start a conversation (any department, any time) at `at`.
async fn start(
    store: &DynStore,
    fx: &Fx,
    department_id: &DepartmentId,
    client_id: &str,
    channel: Channel,
    at: DateTime<Utc>,
) -> ConversationId {
    conversation::staff_start(
        store.as_ref(),
        &fx.staff,
        StartInput {
            department_id: department_id.clone(),
            client_id: client_id.into(),
            body: "We have your results, please call us.".into(),
            channel: Some(channel),
        },
        at,
        &TestIds,
    )
    .await
    .expect("staff_start")
    .id
}

/// A client's app message into `department_id` at `at` (a new conversation, or their open one).
async fn app_message(
    store: &DynStore,
    fx: &Fx,
    department_id: &DepartmentId,
    client_id: &str,
    at: DateTime<Utc>,
) -> ConversationId {
    conversation::route_inbound(
        store.as_ref(),
        Inbound {
            to: None,
            practice_id: fx.practice_id.clone(),
            channel: Channel::App,
            client_id: client_id.into(),
            department_id: Some(department_id.clone()),
            body: "Is Rex ready to be picked up?".into(),
            dedup_key: None,
            rate_limits: None,
        },
        at,
        &TestIds,
    )
    .await
    .expect("route_inbound")
    .conversation_id
    .expect("a conversation")
}

async fn end(store: &DynStore, fx: &Fx, id: &ConversationId, at: DateTime<Utc>) {
    conversation::end_conversation(store.as_ref(), &fx.staff, id, at)
        .await
        .expect("end_conversation");
}

/// A run at `at` over every shard, then the dispatcher's pass over the reminders it stored
/// ([`deliver_reminders`]) through `sender`.
async fn run(store: &DynStore, sender: &dyn AlertSender, at: DateTime<Utc>) -> RunSummary {
    let summary = run_reminders(store.as_ref(), at, DueShards::ALL)
        .await
        .expect("run_reminders");
    deliver_reminders(store, sender, at).await;
    summary
}

/// What the alert dispatcher does with the reminders a run stored (on AWS it is handed each new alert by the
/// table's stream; locally the alert worker reads the pending ones): every pending reminder delivered at
/// `at` through `sender`. Other pending alerts (new conversations) are left alone, so the recorder holds
/// reminders only.
async fn deliver_reminders(store: &DynStore, sender: &dyn AlertSender, at: DateTime<Utc>) {
    for id in pending_reminders(store).await {
        dispatch_alert(store.as_ref(), sender, &id, at, DASHBOARD)
            .await
            .expect("dispatch_alert");
    }
}

/// The reminders stored and not yet delivered to every recipient.
async fn pending_reminders(store: &DynStore) -> Vec<AlertId> {
    let mut reminders = Vec::new();
    for id in store.pending_alert_ids(1000).await.expect("pending alerts") {
        let record = store.get_alert(&id).await.expect("get_alert");
        if let Some(AlertSubject::UnresolvedReminder { .. }) = record.map(|r| r.alert.subject) {
            reminders.push(id);
        }
    }
    reminders
}

/// A run summary: due, departments reminded, nothing open, already handled, failures.
fn summary(at: DateTime<Utc>, counts: [usize; 5]) -> RunSummary {
    let [due, departments_reminded, nothing_open, already_handled, failures] = counts;
    RunSummary {
        run_at: at,
        due,
        departments_reminded,
        nothing_open,
        already_handled,
        failures,
    }
}

/// A run that found nothing due.
fn idle(at: DateTime<Utc>) -> RunSummary {
    summary(at, [0; 5])
}

/// The department's next reminder instant as the store holds it.
async fn next_due(store: &DynStore, fx: &Fx, id: &DepartmentId) -> Option<DateTime<Utc>> {
    store
        .practice_and_department(&fx.practice_id, id)
        .await
        .expect("practice_and_department")
        .1
        .expect("the department exists")
        .next_reminder_at
}

/// Everything due before the year 3000: the whole due list.
async fn due_list(store: &DynStore) -> Vec<DueReminder> {
    store
        .due_reminders(utc("2999-01-01T00:00:00Z"), DueShards::ALL, 100_000)
        .await
        .expect("due_reminders")
}

async fn listed(store: &DynStore, id: &DepartmentId) -> Option<DateTime<Utc>> {
    due_list(store)
        .await
        .into_iter()
        .find(|d| &d.department_id == id)
        .map(|d| d.due_at)
}

/// The reminder deliveries taken so far (in order), of one department.
fn reminders_of(recorder: &RecordingSender, id: &DepartmentId) -> Vec<Delivery> {
    recorder
        .deliveries()
        .into_iter()
        .filter(|d| d.kind == AlertKind::UnresolvedReminder && &d.department_id == id)
        .collect()
}

/// The id of a department's reminder for a local date (one per department and date).
fn reminder_id(id: &DepartmentId, on: &str) -> AlertId {
    domain::reminder::reminder_alert_id(id, date(on))
}

fn email_key(alert: &AlertId, to: &str) -> String {
    format!("{alert}:email:{to}")
}

/// Asserts that the deliveries are exactly the reminder of `on` to both alert emails.
fn assert_reminded(deliveries: &[Delivery], id: &DepartmentId, on: &str) {
    let alert = reminder_id(id, on);
    let keys: Vec<&str> = deliveries
        .iter()
        .map(|d| d.idempotency_key.as_str())
        .collect();
    assert_eq!(
        keys,
        [email_key(&alert, DESK), email_key(&alert, VET)],
        "the {on} reminder of {id}, once to each alert email"
    );
}

/// Each event is (department, instant, local date) of one reminder; in time order, the department's next
/// reminder is that instant, a run one second before sends it nothing, and a run at the instant sends that
/// date's reminder (to both alert emails). The departments must have an open conversation the whole time.
async fn walk(
    store: &DynStore,
    fx: &Fx,
    recorder: &RecordingSender,
    events: &[(&DepartmentId, DateTime<Utc>, &str)],
) {
    let mut events = events.to_vec();
    events.sort_by_key(|(_, at, _)| *at);
    for (id, at, on) in events {
        assert_eq!(
            next_due(store, fx, id).await,
            Some(at),
            "{id}: the {on} reminder is due at {at}"
        );
        let before = reminders_of(recorder, id).len();
        run(store, recorder, at - Duration::seconds(1)).await;
        assert_eq!(
            reminders_of(recorder, id).len(),
            before,
            "{id}: nothing a second before {at}"
        );
        run(store, recorder, at).await;
        assert_reminded(&reminders_of(recorder, id)[before..], id, on);
        assert!(
            next_due(store, fx, id).await.is_some_and(|next| next > at),
            "{id}: the due instant moves past {at}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// Who gets what
// ---------------------------------------------------------------------------------------------------------

async fn each_alert_email_gets_one_reminder_listing_the_open_conversations(t: TestStore) {
    let store = t.store();
    let ny = "America/New_York";
    let fx = practice(&store, ny, local(ny.parse().unwrap(), "2031-06-09 08:00")).await;
    let now = fx.local("2031-06-09 08:00"); // a Monday
    let desk = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:30"), true),
        now,
    )
    .await;
    let quiet = department(&store, &fx, with_reminder("Grooming", None, true), now).await;
    let mut off = with_reminder("Surgery", None, true);
    off["unresolved_reminder"] = json!({"enabled": false});
    let surgery = department(&store, &fx, off, now).await;

    let ann = app_message(
        &store,
        &fx,
        &desk,
        "client-ann",
        fx.local("2031-06-09 09:05"),
    )
    .await;
    let text = start(
        &store,
        &fx,
        &desk,
        "+12025550111",
        Channel::Sms,
        fx.local("2031-06-09 10:10"),
    )
    .await;
    let ended = start(
        &store,
        &fx,
        &desk,
        "client-bob",
        Channel::Web,
        fx.local("2031-06-09 11:00"),
    )
    .await;
    end(&store, &fx, &ended, fx.local("2031-06-09 12:00")).await;
    // Ann writes again later: her conversation's last activity moves.
    assert_eq!(
        app_message(
            &store,
            &fx,
            &desk,
            "client-ann",
            fx.local("2031-06-09 15:45")
        )
        .await,
        ann
    );
    start(
        &store,
        &fx,
        &surgery,
        "client-cat",
        Channel::App,
        fx.local("2031-06-09 13:00"),
    )
    .await;

    let recorder = RecordingSender::new();
    let at = fx.local("2031-06-09 17:30");
    assert_eq!(
        run(&store, &recorder, at).await,
        // Front Desk (reminded, two emails) and Grooming (nothing open) are due; Surgery is not.
        summary(at, [2, 1, 1, 0, 0])
    );
    let sent = recorder.deliveries();
    assert_reminded(&sent, &desk, "2031-06-09");
    assert!(reminders_of(&recorder, &quiet).is_empty());
    assert!(reminders_of(&recorder, &surgery).is_empty());

    let link = |id: &ConversationId| format!("{DASHBOARD}/conversations/{id}");
    for d in &sent {
        assert_eq!(d.kind, AlertKind::UnresolvedReminder);
        assert_eq!(d.channel, DeliveryChannel::Email);
        assert_eq!(d.alert_id, reminder_id(&desk, "2031-06-09"));
        assert_eq!(
            d.conversation_ids,
            [ann.clone(), text.clone()],
            "the open ones, oldest first"
        );
        assert_eq!(d.subject, "Front Desk: 2 open conversations to end today");
        let lines: Vec<&str> = d.text.lines().filter(|l| l.starts_with("- ")).collect();
        assert_eq!(
            lines,
            [
                format!(
                    "- client-ann (app), started Mon 09 Jun 09:05, last activity Mon 09 Jun 15:45: {}",
                    link(&ann)
                ),
                format!(
                    "- +12025550111 (sms), started Mon 09 Jun 10:10, last activity Mon 09 Jun 10:10: {}",
                    link(&text)
                ),
            ],
            "{}",
            d.text
        );
        assert!(d.text.contains("Monday 09 June 2031"), "{}", d.text);
        assert!(!d.text.contains("client-bob") && !d.text.contains(ended.as_str()));
        let html = d.html.as_deref().expect("an HTML part");
        for id in [&ann, &text] {
            assert!(html.contains(&format!("href=\"{}\"", link(id))), "{html}");
        }
        assert!(
            html.contains(
                "<td>client-ann</td><td>app</td><td>Mon 09 Jun 09:05</td><td>Mon 09 Jun 15:45</td>"
            ),
            "{html}"
        );
        assert!(!html.contains("client-bob"), "{html}");
    }
}

/// `alerts.enabled: false` silences new-conversation alerts, not the reminder, which has its own switch.
async fn the_reminder_has_its_own_switch_apart_from_the_alerts(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "Europe/London", utc("2031-06-09T07:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let desk = department(&store, &fx, with_reminder("Front Desk", None, false), now).await;
    let c = app_message(
        &store,
        &fx,
        &desk,
        "client-ann",
        fx.local("2031-06-09 09:30"),
    )
    .await;

    let recorder = RecordingSender::new();
    // Every pending alert (the new conversation's) is dispatched: alerts are off, so nothing goes out.
    for id in store.pending_alert_ids(100).await.unwrap() {
        domain::alert::dispatch::dispatch_alert(store.as_ref(), &recorder, &id, now, DASHBOARD)
            .await
            .unwrap();
    }
    assert!(recorder.deliveries().is_empty());

    let at = fx.local("2031-06-09 17:30"); // 09:00–18:00 on a Monday: 30 minutes before closing
    assert_eq!(
        run(&store, &recorder, at).await,
        summary(at, [1, 1, 0, 0, 0])
    );
    let sent = recorder.deliveries();
    assert_reminded(&sent, &desk, "2031-06-09");
    assert_eq!(sent[0].conversation_ids, [c]);
}

async fn a_department_with_the_reminder_off_gets_nothing(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/Chicago", utc("2031-06-09T12:00:00Z")).await;
    let now = fx.local("2031-06-09 07:00");
    let mut body = with_reminder("Front Desk", Some("17:30"), true);
    body["unresolved_reminder"] = json!({"enabled": false, "at": "17:30"});
    let desk = department(&store, &fx, body, now).await;
    start(&store, &fx, &desk, "client-ann", Channel::App, now).await;
    // The default department too has open conversations and the reminder off.
    let team = fx.default_department();
    start(&store, &fx, &team, "+12025550199", Channel::Sms, now).await;

    assert_eq!(next_due(&store, &fx, &desk).await, None);
    assert!(due_list(&store).await.is_empty(), "nothing is ever due");
    let recorder = RecordingSender::new();
    for at in [
        "2031-06-09 17:30",
        "2031-06-09 23:59",
        "2031-06-10 17:30",
        "2031-06-14 12:00",
    ] {
        let at = fx.local(at);
        assert_eq!(run(&store, &recorder, at).await, idle(at));
    }
    assert!(recorder.deliveries().is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// When
// ---------------------------------------------------------------------------------------------------------

async fn an_explicit_time_goes_at_that_time_and_not_a_second_before(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let mut body = with_reminder("Front Desk", Some("17:30"), true);
    // Open until 20:00: without the explicit time the reminder would go at 19:30.
    let day = json!({"start": "09:00", "end": "20:00"});
    body["hours"] = json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day});
    let desk = department(&store, &fx, body, fx.local("2031-06-09 08:00")).await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 09:00"),
    )
    .await;

    let at = fx.local("2031-06-09 17:30");
    assert_eq!(next_due(&store, &fx, &desk).await, Some(at));
    assert_eq!(listed(&store, &desk).await, Some(at));
    let recorder = RecordingSender::new();
    let just_before = at - Duration::seconds(1);
    assert_eq!(run(&store, &recorder, just_before).await, idle(just_before));
    assert!(recorder.deliveries().is_empty());
    assert_eq!(
        run(&store, &recorder, at).await,
        summary(at, [1, 1, 0, 0, 0])
    );
    assert_reminded(&recorder.deliveries(), &desk, "2031-06-09");
    assert_eq!(
        next_due(&store, &fx, &desk).await,
        Some(fx.local("2031-06-10 17:30"))
    );
}

/// The default time, 30 minutes before each date's closing: the week's hours, a `working` override with its
/// own hours, a `working` override without (the weekday's), a `non_working` override (17:30), a day without
/// hours (17:30).
async fn without_a_time_it_goes_half_an_hour_before_that_days_closing(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let mut body = with_reminder("Front Desk", None, true);
    let day = json!({"start": "09:00", "end": "19:00"});
    body["hours"] = json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day,
                           "sat": {"start": "10:00", "end": "13:00"}, "sun": null});
    body["date_overrides"] = json!([
        {"start_date": "2031-06-10", "end_date": "2031-06-10", "kind": "working"},
        {"start_date": "2031-06-11", "end_date": "2031-06-11", "kind": "working", "start": "10:00", "end": "14:00"},
        {"start_date": "2031-06-12", "end_date": "2031-06-12", "kind": "non_working"},
    ]);
    let desk = department(&store, &fx, body, fx.local("2031-06-09 08:00")).await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 08:30"),
    )
    .await;

    let recorder = RecordingSender::new();
    let steps = [
        ("2031-06-09 18:30", "2031-06-09"), // Monday, 09:00–19:00
        ("2031-06-10 18:30", "2031-06-10"), // working override without hours: Tuesday's
        ("2031-06-11 13:30", "2031-06-11"), // working override 10:00–14:00
        ("2031-06-12 17:30", "2031-06-12"), // non_working override
        ("2031-06-13 18:30", "2031-06-13"), // Friday
        ("2031-06-14 12:30", "2031-06-14"), // Saturday 10:00–13:00
        ("2031-06-15 17:30", "2031-06-15"), // Sunday, no hours
        ("2031-06-16 18:30", "2031-06-16"), // Monday
    ];
    let events: Vec<_> = steps
        .iter()
        .map(|(at, on)| (&desk, fx.local(at), *on))
        .collect();
    walk(&store, &fx, &recorder, &events).await;
}

/// With several windows a day, the default time is 30 minutes before the end of the date's last window: a
/// split shift's evening, the 24:00 end of an overnight stretch's first night (not the 06:00 end the next
/// morning, which is that next date's own last window), a working override's own windows.
async fn split_shifts_and_overnight_hours_are_reminded_before_the_last_window_ends(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let mut body = with_reminder("Front Desk", None, true);
    body["hours"] = json!({
        "mon": [{"start": "08:00", "end": "12:00"}, {"start": "14:00", "end": "19:00"}],
        "tue": [{"start": "09:00", "end": "12:00"}, {"start": "22:00", "end": "24:00"}],
        "wed": [{"start": "00:00", "end": "06:00"}],
        "thu": {"start": "09:00", "end": "18:00"},
    });
    body["date_overrides"] = json!([
        {"start_date": "2031-06-12", "end_date": "2031-06-12", "kind": "working",
         "windows": [{"start": "09:00", "end": "12:00"}, {"start": "13:00", "end": "15:00"}]},
    ]);
    let desk = department(&store, &fx, body, fx.local("2031-06-09 07:00")).await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 08:30"),
    )
    .await;

    let recorder = RecordingSender::new();
    let steps = [
        ("2031-06-09 18:30", "2031-06-09"), // Monday, 08:00–12:00 and 14:00–19:00
        ("2031-06-10 23:30", "2031-06-10"), // Tuesday's last window ends at 24:00
        ("2031-06-11 05:30", "2031-06-11"), // Wednesday, the morning half of the night
        ("2031-06-12 14:30", "2031-06-12"), // Thursday, an override of 09:00–12:00 and 13:00–15:00
        ("2031-06-13 17:30", "2031-06-13"), // Friday, no hours
        ("2031-06-16 18:30", "2031-06-16"), // Monday again
    ];
    let mut events: Vec<_> = steps
        .iter()
        .map(|(at, on)| (&desk, fx.local(at), *on))
        .collect();
    // The weekend has no hours: 17:30.
    for on in ["2031-06-14", "2031-06-15"] {
        events.push((&desk, fx.local(&format!("{on} 17:30")), on));
    }
    walk(&store, &fx, &recorder, &events).await;
}

/// The run is for the event's instant: a run for the wall clock's now finds a department due in 2034 not
/// due, and a run for 2034 sends it.
async fn the_run_is_for_its_instant_not_the_wall_clock(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "Europe/London", utc("2034-01-10T08:00:00Z")).await;
    let desk = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:00"), true),
        fx.local("2034-01-10 08:00"),
    )
    .await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2034-01-10 09:00"),
    )
    .await;

    let recorder = RecordingSender::new();
    let wall_clock = Utc::now();
    assert_eq!(run(&store, &recorder, wall_clock).await, idle(wall_clock));
    let at = fx.local("2034-01-10 17:00");
    assert_eq!(
        run(&store, &recorder, at).await,
        summary(at, [1, 1, 0, 0, 0])
    );
    assert_reminded(&recorder.deliveries(), &desk, "2034-01-10");
    assert_eq!(
        next_due(&store, &fx, &desk).await,
        Some(fx.local("2034-01-11 17:00"))
    );
}

// ---------------------------------------------------------------------------------------------------------
// Once
// ---------------------------------------------------------------------------------------------------------

async fn a_repeated_or_retried_run_sends_nothing_new_and_the_next_day_sends_again(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/Denver", utc("2031-06-09T12:00:00Z")).await;
    let desk = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:30"), true),
        fx.local("2031-06-09 08:00"),
    )
    .await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 09:00"),
    )
    .await;
    let recorder = RecordingSender::new();
    let at = fx.local("2031-06-09 17:30");
    assert_eq!(
        run(&store, &recorder, at).await,
        summary(at, [1, 1, 0, 0, 0])
    );
    // The same event again (a retried invocation), and the next scheduled runs of the evening.
    for again in [
        at,
        at,
        at + Duration::minutes(15),
        fx.local("2031-06-09 23:45"),
    ] {
        assert_eq!(run(&store, &recorder, again).await, idle(again));
    }
    let monday = reminder_id(&desk, "2031-06-09");
    for to in [DESK, VET] {
        assert_eq!(recorder.sent_count(&email_key(&monday, to)), 1);
    }
    assert_eq!(recorder.deliveries().len(), 2);

    // The next day: a new reminder (the conversation is still open).
    let tuesday_at = fx.local("2031-06-10 17:30");
    assert_eq!(
        run(&store, &recorder, tuesday_at).await,
        summary(tuesday_at, [1, 1, 0, 0, 0])
    );
    assert_reminded(&recorder.deliveries()[2..], &desk, "2031-06-10");
    assert!(recorder.repeated_keys().is_empty());
}

/// Several runs for the same instant at once (an EventBridge retry beside the first invocation, a manual run
/// beside the schedule): each due department is claimed by exactly one of them, each reminder sent once.
async fn overlapping_runs_send_each_reminder_once(t: TestStore) {
    const RUNS: usize = 8;
    // The runs all hold the due list before any of them claims a department.
    let store: DynStore = t.store();
    let gated = Arc::new(GatedStore::new(store.clone()));
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let a = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:30"), true),
        now,
    )
    .await;
    let b = department(
        &store,
        &fx,
        with_reminder("Grooming", Some("17:30"), true),
        now,
    )
    .await; // nothing open
    let c = department(
        &store,
        &fx,
        with_reminder("Surgery", Some("17:30"), true),
        now,
    )
    .await;
    start(&store, &fx, &a, "client-ann", Channel::App, now).await;
    start(&store, &fx, &a, "client-bob", Channel::Web, now).await;
    start(&store, &fx, &c, "client-cat", Channel::App, now).await;

    let recorder = RecordingSender::new();
    // Several days, so the runs meet in more than one interleaving.
    for day in ["2031-06-09", "2031-06-10", "2031-06-11"] {
        let at = fx.local(&format!("{day} 17:30"));
        gated.gate(Some(RUNS));
        let barrier = Arc::new(Barrier::new(RUNS));
        let runs: Vec<_> = (0..RUNS)
            .map(|_| {
                let (gated, barrier) = (gated.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    run_reminders(gated.as_ref(), at, DueShards::ALL)
                        .await
                        .expect("run_reminders")
                })
            })
            .collect();
        let mut summaries = Vec::new();
        for r in runs {
            summaries.push(r.await.expect("run task"));
        }
        gated.gate(None);
        deliver_reminders(&store, &recorder, at).await;
        let total = |f: fn(&RunSummary) -> usize| summaries.iter().map(f).sum::<usize>();
        assert_eq!(
            (
                total(|s| s.departments_reminded),
                total(|s| s.nothing_open),
                total(|s| s.failures),
            ),
            (2, 1, 0),
            "{day}: the three due departments are each handled by exactly one run: {summaries:#?}"
        );
        for s in &summaries {
            assert_eq!(s.due, 3, "{s:?}");
            assert_eq!(
                s.due,
                s.departments_reminded + s.nothing_open + s.already_handled,
                "{s:?}"
            );
        }
        for (id, n) in [(&a, 2), (&c, 1)] {
            let alert = reminder_id(id, day);
            for to in [DESK, VET] {
                assert_eq!(recorder.sent_count(&email_key(&alert, to)), 1, "{day} {id}");
            }
            assert_eq!(
                reminders_of(&recorder, id)
                    .iter()
                    .filter(|d| d.alert_id == alert)
                    .map(|d| d.conversation_ids.len())
                    .collect::<Vec<_>>(),
                [n, n]
            );
        }
        assert!(reminders_of(&recorder, &b).is_empty());
    }
    assert!(recorder.repeated_keys().is_empty());
    assert_eq!(recorder.deliveries().len(), 3 * 4);
}

// ---------------------------------------------------------------------------------------------------------
// Catch-up
// ---------------------------------------------------------------------------------------------------------

/// A New York practice with twelve departments reminded at 17:30 on 2031-06-09, each with one open app chat.
async fn twelve_reminded_at_half_past_five(store: &DynStore) -> (Fx, Vec<DepartmentId>) {
    let fx = practice(store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let mut departments = Vec::new();
    for n in 0..12 {
        let id = department(
            store,
            &fx,
            with_reminder(&format!("Department {n}"), Some("17:30"), true),
            now,
        )
        .await;
        start(store, &fx, &id, &format!("client-{n}"), Channel::App, now).await;
        departments.push(id);
    }
    (fx, departments)
}

/// A tick of the deployed schedule is several invocations, each over a range of the due index's shards
/// (template.yaml). Two runs over disjoint ranges covering every shard, at once: each reminds exactly the due
/// departments of its shards, so together each department once; a plain run (every shard) then finds
/// nothing due. On the embedded store (one table, no shards) a range keeps the departments whose shard it
/// holds, so the split is the same as on DynamoDB.
async fn runs_over_disjoint_ranges_of_shards_together_remind_each_department_once(t: TestStore) {
    let store: DynStore = t.store();
    let (fx, departments) = twelve_reminded_at_half_past_five(&store).await;
    let (low, high) = (
        DueShards::new(0, 15).expect("a range"),
        DueShards::new(16, 31).expect("a range"),
    );
    let in_range = |range: DueShards| -> Vec<DepartmentId> {
        departments
            .iter()
            .filter(|d| range.holds(&fx.practice_id, d))
            .cloned()
            .collect()
    };
    let (low_ids, high_ids) = (in_range(low), in_range(high));
    assert_eq!(low_ids.len() + high_ids.len(), departments.len());

    let recorder = RecordingSender::new();
    let at = fx.local("2031-06-09 17:30");
    let (low_run, high_run) = tokio::join!(
        run_reminders(store.as_ref(), at, low),
        run_reminders(store.as_ref(), at, high),
    );
    let (low_run, high_run) = (low_run.expect("run 0-15"), high_run.expect("run 16-31"));
    deliver_reminders(&store, &recorder, at).await;
    for (run, ids) in [(&low_run, &low_ids), (&high_run, &high_ids)] {
        let n = ids.len();
        assert_eq!(run, &summary(at, [n, n, 0, 0, 0]), "{ids:?}");
    }
    for id in &departments {
        assert_reminded(&reminders_of(&recorder, id), id, "2031-06-09");
    }
    assert!(recorder.repeated_keys().is_empty());
    assert_eq!(run(&store, &recorder, at).await, idle(at));
    assert_eq!(recorder.deliveries().len(), 2 * departments.len());
}

/// A fleet's reminder minute is more than a page (25,000 due departments in a range at 100,000 departments;
/// a page is 5,000): a run reads page after page while the entry says it has time, so one tick reminds them
/// all; without time for another it stops after one page and the next run takes the rest; a page that
/// fails (the store down) ends the run. Each department once. Here a page of 5 over 12 departments.
async fn a_run_goes_on_page_after_page_while_it_has_time(t: TestStore) {
    let store: DynStore = t.store();
    let (fx, departments) = twelve_reminded_at_half_past_five(&store).await;
    let recorder = RecordingSender::new();
    let at = fx.local("2031-06-09 17:30");
    let paged = |page: usize, more: &'static (dyn Fn() -> bool + Send + Sync)| Paging {
        page,
        time_for_another: more,
    };
    // The store down: the first page's claims fail, and the run does not read another though it has time.
    let failing_store = GatedStore::new(store.clone());
    failing_store.claims_fail(true);
    let failing = run_reminders_paged(&failing_store, at, DueShards::ALL, paged(5, &|| true))
        .await
        .expect("run");
    assert_eq!(failing, summary(at, [5, 0, 0, 0, 5]));
    assert!(
        pending_reminders(&store).await.is_empty(),
        "nothing claimed"
    );
    // No time for a second page: one page (the five the failed page left).
    let one = run_reminders_paged(store.as_ref(), at, DueShards::ALL, paged(5, &|| false))
        .await
        .expect("run");
    assert_eq!(one, summary(at, [5, 5, 0, 0, 0]));
    // Time for more, pages of one: the next run reads the last seven page by page, asking after each full
    // page, and stops at the empty eighth.
    static ASKED: AtomicU64 = AtomicU64::new(0);
    let rest = run_reminders_paged(
        store.as_ref(),
        at,
        DueShards::ALL,
        paged(1, &|| ASKED.fetch_add(1, Ordering::SeqCst) < 100),
    )
    .await
    .expect("run");
    assert_eq!(rest, summary(at, [7, 7, 0, 0, 0]));
    assert_eq!(
        ASKED.load(Ordering::SeqCst),
        7,
        "asked after each full page"
    );
    deliver_reminders(&store, &recorder, at).await;
    for id in &departments {
        assert_reminded(&reminders_of(&recorder, id), id, "2031-06-09");
    }
    assert!(recorder.repeated_keys().is_empty());
    assert_eq!(run(&store, &recorder, at).await, idle(at));
}

/// No run at the reminder's time (the schedule skipped one, the function failed): the next run sends it, the
/// same evening or the next morning, once.
async fn a_missed_run_is_caught_up_once_by_the_next_one(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let desk = department(&store, &fx, with_reminder("Front Desk", None, true), now).await; // 17:30
    let night = department(
        &store,
        &fx,
        with_reminder("Night Desk", Some("21:00"), true),
        now,
    )
    .await;
    start(&store, &fx, &desk, "client-ann", Channel::App, now).await;
    start(&store, &fx, &night, "client-bob", Channel::App, now).await;

    let recorder = RecordingSender::new();
    let early = fx.local("2031-06-09 17:15");
    assert_eq!(run(&store, &recorder, early).await, idle(early));
    // No run at 17:30. The 17:45 one sends the front desk's reminder.
    let late = fx.local("2031-06-09 17:45");
    assert_eq!(
        run(&store, &recorder, late).await,
        summary(late, [1, 1, 0, 0, 0])
    );
    assert_reminded(&reminders_of(&recorder, &desk), &desk, "2031-06-09");
    let later = fx.local("2031-06-09 18:00");
    assert_eq!(run(&store, &recorder, later).await, idle(later));

    // No run at all after 18:00: the next morning's first run sends the night desk's Monday reminder.
    let morning = fx.local("2031-06-10 07:00");
    assert_eq!(
        run(&store, &recorder, morning).await,
        summary(morning, [1, 1, 0, 0, 0])
    );
    assert_reminded(&reminders_of(&recorder, &night), &night, "2031-06-09");
    let next = morning + Duration::minutes(15);
    assert_eq!(run(&store, &recorder, next).await, idle(next));
    assert_eq!(
        next_due(&store, &fx, &night).await,
        Some(fx.local("2031-06-10 21:00"))
    );

    // Tuesday goes as usual.
    walk(
        &store,
        &fx,
        &recorder,
        &[
            (&desk, fx.local("2031-06-10 17:30"), "2031-06-10"),
            (&night, fx.local("2031-06-10 21:00"), "2031-06-10"),
        ],
    )
    .await;
    assert!(recorder.repeated_keys().is_empty());
}

/// Days without any run (an outage of the schedule) end in one reminder, not one per missed day; it is for
/// the last missed date, and the due instant moves to the next reminder still to come.
async fn several_missed_days_send_one_reminder_and_the_due_instant_moves_on(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "Europe/Paris", utc("2031-06-09T06:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let desk = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:30"), true),
        now,
    )
    .await;
    start(&store, &fx, &desk, "client-ann", Channel::App, now).await;
    assert_eq!(
        listed(&store, &desk).await,
        Some(fx.local("2031-06-09 17:30"))
    );

    // Monday, Tuesday and Wednesday go by without a run; Thursday 09:00 is the first.
    let recorder = RecordingSender::new();
    let thursday = fx.local("2031-06-12 09:00");
    assert_eq!(
        run(&store, &recorder, thursday).await,
        summary(thursday, [1, 1, 0, 0, 0])
    );
    let sent = reminders_of(&recorder, &desk);
    assert_reminded(&sent, &desk, "2031-06-11");
    assert!(
        sent[0].text.contains("Wednesday 11 June 2031"),
        "dated the last missed day: {}",
        sent[0].text
    );
    let due = fx.local("2031-06-12 17:30");
    assert_eq!(listed(&store, &desk).await, Some(due));
    assert_eq!(next_due(&store, &fx, &desk).await, Some(due));
    let next = thursday + Duration::minutes(15);
    assert_eq!(run(&store, &recorder, next).await, idle(next));

    walk(&store, &fx, &recorder, &[(&desk, due, "2031-06-12")]).await;
    assert_eq!(recorder.deliveries().len(), 4);
}

// ---------------------------------------------------------------------------------------------------------
// DST
// ---------------------------------------------------------------------------------------------------------

/// America/New_York, Sunday 2026-03-08: 02:00 EST jumps to 03:00 EDT. Closing at 18:00 puts the reminder at
/// 17:30 local, which is 22:30Z the day before and 21:30Z that day; 02:30 does not exist that day and
/// resolves to 03:00 EDT (07:00Z).
async fn new_york_spring_forward(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2026-03-07T05:00:00Z")).await;
    let now = utc("2026-03-07T05:00:00Z"); // Saturday 00:00 EST
    let mut body = with_reminder("Front Desk", None, true);
    body["hours"] = every_day_9_to_6();
    let desk = department(&store, &fx, body, now).await;
    let mut body = with_reminder("Night Desk", Some("02:30"), true);
    body["hours"] = every_day_9_to_6();
    let night = department(&store, &fx, body, now).await;
    start(&store, &fx, &desk, "client-ann", Channel::App, now).await;
    start(&store, &fx, &night, "client-bob", Channel::App, now).await;

    let recorder = RecordingSender::new();
    walk(
        &store,
        &fx,
        &recorder,
        &[
            (&desk, utc("2026-03-07T22:30:00Z"), "2026-03-07"),
            (&desk, utc("2026-03-08T21:30:00Z"), "2026-03-08"),
            (&desk, utc("2026-03-09T21:30:00Z"), "2026-03-09"),
            (&night, utc("2026-03-07T07:30:00Z"), "2026-03-07"),
            (&night, utc("2026-03-08T07:00:00Z"), "2026-03-08"),
            (&night, utc("2026-03-09T06:30:00Z"), "2026-03-09"),
        ],
    )
    .await;
}

/// America/New_York, Sunday 2026-11-01: 02:00 EDT falls back to 01:00 EST. 17:30 is 21:30Z the day before
/// and 22:30Z that day; 01:30 happens twice that day and takes its first occurrence (01:30 EDT, 05:30Z).
async fn new_york_fall_back(t: TestStore) {
    let store = t.store();
    let now = utc("2026-10-31T04:00:00Z"); // Saturday 00:00 EDT
    let fx = practice(&store, "America/New_York", now).await;
    let mut body = with_reminder("Front Desk", None, true);
    body["hours"] = every_day_9_to_6();
    let desk = department(&store, &fx, body, now).await;
    let night = department(
        &store,
        &fx,
        with_reminder("Night Desk", Some("01:30"), true),
        now,
    )
    .await;
    start(&store, &fx, &desk, "client-ann", Channel::App, now).await;
    start(&store, &fx, &night, "client-bob", Channel::App, now).await;

    let recorder = RecordingSender::new();
    walk(
        &store,
        &fx,
        &recorder,
        &[
            (&desk, utc("2026-10-31T21:30:00Z"), "2026-10-31"),
            (&desk, utc("2026-11-01T22:30:00Z"), "2026-11-01"),
            (&desk, utc("2026-11-02T22:30:00Z"), "2026-11-02"),
            (&night, utc("2026-10-31T05:30:00Z"), "2026-10-31"),
            (&night, utc("2026-11-01T05:30:00Z"), "2026-11-01"),
            (&night, utc("2026-11-02T06:30:00Z"), "2026-11-02"),
        ],
    )
    .await;
    // The repeated hour does not bring a second 01:30 reminder: runs through it send nothing.
    let sent = recorder.deliveries().len();
    for at in ["2026-11-01T06:00:00Z", "2026-11-01T06:30:00Z"] {
        run(&store, &recorder, utc(at)).await;
    }
    assert_eq!(recorder.deliveries().len(), sent);
}

/// Europe/London, Sunday 2026-03-29: 01:00 GMT jumps to 02:00 BST. 17:30 is 17:30Z the day before and 16:30Z
/// that day; 01:30 does not exist that day and resolves to 02:00 BST (01:00Z).
async fn london_spring_forward(t: TestStore) {
    let store = t.store();
    let now = utc("2026-03-28T00:00:00Z"); // Saturday 00:00 GMT
    let fx = practice(&store, "Europe/London", now).await;
    let mut body = with_reminder("Front Desk", None, true);
    body["hours"] = every_day_9_to_6();
    let desk = department(&store, &fx, body, now).await;
    let night = department(
        &store,
        &fx,
        with_reminder("Night Desk", Some("01:30"), true),
        now,
    )
    .await;
    start(&store, &fx, &desk, "client-ann", Channel::App, now).await;
    start(&store, &fx, &night, "client-bob", Channel::App, now).await;

    let recorder = RecordingSender::new();
    walk(
        &store,
        &fx,
        &recorder,
        &[
            (&desk, utc("2026-03-28T17:30:00Z"), "2026-03-28"),
            (&desk, utc("2026-03-29T16:30:00Z"), "2026-03-29"),
            (&desk, utc("2026-03-30T16:30:00Z"), "2026-03-30"),
            (&night, utc("2026-03-28T01:30:00Z"), "2026-03-28"),
            (&night, utc("2026-03-29T01:00:00Z"), "2026-03-29"),
            (&night, utc("2026-03-30T00:30:00Z"), "2026-03-30"),
        ],
    )
    .await;
}

// ---------------------------------------------------------------------------------------------------------
// Settings changes
// ---------------------------------------------------------------------------------------------------------

/// The reminder went at 16:00; the admin then moves it to 18:00. The department is due again at 18:00 that
/// day, and that run sends nothing: a date gets one reminder. The next day goes at 18:00.
async fn moving_the_time_later_after_the_reminder_went_sends_no_second_one_that_day(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let desk = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("16:00"), true),
        fx.local("2031-06-09 08:00"),
    )
    .await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 09:00"),
    )
    .await;
    let recorder = RecordingSender::new();
    let at = fx.local("2031-06-09 16:00");
    assert_eq!(
        run(&store, &recorder, at).await,
        summary(at, [1, 1, 0, 0, 0])
    );

    patch(
        &store,
        &fx,
        &desk,
        json!({"unresolved_reminder": {"enabled": true, "at": "18:00"}}),
        fx.local("2031-06-09 16:30"),
    )
    .await;
    let six = fx.local("2031-06-09 18:00");
    assert_eq!(next_due(&store, &fx, &desk).await, Some(six));
    assert_eq!(
        run(&store, &recorder, six).await,
        summary(six, [1, 0, 0, 1, 0])
    );
    assert_eq!(recorder.deliveries().len(), 2, "no second Monday reminder");
    walk(
        &store,
        &fx,
        &recorder,
        &[(&desk, fx.local("2031-06-10 18:00"), "2031-06-10")],
    )
    .await;
}

async fn moving_the_time_earlier_before_it_is_due_moves_the_reminder(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let desk = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:30"), true),
        fx.local("2031-06-09 08:00"),
    )
    .await;
    start(
        &store,
        &fx,
        &desk,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 09:00"),
    )
    .await;
    patch(
        &store,
        &fx,
        &desk,
        json!({"unresolved_reminder": {"at": "16:00"}}),
        fx.local("2031-06-09 15:00"),
    )
    .await;
    let recorder = RecordingSender::new();
    walk(
        &store,
        &fx,
        &recorder,
        &[(&desk, fx.local("2031-06-09 16:00"), "2031-06-09")],
    )
    .await;
    let old_time = fx.local("2031-06-09 17:30");
    assert_eq!(run(&store, &recorder, old_time).await, idle(old_time));
    assert_eq!(recorder.deliveries().len(), 2);
}

/// The due list (the sparse index on DynamoDB) holds exactly the departments with the reminder on, each at
/// its next reminder: switching it on lists the department, switching it off takes it out.
async fn the_due_list_follows_the_reminder_switch(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/Los_Angeles", utc("2031-06-09T15:00:00Z")).await;
    let team = fx.default_department();
    assert!(due_list(&store).await.is_empty(), "off by default");

    // The default department with the reminder on, by default 30 minutes before Monday's 18:00.
    patch(
        &store,
        &fx,
        &team,
        json!({"alerts": {"emails": [DESK]}, "unresolved_reminder": {"enabled": true}}),
        fx.local("2031-06-09 08:00"),
    )
    .await;
    let noon = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("12:00"), true),
        fx.local("2031-06-09 08:00"),
    )
    .await;
    let due = due_list(&store).await;
    assert_eq!(
        due,
        [
            DueReminder {
                practice_id: fx.practice_id.clone(),
                department_id: noon.clone(),
                due_at: fx.local("2031-06-09 12:00"),
            },
            DueReminder {
                practice_id: fx.practice_id.clone(),
                department_id: team.clone(),
                due_at: fx.local("2031-06-09 17:30"),
            },
        ],
        "earliest first"
    );

    // Off: out of the list, and a run at its time has nothing to do.
    patch(
        &store,
        &fx,
        &noon,
        json!({"unresolved_reminder": {"enabled": false}}),
        fx.local("2031-06-09 09:00"),
    )
    .await;
    assert_eq!(next_due(&store, &fx, &noon).await, None);
    assert_eq!(listed(&store, &noon).await, None);
    assert_eq!(
        listed(&store, &team).await,
        Some(fx.local("2031-06-09 17:30"))
    );
    start(
        &store,
        &fx,
        &noon,
        "client-ann",
        Channel::App,
        fx.local("2031-06-09 10:00"),
    )
    .await;
    let recorder = RecordingSender::new();
    let at = fx.local("2031-06-09 12:00");
    assert_eq!(run(&store, &recorder, at).await, idle(at));

    // On again on Wednesday morning: listed at Wednesday noon.
    patch(
        &store,
        &fx,
        &noon,
        json!({"unresolved_reminder": {"enabled": true}}),
        fx.local("2031-06-11 09:00"),
    )
    .await;
    assert_eq!(
        listed(&store, &noon).await,
        Some(fx.local("2031-06-11 12:00"))
    );
    // Its alerts off (not the reminder): still listed.
    patch(
        &store,
        &fx,
        &noon,
        json!({"alerts": {"enabled": false}}),
        fx.local("2031-06-11 09:30"),
    )
    .await;
    assert_eq!(
        listed(&store, &noon).await,
        Some(fx.local("2031-06-11 12:00"))
    );
}

// ---------------------------------------------------------------------------------------------------------
// What a run reports
// ---------------------------------------------------------------------------------------------------------

async fn the_summary_counts_each_outcome(t: TestStore) {
    let store = t.store();
    let fx = practice(&store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let two = department(
        &store,
        &fx,
        with_reminder("Front Desk", Some("17:00"), true),
        now,
    )
    .await;
    let mut body = with_reminder("Surgery", Some("17:15"), true);
    body["alerts"]["emails"] = json!([VET]);
    let one = department(&store, &fx, body, now).await;
    let empty = department(
        &store,
        &fx,
        with_reminder("Grooming", Some("17:00"), true),
        now,
    )
    .await;
    let moved = department(
        &store,
        &fx,
        with_reminder("Pharmacy", Some("16:00"), true),
        now,
    )
    .await;
    let later = department(
        &store,
        &fx,
        with_reminder("Boarding", Some("19:00"), true),
        now,
    )
    .await;
    for (d, client) in [
        (&two, "client-ann"),
        (&two, "client-bob"),
        (&one, "client-cat"),
        (&moved, "client-dan"),
        (&later, "client-eve"),
    ] {
        start(&store, &fx, d, client, Channel::App, now).await;
    }
    let recorder = RecordingSender::new();
    let four = fx.local("2031-06-09 16:00");
    assert_eq!(
        run(&store, &recorder, four).await,
        summary(four, [1, 1, 0, 0, 0])
    );
    // Pharmacy's reminder went at 16:00; moved to 17:00 it is due again, and already handled.
    patch(
        &store,
        &fx,
        &moved,
        json!({"unresolved_reminder": {"at": "17:00"}}),
        fx.local("2031-06-09 16:10"),
    )
    .await;

    let at = fx.local("2031-06-09 18:00");
    assert_eq!(
        run(&store, &recorder, at).await,
        // due: Front Desk, Surgery, Grooming, Pharmacy (Boarding is at 19:00). Reminded: Front Desk (two
        // emails) and Surgery (one); nothing open: Grooming; already handled: Pharmacy.
        summary(at, [4, 2, 1, 1, 0])
    );
    assert_eq!(reminders_of(&recorder, &two).len(), 2);
    assert_eq!(reminders_of(&recorder, &one).len(), 1);
    assert_eq!(reminders_of(&recorder, &moved).len(), 2);
    assert!(reminders_of(&recorder, &empty).is_empty());
    assert!(reminders_of(&recorder, &later).is_empty());
}

/// A New York practice whose Front Desk (reminder at 17:30, two alert emails) has one open conversation,
/// started Monday 2031-06-09 at 08:00.
async fn front_desk_with_one_open_conversation(store: &DynStore) -> (Fx, DepartmentId) {
    let fx = practice(store, "America/New_York", utc("2031-06-09T12:00:00Z")).await;
    let now = fx.local("2031-06-09 08:00");
    let desk = department(
        store,
        &fx,
        with_reminder("Front Desk", Some("17:30"), true),
        now,
    )
    .await;
    start(store, &fx, &desk, "client-ann", Channel::App, now).await;
    (fx, desk)
}

/// The store down when the run claims: the department counts as a failure, nothing is stored or sent, and
/// the next run (the next tick) reminds it, once.
async fn an_outage_of_the_store_is_counted_and_the_next_run_takes_it_over(t: TestStore) {
    let store = t.store();
    let (fx, desk) = front_desk_with_one_open_conversation(&store).await;
    let recorder = RecordingSender::new();

    let at = fx.local("2031-06-09 17:30");
    let failing = GatedStore::new(store.clone());
    failing.claims_fail(true);
    let summary_down = run_reminders(&failing, at, DueShards::ALL)
        .await
        .expect("a failed claim is counted, not returned");
    assert_eq!(summary_down, summary(at, [1, 0, 0, 0, 1]));
    deliver_reminders(&store, &recorder, at).await;
    assert!(pending_reminders(&store).await.is_empty());
    assert!(recorder.deliveries().is_empty());
    assert_eq!(next_due(&store, &fx, &desk).await, Some(at), "still due");

    let next = at + Duration::minutes(15);
    assert_eq!(
        run(&store, &recorder, next).await,
        summary(next, [1, 1, 0, 0, 0])
    );
    assert_reminded(&recorder.deliveries(), &desk, "2031-06-09");
    let later = next + Duration::minutes(15);
    assert_eq!(run(&store, &recorder, later).await, idle(later));
    assert!(recorder.repeated_keys().is_empty());
}

/// SES down when the dispatcher takes the reminder: the run has stored it (the run sends nothing itself), it
/// stays pending, later runs do not store it again, and the dispatcher delivers it once when SES is back. A
/// partial failure (one of two addresses) is completed the same way, each address once.
async fn an_email_outage_leaves_the_reminder_to_the_dispatcher_and_no_run_stores_it_again(
    t: TestStore,
) {
    let store = t.store();
    let (fx, desk) = front_desk_with_one_open_conversation(&store).await;
    let recorder = RecordingSender::new();
    let ses = FaultySender::new(recorder.clone());

    ses.outage(true);
    let at = fx.local("2031-06-09 17:30");
    assert_eq!(run(&store, &ses, at).await, summary(at, [1, 1, 0, 0, 0]));
    let monday = reminder_id(&desk, "2031-06-09");
    assert_eq!(pending_reminders(&store).await, vec![monday.clone()]);
    assert!(recorder.deliveries().is_empty());
    let next = at + Duration::minutes(15);
    assert_eq!(run(&store, &ses, next).await, idle(next));
    assert_eq!(pending_reminders(&store).await, vec![monday.clone()]);

    ses.outage(false);
    deliver_reminders(&store, &ses, at + Duration::minutes(20)).await;
    assert_reminded(&recorder.deliveries(), &desk, "2031-06-09");
    assert!(pending_reminders(&store).await.is_empty());
    deliver_reminders(&store, &ses, at + Duration::minutes(21)).await;
    assert_eq!(recorder.deliveries().len(), 2, "nothing sent twice");

    // Tuesday: the first send fails for now, the second goes; the next pass sends the first.
    ses.fail_next(1, SendError::Transient("throttled".into()));
    let at = fx.local("2031-06-10 17:30");
    assert_eq!(run(&store, &ses, at).await, summary(at, [1, 1, 0, 0, 0]));
    let tuesday = reminder_id(&desk, "2031-06-10");
    let sent = |to: &str| recorder.sent_count(&email_key(&tuesday, to));
    assert_eq!(sent(DESK) + sent(VET), 1);
    assert_eq!(pending_reminders(&store).await, vec![tuesday.clone()]);
    deliver_reminders(&store, &ses, at + Duration::minutes(2)).await;
    for to in [DESK, VET] {
        assert_eq!(sent(to), 1, "{to}");
    }
    assert!(pending_reminders(&store).await.is_empty());
    assert!(recorder.repeated_keys().is_empty());
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB only: what a run reads
// ---------------------------------------------------------------------------------------------------------

/// 50 departments, 3 of them due: the run reads the due index once and then only the due departments
/// (docs/architecture.md: a run reads in proportion to the departments due, never a Scan).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_a_run_reads_only_the_due_departments() {
    let log = RequestLog::new();
    let dynamo = Arc::new(logged_dynamo_store(&log).await);
    let store: DynStore = dynamo.clone();
    let now = utc("2031-06-09T12:00:00Z"); // Monday 08:00 in New York
    let mut due = Vec::new();
    let mut departments = 0;
    for p in 0..5 {
        let fx = practice(&store, "America/New_York", now).await;
        departments += 1; // the default department, reminder off
        for d in 0..9 {
            // Three due at 17:30 (two with open conversations, one without); the others later or off.
            let (at, on) = match (p, d) {
                (0, 0) | (2, 4) | (4, 8) => ("17:30", true),
                (_, d) if d % 3 == 0 => ("17:30", false),
                _ => ("19:00", true),
            };
            let mut body = with_reminder(&format!("Department {d}"), Some(at), true);
            body["unresolved_reminder"]["enabled"] = json!(on);
            let id = department(&store, &fx, body, now).await;
            departments += 1;
            if on && at == "17:30" {
                due.push(id.clone());
            }
            // Open conversations here and there, due or not.
            if (p, d) == (0, 0) || (p, d) == (2, 4) || d == 5 {
                start(
                    &store,
                    &fx,
                    &id,
                    &format!("client-{p}-{d}"),
                    Channel::App,
                    now,
                )
                .await;
            }
        }
    }
    assert_eq!((departments, due.len()), (50, 3));

    let recorder = RecordingSender::new();
    let at = utc("2031-06-09T21:30:00Z"); // 17:30 EDT
    log.clear();
    dynamo.request_counter().reset();
    assert_eq!(
        run_reminders(store.as_ref(), at, DueShards::ALL)
            .await
            .expect("run_reminders"),
        summary(at, [3, 2, 1, 0, 0])
    );
    let entries = log.entries();
    assert!(
        entries.iter().all(|e| e.operation != "Scan"),
        "never a scan: {entries:#?}"
    );
    let due_queries: Vec<_> = entries
        .iter()
        .filter(|e| e.index.as_deref() == Some("DUE"))
        .collect();
    // One Query per shard of the due index and one for its legacy partition.
    assert_eq!(due_queries.len(), DUE_SHARDS as usize + 1, "{entries:#?}");
    assert!(due_queries.iter().all(|q| q.operation == "Query"));
    assert_eq!(
        (
            due_queries.iter().map(|q| q.items).sum::<u64>(),
            due_queries.iter().map(|q| q.scanned).sum::<u64>()
        ),
        (3, 3),
        "the due index gives the three due departments and nothing else"
    );
    // Per due department: its practice and settings (1 BatchGetItem), its open conversations (1 Query on
    // the practice's open partition of GSI1), and one write: the claim with the reminder's outbox record
    // (TransactWriteItems) or, with nothing open, the bare advance (UpdateItem). Nothing else: the delivery
    // is the alert dispatcher's.
    let expected: BTreeMap<String, u64> = [
        ("Query DUE", u64::from(DUE_SHARDS) + 1),
        ("Query GSI1", 3),
        ("BatchGetItem", 3),
        ("TransactWriteItems", 2),
        ("UpdateItem", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(log.by_operation(), expected, "{entries:#?}");
    // The store's own counter agrees (it does not tell indexes apart).
    let counted: u64 = dynamo.request_counts().values().sum();
    assert_eq!(counted, expected.values().sum::<u64>());
    // Items read: 3 from the due index, 2 per BatchGetItem, and the open conversations of the three
    // practices (the due departments' and their neighbours'): nowhere near the 50 departments.
    let read: u64 = entries.iter().map(|e| e.scanned).sum();
    assert!(read <= 3 + 2 * 3 + 3 * 3, "{read} items read: {entries:#?}");
    deliver_reminders(&store, &recorder, at).await;
    assert_eq!(recorder.deliveries().len(), 4);
    for id in &due {
        assert!(listed(&store, id).await.is_some_and(|next| next > at));
    }
}

/// A due entry written before the index was sharded (`DUE_PK = DUE`) is still found, and its advance moves
/// it to the department's shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_a_legacy_due_entry_is_found_and_moved_to_its_shard() {
    let client = vetchat_tests::dynamo_client().await;
    let table = vetchat_tests::unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    let store: DynStore = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let now = utc("2031-06-09T12:00:00Z"); // Monday 08:00 in New York
    let fx = practice(&store, "America/New_York", now).await;
    let id = department(
        &store,
        &fx,
        with_reminder("Surgery", Some("17:30"), true),
        now,
    )
    .await;
    let key = HashMap::from([
        (
            "PK".to_owned(),
            AttributeValue::S(format!("PRACTICE#{}", fx.practice_id)),
        ),
        ("SK".to_owned(), AttributeValue::S(format!("DEPT#{id}"))),
    ]);
    let due_pk = || async {
        client
            .get_item()
            .table_name(&table)
            .set_key(Some(key.clone()))
            .send()
            .await
            .expect("GetItem")
            .item
            .and_then(|i| i.get("DUE_PK").cloned())
    };
    let shard = AttributeValue::S(due_partition(&fx.practice_id, &id));
    assert_eq!(due_pk().await, Some(shard.clone()), "written to its shard");
    // As the store wrote it before the shards.
    client
        .update_item()
        .table_name(&table)
        .set_key(Some(key.clone()))
        .update_expression("SET DUE_PK = :legacy")
        .expression_attribute_values(":legacy", AttributeValue::S("DUE".into()))
        .send()
        .await
        .expect("UpdateItem");
    assert_eq!(listed(&store, &id).await, Some(utc("2031-06-09T21:30:00Z")));

    let at = utc("2031-06-09T21:30:00Z"); // 17:30 EDT
    let recorder = RecordingSender::new();
    assert_eq!(
        run(&store, &recorder, at).await,
        summary(at, [1, 0, 1, 0, 0])
    );
    assert_eq!(due_pk().await, Some(shard), "moved to its shard");
    assert!(listed(&store, &id).await.is_some_and(|next| next > at));
}

/// A run over a range of shards Queries only those shards of the due index (and the legacy partition if the
/// range starts at shard 0), and finds only their due departments.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamo_a_range_of_shards_reads_only_its_shards() {
    let log = RequestLog::new();
    let dynamo = Arc::new(logged_dynamo_store(&log).await);
    let store: DynStore = dynamo.clone();
    let now = utc("2031-06-09T12:00:00Z"); // Monday 08:00 in New York
    let fx = practice(&store, "America/New_York", now).await;
    let mut departments = Vec::new();
    for n in 0..8 {
        let body = with_reminder(&format!("Department {n}"), Some("17:30"), true);
        departments.push(department(&store, &fx, body, now).await);
    }
    let at = utc("2031-06-09T21:30:00Z"); // 17:30 EDT
    for (first, last, partitions) in [(8, 15, 8), (0, 3, 5), (31, 31, 1)] {
        let range = DueShards::new(first, last).expect("a range");
        let mine: BTreeSet<&DepartmentId> = departments
            .iter()
            .filter(|d| range.holds(&fx.practice_id, d))
            .collect();
        log.clear();
        dynamo.request_counter().reset();
        let due = store
            .due_reminders(at, range, 100)
            .await
            .expect("due_reminders");
        let found: BTreeSet<&DepartmentId> = due.iter().map(|d| &d.department_id).collect();
        assert_eq!(found, mine, "shards {first}..={last}");
        let entries = log.entries();
        assert!(
            entries
                .iter()
                .all(|e| e.operation == "Query" && e.index.as_deref() == Some("DUE")),
            "{entries:#?}"
        );
        assert_eq!(
            (entries.len(), entries.iter().map(|e| e.scanned).sum::<u64>()),
            (partitions, mine.len() as u64),
            "shards {first}..={last}: one Query per shard (and the legacy partition from shard 0), reading only \
             the due entries of those shards: {entries:#?}"
        );
        let counted: u64 = dynamo.request_counts().values().sum();
        assert_eq!(counted, partitions as u64);
    }
}
