//! DynamoDB requests and consumed capacity per API operation, beside its budget (docs/architecture.md).
//!
//! Every operation goes through the handlers the functions run (the local server's router in-process, the
//! SNS text entry, the dispatcher, the reminder run) on a `DynamoStore` over DynamoDB Local. Requests are
//! counted by the store's own `RequestCounter`; capacity comes from an extra interceptor that asks for
//! `ReturnConsumedCapacity=INDEXES` (DynamoDB Local computes it as DynamoDB does: 4 KB read units, 1 KB
//! write units, transactions double).
//!
//! ```text
//! ddb-calls [--json results.json]
//! ```
//! Exits non-zero when an operation with a budget exceeds it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use adapters::senders::RecordingSender;
use adapters::store::DynamoStore;
use adapters::UlidIds;
use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use domain::conversation::AlertId;
use domain::identity::Role;
use domain::store::{AlertOutbox, PendingAlerts};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_bench::{counts_text, table, Api, Capacity, CapacityProbe, DASHBOARD};

const PRACTICE: &str = "prc_bench_calls";
const READS: &[&str] = &[
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];

/// The budgets of docs/architecture.md.
#[derive(Clone, Copy)]
enum Budget {
    None,
    /// One read and one write of any kind.
    ReadWrite,
    /// One read and one TransactWriteItems.
    ReadTransaction,
    /// One Query.
    Query,
    /// Reads proportional to the departments due, never a scan.
    PerDue(usize),
}

impl Budget {
    fn text(self) -> String {
        match self {
            Budget::None => "-".into(),
            Budget::ReadWrite => "1 read + 1 write".into(),
            Budget::ReadTransaction => "1 read + 1 transactional write".into(),
            Budget::Query => "1 query".into(),
            Budget::PerDue(_) => "reads ∝ due, no scan".into(),
        }
    }

    fn holds(self, counts: &BTreeMap<String, u64>) -> Option<bool> {
        let reads: u64 = READS
            .iter()
            .map(|op| counts.get(*op).copied().unwrap_or(0))
            .sum();
        let total: u64 = counts.values().sum();
        let n = |op: &str| counts.get(op).copied().unwrap_or(0);
        match self {
            Budget::None => None,
            Budget::ReadWrite => Some(reads == 1 && total == 2),
            Budget::ReadTransaction => {
                Some(reads == 1 && n("TransactWriteItems") == 1 && total == 2)
            }
            Budget::Query => Some(n("Query") == 1 && total == 1),
            // One query per partition of the due index (its shards and the legacy one), then 2 reads per
            // due department: its practice and settings, its open conversations (the alert dispatcher
            // delivers the reminder, with reads of its own).
            Budget::PerDue(due) => Some(
                n("Scan") == 0
                    && reads <= u64::from(adapters::store::DUE_SHARDS) + 1 + 2 * due as u64,
            ),
        }
    }
}

struct Row {
    operation: String,
    counts: BTreeMap<String, u64>,
    capacity: Capacity,
    budget: Budget,
    guard: &'static str,
}

struct Bench {
    store: Arc<DynamoStore>,
    probe: CapacityProbe,
    rows: Vec<Row>,
}

impl Bench {
    /// Runs `f`, recording the requests it sent and the capacity they consumed.
    async fn measure<T, F: Future<Output = T>>(
        &mut self,
        operation: &str,
        budget: Budget,
        guard: &'static str,
        f: F,
    ) -> T {
        self.store.request_counter().reset();
        self.probe.take();
        let out = f.await;
        self.rows.push(Row {
            operation: operation.to_owned(),
            counts: self.store.request_counts(),
            capacity: self.probe.take(),
            budget,
            guard,
        });
        out
    }
}

fn id(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .to_owned()
}

const G_CONV: &str = "conversation_contract: dynamo_conversation_requests_stay_within_budget";
const G_STORE: &str =
    "store_contract: dynamo_requests_stay_within_budget (practice_config = 1 Query)";
