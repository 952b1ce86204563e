//! Cold start, first invocation, warm latency and memory of every function's release binary, run as Lambda
//! runs it: on the in-repo Runtime API emulator (`vetchat_tests::runtime_api`), against DynamoDB Local (and
//! moto for SES/SNS), beside the hello-world `lambda_runtime` binary of `bench/hello-lambda`.
//!
//! ```text
//! lambda-bench --bin-dir <dir of release binaries> [--spawns 20] [--invocations 10000]
//!              [--only config-api,hello-lambda] [--json results.json] [--constant-trace-id]
//! ```
//!
//! 1. Every function gets a fresh table, seeded through the same handlers in-process (practice and Grooming
//!    from `events/config-api`, plus what its event needs: a conversation, pending alerts, an open chat).
//! 2. Cold start, `--spawns` rounds, the functions interleaved so drift hits them alike: spawn the binary,
//!    exec → first `GET /invocation/next` (init), then the first invocation (event queued → response).
//! 3. Soak: one process per function, `--invocations` invocations of its `events/` sample one after the
//!    other; `VmRSS`/`VmHWM` read at 1, 10, 100, then every 10%.
//!
//! Every reply is checked (HTTP 2xx, no batch failures, a reminder per run...): a benchmark of errors would
//! be worthless.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::store::DynamoStore;
use chrono::{Days, Utc};
use domain::identity::Role;
use domain::store::{ConnectionStore, TicketStore};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_bench::{mib, ms, quantile, read_event, rss_kib, table, Api};
use vetchat_tests::runtime_api::{aws_env_from_current, FunctionProcess, RuntimeApi};

const SENDER: &str = "alerts@vetchat-bench.example";
const ALL: &[&str] = &[
    "hello-lambda",
    "config-api",
    "inbound-router",
    "inbound-sms",
    "transfer-alerts",
    "alert-dispatcher",
    "eod-reminder",
    "realtime-connections",
    "realtime-fanout",
    "text-status",
    "text-sweep",
    "inbound-whatsapp",
];

struct Args {
    bin_dir: PathBuf,
    spawns: usize,
    invocations: usize,
    only: Vec<String>,
    json: Option<PathBuf>,
    /// The same trace id for every invocation (see `RuntimeApi::constant_trace_id`): separates the
    /// functions' own memory growth from the runtime's `_X_AMZN_TRACE_ID` copies.
    constant_trace_id: bool,
}