const G_XFER: &str = "alert_contract: dynamo_transfer_and_dispatch_stay_within_budget";
const G_REMIND: &str = "reminder: dynamo_a_run_reads_only_the_due_departments";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut json_out = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--json" => json_out = Some(it.next().expect("--json FILE")),
            other => panic!("unknown argument {other}"),
        }
    }
    let probe = CapacityProbe::default();
    let client = vetchat_bench::dynamo_client(Some(probe.clone())).await;
    let mut rows = api_operations(&client, &probe).await;
    rows.extend(reminder_runs(&client, &probe).await);
    let history = history_rows(&client, &probe).await;
    let grown = grown_with_history(&history);
    rows.extend(history);

    let mut over = Vec::new();
    let printed: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let total: u64 = r.counts.values().sum();
            let within = r.budget.holds(&r.counts);
            if within == Some(false) {
                over.push(r.operation.clone());
            }
            let cap = if r.capacity.reported == 0 {
                "-".to_owned()
            } else {
                format!("{:.1} / {:.1}", r.capacity.read, r.capacity.write)
            };
            vec![
                r.operation.clone(),
                total.to_string(),
                counts_text(&r.counts),
                cap,
                r.budget.text(),
                match within {
                    None => "-".into(),
                    Some(true) => "yes".into(),
                    Some(false) => "**no**".into(),
                },
                r.guard.to_owned(),
            ]
        })
        .collect();
    println!("### DynamoDB requests per operation (RequestCounter) and consumed capacity\n");
    println!(
        "{}",
        table(
            &[
                "operation",
                "requests",
                "by operation",
                "RCU / WCU",
                "budget (docs/architecture.md)",
                "within",
                "guarded by (tests/tests/)"
            ],
            &printed
        )
    );
    if let Some(path) = json_out {
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "operation": r.operation, "counts": r.counts,
                    "rcu": r.capacity.read, "wcu": r.capacity.write, "capacity_units": r.capacity.units,
                    "units_by_target": r.capacity.by_target,
                    "budget": r.budget.text(), "within": r.budget.holds(&r.counts), "guard": r.guard,
                })
            })
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&list).expect("JSON"))
            .unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
    if !grown.is_empty() {
        eprintln!("read units grow with the history: {grown:?}");
        std::process::exit(1);
    }
    if !over.is_empty() {
        eprintln!("over budget: {over:?}");
        std::process::exit(1);
    }
}

async fn api_operations(client: &aws_sdk_dynamodb::Client, probe: &CapacityProbe) -> Vec<Row> {
    let table = vetchat_bench::fresh_table(client).await;
    let store = Arc::new(DynamoStore::new(client.clone(), table));
    let api = Api::new(store.clone());
    let mut b = Bench {
        store: store.clone(),
        probe: probe.clone(),
        rows: Vec::new(),
    };
    let admin = Api::token(PRACTICE, Role::Admin, "admin-1");
    let staff = Api::token(PRACTICE, Role::Staff, "staff-1");
    let gateway = Api::token(PRACTICE, Role::Integration, "gateway-1");
    let owner = Api::token(PRACTICE, Role::Client, "owner-1");

    let practice = json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US", "sms_numbers": ["+12015550100"]});
    let p = b
        .measure(
            "PUT /practice (create)",
            Budget::None,
            "",
            api.expect(
                StatusCode::CREATED,
                Method::PUT,
                "/practice",
                &admin,
                Some(&practice),
            ),
        )
        .await;
    let default_id = id(&p, "default_department_id");
    b.measure(
        "PUT /practice (update, same numbers)",
        Budget::None,
        "",
        api.expect(
            StatusCode::OK,
            Method::PUT,
            "/practice",
            &admin,
            Some(&practice),
        ),
    )
    .await;
    let grooming: Value = serde_json::from_str(
        vetchat_bench::read_event("config-api", "post-department.json")["body"]
            .as_str()
            .expect("a body"),
    )
    .expect("JSON");
    let g = b
        .measure(
            "POST /departments",
            Budget::None,
            "",
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/departments",
                &admin,
                Some(&grooming),
            ),
        )
        .await;
    let grooming_id = id(&g, "id");
    b.measure(
        "GET /departments",
        Budget::Query,
        G_STORE,
        api.expect(StatusCode::OK, Method::GET, "/departments", &staff, None),
    )
    .await;
    let one = b
        .measure(
            "GET /departments/{id}",
            Budget::None,
            "",
            api.expect(
                StatusCode::OK,
                Method::GET,
                &format!("/departments/{grooming_id}"),
                &staff,
                None,
            ),
        )
        .await;
    let etag = id(&one, "etag");
    let (status, _) = b
        .measure(
            "PATCH /departments/{id} (If-Match)",
            Budget::None,
            "",
            api.call_with_headers(
                Method::PATCH,
                &format!("/departments/{grooming_id}"),
                &admin,
                &[("if-match", &etag)],
                &json!({"chat": {"greeting": "Hello from Grooming!"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    b.measure(
        "PUT /departments/{id}/online",
        Budget::None,
        "",
        api.expect(
            StatusCode::OK,
            Method::PUT,
            &format!("/departments/{grooming_id}/online"),
            &staff,
            Some(&json!({"online": true})),
        ),
    )
    .await;
    b.measure(
        "GET /public/practices/{id}/availability",
        Budget::Query,
        G_STORE,
        api.call(
            Method::GET,
            &format!("/public/practices/{PRACTICE}/availability"),
            None,
            None,
        ),
    )
    .await;

    // Alerts of the default department on (uncounted), so a dispatch below has two recipients.
    api.expect(
        StatusCode::OK,
        Method::PATCH,
        &format!("/departments/{default_id}"),
        &admin,
        Some(&json!({"alerts": {"enabled": true, "emails": ["desk@happypaws.example"], "sms_numbers": ["+12015550123"]}})),
    )
    .await;

    let text =
        json!({"channel": "sms", "from": "+12015550111", "body": "Is Rex ready for pickup?"});
    let r = b
        .measure(
            "POST /inbound (text, starts a conversation)",
            Budget::ReadTransaction,
            G_CONV,
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/inbound",
                &gateway,
                Some(&text),
            ),
        )
        .await;
    let texted = id(&r, "conversation_id");
    b.measure(
        "POST /inbound (text, into the open conversation)",
        Budget::ReadWrite,
        G_CONV,
        api.expect(
            StatusCode::OK,
            Method::POST,
            "/inbound",
            &gateway,
            Some(&text),
        ),
    )
    .await;
    let chat =
        json!({"channel": "app", "department_id": grooming_id, "body": "Can I book a bath?"});
    let chat_started = b
        .measure(
            "POST /inbound (app chat, starts a conversation, greeting)",
            Budget::ReadTransaction,
            G_CONV,
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/inbound",
                &owner,
                Some(&chat),
            ),
        )
        .await;
    b.measure(
        "POST /inbound (app chat, into the open conversation)",
        Budget::ReadWrite,
        G_CONV,
        api.expect(
            StatusCode::OK,
            Method::POST,
            "/inbound",
            &owner,
            Some(&chat),
        ),
    )
    .await;

    let sns = |n: u32| {
        json!({"originationNumber": "+12015550142", "destinationNumber": "+12015550100",
               "messageBody": "Hi, can Luna come in tomorrow?", "inboundMessageId": format!("msg-{n}")})
        .to_string()
    };
    let routed = b
        .measure(
            "SNS text (inbound-sms, starts a conversation)",
            Budget::None,
            "",
            inbound_router::sms::handle_text(store.as_ref(), &sns(1), Utc::now(), &UlidIds),
        )
        .await;
    assert!(matches!(
        routed,
        Ok(inbound_router::sms::TextOutcome::Routed(_))
    ));
    let routed = b
        .measure(
            "SNS text (inbound-sms, into the open conversation)",
            Budget::None,
            "",
            inbound_router::sms::handle_text(store.as_ref(), &sns(2), Utc::now(), &UlidIds),
        )
        .await;
    assert!(matches!(
        routed,
        Ok(inbound_router::sms::TextOutcome::Routed(_))
    ));

    let started = b
        .measure(
            "POST /conversations (staff start)",
            Budget::None,
            "",
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/conversations",
                &staff,
                Some(&json!({"department_id": grooming_id, "client_id": "owner-9", "body": "Your pet is ready"})),
            ),
        )
        .await;
    let started = id(&started, "id");
    b.measure(
        "POST /conversations/{id}/messages (staff reply)",
        Budget::ReadTransaction,
        G_CONV,
        api.expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("/conversations/{started}/messages"),
            &staff,
            Some(&json!({"body": "See you at 5"})),
        ),
    )
    .await;
    // The client's own view: one Query each (issue #15).
    let chat_id = id(&chat_started, "conversation_id");
    b.measure(
        "GET /client/conversations",
        Budget::Query,
        G_CONV,
        api.expect(
            StatusCode::OK,
            Method::GET,
            "/client/conversations",
            &owner,
            None,
        ),
    )
    .await;
    b.measure(
        "GET /client/conversations/{id}/messages?after=1",
        Budget::Query,
        G_CONV,
        api.expect(
            StatusCode::OK,
            Method::GET,
            &format!("/client/conversations/{chat_id}/messages?after=1"),
            &owner,
            None,
        ),
    )
    .await;
    b.measure(
        "POST /realtime/tickets",
        Budget::None,
        "",
        api.expect(
            StatusCode::CREATED,
            Method::POST,
            "/realtime/tickets",
            &owner,
            None,
        ),
    )
    .await;
    b.measure(
        "GET /conversations?status=open",
        Budget::None,
        "",
        api.expect(
            StatusCode::OK,
            Method::GET,
            "/conversations?status=open",
            &staff,
            None,
        ),
    )
    .await;
    b.measure(
        "GET /conversations (both statuses)",
        Budget::None,
        "",
        api.expect(StatusCode::OK, Method::GET, "/conversations", &staff, None),
    )
    .await;
    b.measure(
        "GET /conversations/{id}",
        Budget::None,
        "",
        api.expect(
            StatusCode::OK,
            Method::GET,
            &format!("/conversations/{texted}"),
            &staff,
            None,
        ),
    )
    .await;
    b.measure(
        "POST /conversations/{id}/transfer",
        Budget::ReadTransaction,
        G_XFER,
        api.expect(
            StatusCode::OK,
            Method::POST,
            &format!("/conversations/{texted}/transfer"),
            &staff,
            Some(&json!({"department_id": grooming_id, "note": "Grooming question"})),
        ),
    )
    .await;
    b.measure(
        "POST /conversations/{id}/end",
        Budget::None,
        "",
        api.expect(
            StatusCode::OK,
            Method::POST,
            &format!("/conversations/{started}/end"),
            &staff,
            None,
        ),
    )
    .await;

    // The dispatcher: the first pending new-conversation alert of the default department (email + SMS).
    let alert = first_alert_for(&store, &default_id).await;
    let sender = RecordingSender::new();
    let report = b
        .measure(
            "dispatch one alert (alert-dispatcher, 2 recipients)",
            Budget::None,
            G_XFER,
            domain::alert::dispatch::dispatch_alert(
                store.as_ref(),
                &sender,
                &alert,
                Utc::now(),
                DASHBOARD,
            ),
        )
        .await
        .expect("dispatch");
    assert_eq!(report.sent, 2, "{report:?}");
    b.measure(
        "dispatch the same alert again (stream replay)",
        Budget::None,
        G_XFER,
        domain::alert::dispatch::dispatch_alert(
            store.as_ref(),
            &sender,
            &alert,
            Utc::now(),
            DASHBOARD,
        ),
    )
    .await
    .expect("replay");
    b.rows
}