fn args() -> Args {
    let mut a = Args {
        bin_dir: PathBuf::new(),
        spawns: 20,
        invocations: 10_000,
        only: ALL.iter().map(|s| (*s).to_owned()).collect(),
        json: None,
        constant_trace_id: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bin-dir" => a.bin_dir = PathBuf::from(value()),
            "--spawns" => a.spawns = value().parse().expect("--spawns N"),
            "--invocations" => a.invocations = value().parse().expect("--invocations N"),
            "--only" => a.only = value().split(',').map(str::to_owned).collect(),
            "--json" => a.json = Some(PathBuf::from(value())),
            "--constant-trace-id" => a.constant_trace_id = true,
            "-h" | "--help" => {
                println!("lambda-bench --bin-dir DIR [--spawns 20] [--invocations 10000] [--only a,b] [--json FILE] [--constant-trace-id]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        !a.bin_dir.as_os_str().is_empty(),
        "--bin-dir <directory of the release binaries> is required"
    );
    a
}

// ---------------------------------------------------------------------------------------------------------
// Workloads: what each binary is invoked with, and what a good reply looks like
// ---------------------------------------------------------------------------------------------------------

type NextEvent = Box<dyn FnMut(usize) -> Value + Send>;

struct Workload {
    binary: &'static str,
    table: Option<String>,
    /// The event, for the report.
    event: String,
    /// What the invocations leave in the table.
    growth: &'static str,
    next: NextEvent,
    check: fn(&Value) -> Result<(), String>,
    /// Environment beyond the table and the AWS settings (the fanout's `@connections` endpoint).
    env: Vec<(String, String)>,
}

fn http_ok(out: &Value) -> Result<(), String> {
    match out["statusCode"].as_u64() {
        Some(200..=299) => Ok(()),
        _ => Err(format!("not a 2xx HTTP reply: {out}")),
    }
}

fn hello_ok(out: &Value) -> Result<(), String> {
    (out["hello"] == "world")
        .then_some(())
        .ok_or_else(|| format!("{out}"))
}

fn sns_ok(out: &Value) -> Result<(), String> {
    (out["routed"] == 1 && out["skipped"] == 0)
        .then_some(())
        .ok_or_else(|| format!("text not routed: {out}"))
}

fn stream_ok(out: &Value) -> Result<(), String> {
    (out["batchItemFailures"]
        .as_array()
        .is_some_and(Vec::is_empty))
    .then_some(())
    .ok_or_else(|| format!("batch failures: {out}"))
}

fn reminder_ok(out: &Value) -> Result<(), String> {
    (out["failures"] == 0 && out["departments_reminded"] == 1)
        .then_some(())
        .ok_or_else(|| format!("expected one department reminded: {out}"))
}

/// Sets an HTTP API (payload 2.0) event's path in both places API Gateway puts it.
fn set_path(event: &mut Value, path: &str) {
    event["rawPath"] = json!(path);
    event["requestContext"]["http"]["path"] = json!(path);
}

/// Edits the JSON carried as a string in `event[...]` (an HTTP body, an SNS message).
fn edit_json_string(slot: &mut Value, edit: impl FnOnce(&mut Value)) {
    let mut inner: Value =
        serde_json::from_str(slot.as_str().expect("a JSON string")).expect("JSON inside");
    edit(&mut inner);
    *slot = json!(inner.to_string());
}

/// A practice set up as `events/config-api` sets it up (PUT /practice, POST /departments) on a fresh table.
struct Seeded {
    api: Api,
    store: Arc<DynamoStore>,
    table: String,
    practice: String,
    default_id: String,
    grooming_id: String,
}

impl Seeded {
    fn token(&self, role: Role, sub: &str) -> String {
        Api::token(&self.practice, role, sub)
    }
}

async fn seed(client: &aws_sdk_dynamodb::Client) -> Seeded {
    let table = vetchat_bench::fresh_table(client).await;
    let store = Arc::new(DynamoStore::new(client.clone(), table.clone()));
    let api = Api::new(store.clone());
    let put = read_event("config-api", "put-practice.json");
    let practice = put["requestContext"]["authorizer"]["jwt"]["claims"]["practice_id"]
        .as_str()
        .expect("put-practice.json has a practice_id claim")
        .to_owned();
    let admin = Api::token(&practice, Role::Admin, "bench-admin");
    let body: Value = serde_json::from_str(put["body"].as_str().expect("a body")).expect("JSON");
    let reply = api
        .expect(
            StatusCode::CREATED,
            Method::PUT,
            "/practice",
            &admin,
            Some(&body),
        )
        .await;
    let default_id = reply["default_department_id"]
        .as_str()
        .expect("default_department_id")
        .to_owned();
    let post = read_event("config-api", "post-department.json");
    let body: Value = serde_json::from_str(post["body"].as_str().expect("a body")).expect("JSON");
    let reply = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/departments",
            &admin,
            Some(&body),
        )
        .await;
    let grooming_id = reply["id"].as_str().expect("an id").to_owned();
    Seeded {
        api,
        store,
        table,
        practice,
        default_id,
        grooming_id,
    }
}

async fn workload(
    binary: &'static str,
    client: &aws_sdk_dynamodb::Client,
    needed: usize,
) -> Workload {
    if binary == "hello-lambda" {
        return Workload {
            binary,
            table: None,
            event: "`{}`".into(),
            growth: "none",
            next: Box::new(|_| json!({})),
            check: hello_ok,
            env: Vec::new(),
        };
    }
    let s = seed(client).await;
    let table = Some(s.table.clone());
    match binary {
        "config-api" => {
            let event = read_event("config-api", "public-availability.json");
            Workload {
                binary,
                table,
                event: "events/config-api/public-availability.json (GET, read-only)".into(),
                growth: "none",
                next: Box::new(move |_| event.clone()),
                check: http_ok,
                env: Vec::new(),
            }
        }
        "inbound-router" => {
            let event = read_event("inbound-router", "inbound-sms-text.json");
            Workload {
                binary,
                table,
                event: "events/inbound-router/inbound-sms-text.json (POST /inbound: the first starts a \
                        conversation, the rest join it)"
                    .into(),
                growth: "one message item per invocation",
                next: Box::new(move |_| event.clone()),
                check: http_ok,
                env: Vec::new(),
            }
        }
        "inbound-sms" => {
            let event = read_event("inbound-sms", "sns-inbound-text.json");
            Workload {
                binary,
                table,
                event: "events/inbound-sms/sns-inbound-text.json, a fresh inboundMessageId each time (the \
                        first starts a conversation, the rest join it)"
                    .into(),
                growth: "one message item and one dedup item per invocation",
                next: Box::new(move |i| {
                    let mut e = event.clone();
                    edit_json_string(&mut e["Records"][0]["Sns"]["Message"], |m| {
                        m["inboundMessageId"] = json!(format!("bench-{i:08}"));
                    });
                    e
                }),
                check: sns_ok,
                env: Vec::new(),
            }
        }
        "transfer-alerts" => {
            // A different conversation each time (one text from a distinct number each): transferring one
            // conversation back and forth 10,000 times would measure a 10,000-transfer conversation, whose
            // every transfer reads the whole history (BENCHMARKS.md).
            let conversations = open_conversations(&s, needed).await;
            let event = read_event("transfer-alerts", "transfer-to-grooming.json");
            let grooming = s.grooming_id.clone();
            Workload {
                binary,
                table,
                event: "events/transfer-alerts/transfer-to-grooming.json, a different seeded conversation \
                        (one text each) to Grooming each time"
                    .into(),
                growth: "one transfer record and one pending alert per invocation",
                next: Box::new(move |i| {
                    let conversation = &conversations[i % conversations.len()];
                    let mut e = event.clone();
                    let path = format!("/conversations/{conversation}/transfer");
                    set_path(&mut e, &path);
                    e["pathParameters"]["id"] = json!(conversation);
                    edit_json_string(&mut e["body"], |b| b["department_id"] = json!(grooming));
                    e
                }),
                check: http_ok,
                env: Vec::new(),
            }
        }
        "alert-dispatcher" => {
            let admin = s.token(Role::Admin, "bench-admin");
            s.api
                .expect(
                    StatusCode::OK,
                    Method::PATCH,
                    &format!("/departments/{}", s.default_id),
                    &admin,
                    Some(
                        &json!({"alerts": {"enabled": true, "emails": ["desk@happypaws.example"]}}),
                    ),
                )
                .await;
            let ids = pending_alerts(&s, needed).await;
            Workload {
                binary,
                table,
                event: "a DynamoDB Streams INSERT of a pending alert (a different one each time: a new \
                        conversation's alert, one email through SES on moto)"
                    .into(),
                growth: "delivery outcomes on the alerts (seeded beforehand)",
                next: Box::new(move |i| stream_insert(&ids[i % ids.len()], i)),
                check: stream_ok,
                env: Vec::new(),
            }
        }
        "eod-reminder" => {
            let staff = s.token(Role::Staff, "bench-staff");
            s.api
                .expect(
                    StatusCode::CREATED,
                    Method::POST,
                    "/conversations",
                    &staff,
                    Some(&json!({"department_id": s.grooming_id, "client_id": "owner-bench", "body": "Still open"})),
                )
                .await;
            // As the deployed schedule invokes it (template.yaml: one target per quarter of the due index's
            // shards): the event of the target whose range holds Grooming's shard.
            let mut event = read_event("eod-reminder", "scheduled-event-shards-16-23.json");
            let shard = domain::reminder::due_shard(
                &domain::identity::PracticeId(s.practice.clone()),
                &domain::identity::DepartmentId(s.grooming_id.clone()),
            );
            let first_shard = shard / 8 * 8;
            event["detail"]["shards"] = json!({"first": first_shard, "last": first_shard + 7});
            // 23:45 UTC is after Grooming's 17:30 New York reminder and before New York's midnight, in
            // winter and summer: each run (a day later than the last) finds Grooming due and reminds it.
            let first = Utc::now().date_naive() + Days::new(1);
            Workload {
                binary,
                table,
                event: format!(
                    "events/eod-reminder/scheduled-event-shards-16-23.json with `detail.shards` the \
                     schedule target's range holding Grooming's shard ({first_shard}-{}: 8 shard Queries, 9 \
                     with the legacy partition from shard 0), `time` one day later each run (Grooming due \
                     each time, one open conversation: its reminder stored for the alert dispatcher)",
                    first_shard + 7
                ),
                growth: "one reminder alert per invocation",
                next: Box::new(move |i| {
                    let mut e = event.clone();
                    let day = first + Days::new(i as u64);
                    e["time"] = json!(format!("{day}T23:45:00Z"));
                    e
                }),
                check: reminder_ok,
                env: Vec::new(),
            }
        }
        "realtime-connections" => {
            // A ticket per invocation, sold to the practice's staff (each $connect takes one).
            let staff = domain::realtime::Subscriber {
                practice_id: domain::identity::PracticeId(s.practice.clone()),
                sub: "bench-staff".into(),
                role: Role::Staff,
                department_id: None,
            };
            let mut secrets = Vec::with_capacity(needed);
            for _ in 0..needed {
                let secret = adapters::new_ticket_secret();
                let ticket = domain::realtime::Ticket {
                    subscriber: staff.clone(),
                    expires_at: Utc::now() + chrono::Duration::hours(6),
                };
                s.store
                    .put_ticket(&secret, &ticket)
                    .await
                    .expect("seed a ticket");
                secrets.push(secret);
            }
            let event = read_event("realtime-connections", "connect.json");
            Workload {
                binary,
                table,
                event: "events/realtime-connections/connect.json ($connect), a fresh ticket and connection \
                        id each time (the ticket taken, the connection recorded)"
                    .into(),
                growth: "one connection item per invocation (tickets seeded beforehand)",
                next: Box::new(move |i| {
                    let mut e = event.clone();
                    let secret = &secrets[i % secrets.len()];
                    e["queryStringParameters"]["ticket"] = json!(secret);
                    e["multiValueQueryStringParameters"]["ticket"] = json!([secret]);
                    e["requestContext"]["connectionId"] = json!(format!("conn-bench-{i}"));
                    e
                }),
                check: http_ok,
                env: Vec::new(),
            }
        }
        "realtime-fanout" => {
            // Three staff connections of the practice, alive at a fake `@connections`.
            let fake = vetchat_tests::fake_connections::FakeConnections::start().await;
            for n in 0..3 {
                let id = format!("conn-bench-desk-{n}");
                fake.set(&id, vetchat_tests::fake_connections::Behaviour::Alive);
                s.store
                    .put_connection(&domain::realtime::Connection {
                        id: domain::realtime::ConnectionId(id),
                        subscriber: domain::realtime::Subscriber {
                            practice_id: domain::identity::PracticeId(s.practice.clone()),
                            sub: format!("bench-staff-{n}"),
                            role: Role::Staff,
                            department_id: None,
                        },
                        connected_at: Utc::now(),
                        expires_at: Utc::now() + chrono::Duration::hours(6),
                    })
                    .await
                    .expect("seed a connection");
            }
            let event = read_event(
                "realtime-fanout",
                "dynamodb-stream-message-and-transfer.json",
            );
            let practice = s.practice.clone();
            Workload {
                binary,
                table,
                event: "events/realtime-fanout/dynamodb-stream-message-and-transfer.json (a reply's INSERT and \
                        a transfer's MODIFY), posted to 3 connections at a fake @connections"
                    .into(),
                growth: "none (frames go to the fake)",
                next: Box::new(move |i| {
                    let mut e = event.clone();
                    for record in e["Records"].as_array_mut().into_iter().flatten() {
                        for image in ["NewImage", "OldImage"] {
                            if record["dynamodb"][image].is_object() {
                                record["dynamodb"][image]["practice_id"] = json!({"S": practice});
                            }
                        }
                        record["eventID"] = json!(format!("{i:032x}"));
                    }
                    e
                }),
                check: stream_ok,
                env: vec![("AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI".into(), fake.url.clone())],
            }
        }
        "text-status" => {
            let event = read_event("text-status", "sns-sms-delivered.json");
            Workload {
                binary,
                table,
                event: "events/text-status/sns-sms-delivered.json, a fresh SNS message id each time (a \
                        delivery event of a text not in this table: the one conditional UpdateItem refused)"
                    .into(),
                growth: "none",
                next: Box::new(move |i| {
                    let mut e = event.clone();
                    e["Records"][0]["Sns"]["MessageId"] = json!(format!("bench-{i}"));
                    e
                }),
                check: |out| {
                    out["applied"]
                        .is_u64()
                        .then_some(())
                        .ok_or_else(|| format!("no applied count: {out}"))
                },
                env: Vec::new(),
            }
        }
        "text-sweep" => {
            let event = read_event("text-sweep", "scheduled-event.json");
            Workload {
                binary,
                table,
                event: "events/text-sweep/scheduled-event.json (nothing stuck: one Query of the in-flight \
                        texts)"
                    .into(),
                growth: "none",
                next: Box::new(move |_| event.clone()),
                check: |out| {
                    (out["stuck"] == 0)
                        .then_some(())
                        .ok_or_else(|| format!("expected nothing stuck: {out}"))
                },
                env: Vec::new(),
            }
        }
        "inbound-whatsapp" => {
            // The practice's WhatsApp number, as the sample's header names it (AWS's phone number id).
            let put = read_event("config-api", "put-practice.json");
            let mut body: Value =
                serde_json::from_str(put["body"].as_str().expect("a body")).expect("JSON");
            body["whatsapp_numbers"] = json!([{
                "phone_number_id": "phone-number-id-976c72a700aac43eaf573ae050example",
                "number": "+12015550100"
            }]);
            let admin = s.token(Role::Admin, "bench-admin");
            s.api
                .expect(
                    StatusCode::OK,
                    Method::PUT,
                    "/practice",
                    &admin,
                    Some(&body),
                )
                .await;
            let event = read_event("inbound-whatsapp", "sns-whatsapp-message.json");
            Workload {
                binary,
                table,
                event: "events/inbound-whatsapp/sns-whatsapp-message.json, a fresh Meta message id each time \
                        (the first starts a conversation, the rest join it; the reaction beside it skipped)"
                    .into(),
                growth: "one message item and one dedup item per invocation",
                next: Box::new(move |i| {
                    let mut e = event.clone();
                    let message = e["Records"][0]["Sns"]["Message"]
                        .as_str()
                        .expect("Message is a string")
                        .replace("wamid.", &format!("wamid.bench{i}-"));
                    e["Records"][0]["Sns"]["Message"] = json!(message);
                    e["Records"][0]["Sns"]["MessageId"] = json!(format!("bench-{i}"));
                    e
                }),
                check: |out| {
                    (out["routed"] == 1)
                        .then_some(())
                        .ok_or_else(|| format!("expected one message routed: {out}"))
                },
                env: Vec::new(),
            }
        }
        other => panic!("no workload for {other}"),
    }
}

/// `n` open conversations in the default department: `n` texts from distinct numbers (each also leaves a
/// pending new-conversation alert). Returns their ids.
async fn open_conversations(s: &Seeded, n: usize) -> Vec<String> {
    let token = s.token(Role::Integration, "bench-gateway");
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // Every new conversation adds one to the same department's open count, so parallel writers collide
    // on that item and back off (up to a second each): 16 writers stalled seeding for minutes; 4 rarely meet.
    const PARALLEL: usize = 4;
    for w in 0..PARALLEL {
        let (api, token) = (s.api.clone(), token.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in (w..n).step_by(PARALLEL) {
                let body = json!({"channel": "sms", "from": format!("+1201{:07}", 2_000_000 + i), "body": "Is Rex ready?"});
                let reply = api
                    .expect(StatusCode::CREATED, Method::POST, "/inbound", &token, Some(&body))
                    .await;
                ids.push(reply["conversation_id"].as_str().expect("an id").to_owned());
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(r) = tasks.join_next().await {
        ids.extend(r.expect("seeding task"));
    }
    eprintln!(
        "  seeded {} conversations in {:.1}s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    ids
}

/// `n` pending new-conversation alerts: `n` texts from distinct numbers, each starting a conversation.
async fn pending_alerts(s: &Seeded, n: usize) -> Vec<String> {
    let started = Instant::now();
    open_conversations(s, n).await;
    let alerts = vetchat_tests::dynamo_pending_alerts(&s.store).await;
    eprintln!(
        "  seeded {} pending alerts in {:.1}s",
        alerts.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(alerts.len() >= n, "expected {n} pending alerts");
    alerts.into_iter().map(|a| a.id.0).collect()
}

/// A DynamoDB Streams event with one INSERT of `ALERT#<id>`, as Lambda delivers it.
fn stream_insert(alert_id: &str, i: usize) -> Value {
    json!({"Records": [{
        "eventID": format!("{i:032x}"),
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_446_000,
            "Keys": {"PK": {"S": format!("ALERT#{alert_id}")}, "SK": {"S": "ALERT"}},
            "SequenceNumber": format!("{:021}", 100_000_000_000_000_000_000u128 + i as u128),
            "SizeBytes": 512,
            "StreamViewType": "NEW_AND_OLD_IMAGES"
        },
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/vetchat/stream/2026-11-01T00:00:00.000"
    }]})
}

// ---------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------

async fn spawn(args: &Args, w: &Workload) -> FunctionProcess {
    let mut env = aws_env_from_current();
    if let Some(table) = &w.table {
        env.push(("DYNAMODB_TABLE".into(), table.clone()));
    }
    env.push(("SENDER_EMAIL".into(), SENDER.into()));
    env.push(("DASHBOARD_URL".into(), vetchat_bench::DASHBOARD.into()));
    env.extend(w.env.iter().cloned());
    let binary = args.bin_dir.join(w.binary);
    assert!(binary.is_file(), "no binary at {}", binary.display());
    let api = RuntimeApi::start().await.expect("start the Runtime API");
    let api = if args.constant_trace_id {
        api.constant_trace_id()
    } else {
        api
    };
    api.spawn_function(&binary, env)
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
}

async fn invoke(f: &mut FunctionProcess, w: &mut Workload, i: usize) -> Duration {
    let event = (w.next)(i);
    let t0 = Instant::now();
    let out = match f.invoke(event).await {
        Ok(out) => out,
        Err(e) => panic!("{} invocation {i}: {e}\n--- log:\n{}", w.binary, f.logs()),
    };
    let took = t0.elapsed();
    if let Err(e) = (w.check)(&out) {
        panic!("{} invocation {i}: {e}\n--- log:\n{}", w.binary, f.logs());
    }
    took
}

#[derive(Default)]
struct Cold {
    init: Vec<Duration>,
    first: Vec<Duration>,
}

struct Soak {
    warm: Vec<Duration>,
    /// (invocations done, VmRSS KiB, VmHWM KiB)
    memory: Vec<(usize, u64, u64)>,
}

fn checkpoints(n: usize) -> Vec<usize> {
    let mut c: Vec<usize> = [1, 10, 100, 1000].into_iter().filter(|&k| k <= n).collect();
    c.extend((1..=10).map(|k| n * k / 10).filter(|&k| k > 0));
    c.sort();
    c.dedup();
    c
}

fn memory_at(soak: &Soak, at: usize) -> (u64, u64) {
    soak.memory
        .iter()
        .rev()
        .find(|(i, _, _)| *i <= at)
        .map_or((0, 0), |(_, r, h)| (*r, *h))
}

async fn create_sender_identity() {
    if std::env::var_os("AWS_ENDPOINT_URL_SESV2").is_none_or(|v| v.is_empty()) {
        eprintln!("  AWS_ENDPOINT_URL_SESV2 is not set: alert-dispatcher and eod-reminder need SES (moto)");
        return;
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let _ = aws_sdk_sesv2::Client::new(&sdk)
        .create_email_identity()
        .email_identity(SENDER)
        .send()
        .await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let client = vetchat_bench::dynamo_client(None).await;
    create_sender_identity().await;
    let names: Vec<&'static str> = ALL
        .iter()
        .copied()
        .filter(|n| args.only.iter().any(|o| o == n))
        .collect();

    eprintln!("lambda-bench: seeding a table per function");
    let mut workloads = Vec::new();
    for name in &names {
        let t0 = Instant::now();
        workloads.push(workload(name, &client, args.spawns + args.invocations + 1).await);
        eprintln!("  {name}: ready in {:.1}s", t0.elapsed().as_secs_f64());
    }

    eprintln!(
        "lambda-bench: cold start, {} rounds of {} binaries",
        args.spawns,
        workloads.len()
    );
    let mut cold: Vec<Cold> = workloads.iter().map(|_| Cold::default()).collect();
    let mut sequence = vec![0usize; workloads.len()];
    for _round in 0..args.spawns {
        for (k, w) in workloads.iter_mut().enumerate() {
            let mut f = spawn(&args, w).await;
            let init = f
                .wait_ready(Duration::from_secs(20))
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n--- log:\n{}", w.binary, f.logs()));
            let first = invoke(&mut f, w, sequence[k]).await;
            sequence[k] += 1;
            cold[k].init.push(init);
            cold[k].first.push(first);
        }
    }

    for (k, w) in workloads.iter().enumerate() {
        let init: Vec<String> = cold[k].init.iter().map(|d| ms(*d)).collect();
        eprintln!("  {} init ms: {}", w.binary, init.join(" "));
    }

    let mut soaks = Vec::new();
    for (k, w) in workloads.iter_mut().enumerate() {
        eprintln!("lambda-bench: {} x{}", w.binary, args.invocations);
        let t0 = Instant::now();
        let mut f = spawn(&args, w).await;
        f.wait_ready(Duration::from_secs(20))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", w.binary));
        let marks = checkpoints(args.invocations);
        let mut soak = Soak {
            warm: Vec::with_capacity(args.invocations),
            memory: Vec::new(),
        };
        for i in 1..=args.invocations {
            let took = invoke(&mut f, w, sequence[k]).await;
            sequence[k] += 1;
            if i > 1 {
                soak.warm.push(took);
            }
            if marks.contains(&i) {
                let (rss, hwm) = rss_kib(f.pid()).expect("/proc/<pid>/status");
                soak.memory.push((i, rss, hwm));
                eprintln!(
                    "  {i}: VmRSS {rss} KiB, VmHWM {hwm} KiB, last invocation {} ms, {:.1}s so far",
                    ms(took),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        eprintln!("  done in {:.1}s", t0.elapsed().as_secs_f64());
        soaks.push(soak);
    }

    report(&args, &workloads, &cold, &soaks);
}

fn report(args: &Args, workloads: &[Workload], cold: &[Cold], soaks: &[Soak]) {
    let hello = workloads
        .iter()
        .position(|w| w.binary == "hello-lambda")
        .map(|k| quantile(&cold[k].init, 0.5));
    let mut rows = Vec::new();
    let mut json_rows = Vec::new();
    for (k, w) in workloads.iter().enumerate() {
        let (init50, init90) = (quantile(&cold[k].init, 0.5), quantile(&cold[k].init, 0.9));
        let (first50, first90) = (quantile(&cold[k].first, 0.5), quantile(&cold[k].first, 0.9));
        let ratio = hello.map(|h| init50.as_secs_f64() / h.as_secs_f64());
        let size = std::fs::metadata(args.bin_dir.join(w.binary)).map_or(0, |m| m.len());
        rows.push(vec![
            format!("`{}`", w.binary),
            ms(init50),
            ms(init90),
            ratio.map_or("-".into(), |r| format!("{r:.2}×")),
            ratio.map_or("-".into(), |r| {
                if r <= 1.5 { "yes" } else { "**no**" }.into()
            }),
            ms(first50),
            ms(first90),
            format!("{:.1}", size as f64 / (1024.0 * 1024.0)),
        ]);
        let soak = &soaks[k];
        let n = args.invocations;
        let (rss1, _) = memory_at(soak, 1);
        let (rss1k, hwm1k) = memory_at(soak, 1000.min(n));
        let (rssn, hwmn) = memory_at(soak, n);
        json_rows.push(json!({
            "binary": w.binary, "event": w.event, "growth": w.growth,
            "init_ms": cold[k].init.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
            "first_invocation_ms": cold[k].first.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
            "init_median_ms": init50.as_secs_f64() * 1e3, "init_p90_ms": init90.as_secs_f64() * 1e3,
            "init_ratio_to_hello": ratio,
            "first_invocation_median_ms": first50.as_secs_f64() * 1e3,
            "first_invocation_p90_ms": first90.as_secs_f64() * 1e3,
            "warm_p50_ms": quantile(&soak.warm, 0.5).as_secs_f64() * 1e3,
            "warm_p99_ms": quantile(&soak.warm, 0.99).as_secs_f64() * 1e3,
            "invocations": n,
            "memory_kib": soak.memory.iter().map(|(i, r, h)| json!({"after": i, "rss": r, "hwm": h})).collect::<Vec<_>>(),
            "rss_after_1": rss1, "rss_after_1k": rss1k, "rss_after_half": memory_at(soak, n / 2).0, "hwm_after_1k": hwm1k, "rss_after_n": rssn, "hwm_after_n": hwmn,
            "size_bytes": size,
        }));
    }
    println!(
        "### Cold start (exec → first `next` poll) and first invocation, {} spawns each\n",
        args.spawns
    );
    println!(
        "{}",
        table(
            &[
                "binary",
                "init p50 ms",
                "init p90 ms",
                "init ÷ hello",
                "≤ 1.5×",
                "1st invocation p50 ms",
                "p90 ms",
                "size MiB"
            ],
            &rows
        )
    );

    let n = args.invocations;
    let mut rows = Vec::new();
    for (k, w) in workloads.iter().enumerate() {
        let soak = &soaks[k];
        let (rss1, _) = memory_at(soak, 1);
        let (rss1k, hwm1k) = memory_at(soak, 1000.min(n));
        let (rssn, hwmn) = memory_at(soak, n);
        let growth = rssn as i64 - rss1k as i64;
        // A leak grows the second half as much as the first; warming up (allocator pools, connection
        // pool, caches) does not.
        let second_half = match memory_at(soak, n / 2) {
            (0, _) => "-".to_owned(),
            (rss_half, _) => format!("{:+} KiB", rssn as i64 - rss_half as i64),
        };
        rows.push(vec![
            format!("`{}`", w.binary),
            ms(quantile(&soak.warm, 0.5)),
            ms(quantile(&soak.warm, 0.99)),
            mib(rss1),
            format!("{} / {}", mib(rss1k), mib(hwm1k)),
            format!("{} / {}", mib(rssn), mib(hwmn)),
            format!("{growth:+} KiB"),
            second_half,
            if hwmn < 32 * 1024 { "yes" } else { "**no**" }.into(),
        ]);
    }
    println!("### {n} invocations per process (warm latency, memory)\n");
    if args.constant_trace_id {
        println!(
            "Diagnostic run: the same `Lambda-Runtime-Trace-Id` for every invocation (`--constant-trace-id`), \
             so `lambda_runtime`'s `_X_AMZN_TRACE_ID` copies do not grow the process.\n"
        );
    }
    println!(
        "{}",
        table(
            &[
                "binary",
                "warm p50 ms",
                "warm p99 ms",
                "RSS after 1 MiB",
                &format!("RSS / peak after {} MiB", 1000.min(n)),
                &format!("RSS / peak after {n} MiB"),
                &format!("RSS {}→{n}", 1000.min(n)),
                &format!("RSS {}→{n}", n / 2),
                "peak < 32 MiB"
            ],
            &rows
        )
    );
    println!("Events and what they leave behind:\n");
    for w in workloads {
        println!("- `{}`: {}; table growth: {}.", w.binary, w.event, w.growth);
    }
    println!();
    println!("RSS (KiB) at each checkpoint (invocations: VmRSS/VmHWM):\n");
    for (k, w) in workloads.iter().enumerate() {
        let series: Vec<String> = soaks[k]
            .memory
            .iter()
            .map(|(i, r, h)| format!("{i}: {r}/{h}"))
            .collect();
        println!("- `{}`: {}", w.binary, series.join(", "));
    }
    if let Some(path) = &args.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json!({"functions": json_rows})).expect("JSON"),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