async fn first_alert_for(store: &DynamoStore, department: &str) -> AlertId {
    for id in store.pending_alert_ids(100).await.expect("pending alerts") {
        let record = store.get_alert(&id).await.expect("get").expect("exists");
        if record.alert.department_id.as_str() == department {
            return id;
        }
    }
    panic!("no pending alert for {department}");
}

/// The history sizes the constant-cost operations are measured at.
const HISTORIES: [u64; 2] = [10, 10_000];

/// What must cost the same read units whatever the conversation's history (issue #18).
const CONSTANT_COST: [&str; 4] = [
    "POST /inbound (text, into an open conversation)",
    "POST /conversations/{id}/messages (staff reply)",
    "GET /conversations/{id}?after={last_seq - 10}&limit=10 (the newest page)",
    "POST /conversations/{id}/transfer",
];

fn with_history(operation: &str, messages: u64) -> String {
    format!("{operation}, {messages} messages of history")
}

/// The operations of [`CONSTANT_COST`] whose read units differ between the history sizes.
fn grown_with_history(rows: &[Row]) -> Vec<String> {
    let read_units = |name: String| {
        rows.iter()
            .find(|r| r.operation == name)
            .map(|r| r.capacity.read)
            .unwrap_or_else(|| panic!("no row {name}"))
    };
    CONSTANT_COST
        .iter()
        .filter(|op| {
            let [small, large] = HISTORIES.map(|n| read_units(with_history(op, n)));
            small != large
        })
        .map(|op| (*op).to_owned())
        .collect()
}

/// A transfer, a staff reply, an inbound text into the open conversation and the newest page of it, each
/// on a conversation with 10 and with 10,000 messages of history (on a table of its own per size). The
/// history is appended through the store, 90 messages to a transaction, as copies of the conversation's
/// first message (so they have the stored shape whatever fields a message gains).
async fn history_rows(client: &aws_sdk_dynamodb::Client, probe: &CapacityProbe) -> Vec<Row> {
    use domain::conversation::{ConversationId, Message};
    use domain::identity::PracticeId;
    use domain::store::{
        ConversationHistory, ConversationIntake, ConversationStore, MessageRange, OpenConversation,
    };

    let mut rows = Vec::new();
    for n in HISTORIES {
        let table = vetchat_bench::fresh_table(client).await;
        let store = Arc::new(DynamoStore::new(client.clone(), table));
        let api = Api::new(store.clone());
        let admin = Api::token(PRACTICE, Role::Admin, "admin-1");
        let staff = Api::token(PRACTICE, Role::Staff, "staff-1");
        let gateway = Api::token(PRACTICE, Role::Integration, "gateway-1");
        api.expect(
            StatusCode::CREATED,
            Method::PUT,
            "/practice",
            &admin,
            Some(&json!({"name": "History Vets", "timezone": "America/New_York", "country": "US", "sms_numbers": ["+12015550100"]})),
        )
        .await;
        let target = api
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/departments",
                &admin,
                Some(&json!({"name": "Grooming"})),
            )
            .await;
        let target = id(&target, "id");
        let text =
            json!({"channel": "sms", "from": "+12015550111", "body": "Is Rex ready for pickup?"});
        let started = api
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/inbound",
                &gateway,
                Some(&text),
            )
            .await;
        let (practice, conversation) = (
            PracticeId(PRACTICE.to_owned()),
            ConversationId(id(&started, "conversation_id")),
        );
        let first = store
            .conversation_detail(
                &practice,
                &conversation,
                MessageRange { after: 0, limit: 1 },
            )
            .await
            .expect("detail")
            .expect("the conversation")
            .messages
            .remove(0);
        let template = serde_json::to_value(&first).expect("a message as JSON");
        loop {
            let c = store
                .get_conversation(&practice, &conversation)
                .await
                .expect("get")
                .expect("the conversation");
            if c.last_seq >= n {
                break;
            }
            let messages: Vec<Message> = (c.last_seq + 1..=(c.last_seq + 90).min(n))
                .map(|seq| {
                    let mut m = template.clone();
                    m["seq"] = json!(seq);
                    m["id"] = json!(format!("msg_history_{seq:06}"));
                    serde_json::from_value(m).expect("a message")
                })
                .collect();
            store
                .append_messages(&practice, &OpenConversation::of(&c), &messages, None)
                .await
                .expect("append the history");
        }
        let mut b = Bench {
            store: store.clone(),
            probe: probe.clone(),
            rows: Vec::new(),
        };
        let path = format!("/conversations/{}", conversation.0);
        b.measure(
            &with_history(CONSTANT_COST[0], n),
            Budget::ReadWrite,
            G_CONV,
            api.expect(
                StatusCode::OK,
                Method::POST,
                "/inbound",
                &gateway,
                Some(&text),
            ),
        )
        .await;
        b.measure(
            &with_history(CONSTANT_COST[1], n),
            Budget::ReadTransaction,
            G_CONV,
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                &format!("{path}/messages"),
                &staff,
                Some(&json!({"body": "See you at 5"})),
            ),
        )
        .await;
        let last = n + 2;
        let page = b
            .measure(
                &with_history(CONSTANT_COST[2], n),
                Budget::None,
                "",
                api.expect(
                    StatusCode::OK,
                    Method::GET,
                    &format!("{path}?after={}&limit=10", last - 10),
                    &staff,
                    None,
                ),
            )
            .await;
        assert_eq!(
            page["messages"].as_array().map(Vec::len),
            Some(10),
            "{page}"
        );
        b.measure(
            &with_history(CONSTANT_COST[3], n),
            Budget::ReadTransaction,
            G_XFER,
            api.expect(
                StatusCode::OK,
                Method::POST,
                &format!("{path}/transfer"),
                &staff,
                Some(&json!({"department_id": target, "note": "Grooming question"})),
            ),
        )
        .await;
        rows.extend(b.rows);
    }
    rows
}

/// The reminder run on its own table: 40 departments with the reminder on and one open conversation each,
/// due at 17:00 (1), 18:00 (4), 19:00 (15) and 23:30 (20) New York time; runs at 17:05, 18:05, 19:05, 19:10.
async fn reminder_runs(client: &aws_sdk_dynamodb::Client, probe: &CapacityProbe) -> Vec<Row> {
    let table = vetchat_bench::fresh_table(client).await;
    let store = Arc::new(DynamoStore::new(client.clone(), table));
    let api = Api::new(store.clone());
    let admin = Api::token(PRACTICE, Role::Admin, "admin-1");
    let staff = Api::token(PRACTICE, Role::Staff, "staff-1");
    api.expect(
        StatusCode::CREATED,
        Method::PUT,
        "/practice",
        &admin,
        Some(&json!({"name": "Reminder Vets", "timezone": "America/New_York", "country": "US", "sms_numbers": []})),
    )
    .await;
    let groups = [("17:00", 1), ("18:00", 4), ("19:00", 15), ("23:30", 20)];
    let mut k = 0;
    for (at, n) in groups {
        for _ in 0..n {
            let d = api
                .expect(
                    StatusCode::CREATED,
                    Method::POST,
                    "/departments",
                    &admin,
                    Some(&json!({"name": format!("Department {k:02}"),
                        "alerts": {"enabled": true, "emails": [format!("dept{k}@happypaws.example")]},
                        "unresolved_reminder": {"enabled": true, "at": at}})),
                )
                .await;
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/conversations",
                &staff,
                Some(&json!({"department_id": id(&d, "id"), "client_id": format!("owner-{k}"), "body": "Open"})),
            )
            .await;
            k += 1;
        }
    }
    let tz = chrono_tz::America::New_York;
    let tomorrow = Utc::now().with_timezone(&tz).date_naive() + Days::new(1);
    let at = |h: u32, m: u32| -> DateTime<Utc> {
        tz.from_local_datetime(
            &tomorrow.and_time(NaiveTime::from_hms_opt(h, m, 0).expect("a time")),
        )
        .single()
        .expect("not a DST edge")
        .with_timezone(&Utc)
    };
    // Catch up whatever is due before tomorrow (uncounted), so each run below sees only its group.
    domain::reminder::run_reminders(store.as_ref(), at(0, 1), domain::reminder::DueShards::ALL)
        .await
        .expect("catch-up run");
    let mut b = Bench {
        store: store.clone(),
        probe: probe.clone(),
        rows: Vec::new(),
    };
    for (h, m, due) in [(17, 5, 1), (18, 5, 4), (19, 5, 15), (19, 10, 0)] {
        let summary = b
            .measure(
                &format!("reminder run, {due} of 40 departments due"),
                Budget::PerDue(due),
                G_REMIND,
                domain::reminder::run_reminders(
                    store.as_ref(),
                    at(h, m),
                    domain::reminder::DueShards::ALL,
                ),
            )
            .await
            .expect("reminder run");
        assert_eq!(summary.due, due, "{summary:?}");
        assert_eq!(summary.departments_reminded, due, "{summary:?}");
    }
    b.rows
}
