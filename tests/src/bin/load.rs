//! `load`: sustained mixed traffic against a running local server (on 127.0.0.1 only), then a check that
//! every count in the store equals what was sent. `scripts/load` starts DynamoDB Local and the local
//! server on it and runs this; by hand:
//!
//! ```sh
//! LOAD_URL=http://127.0.0.1:3000 LOCAL_JWT_SECRET=... LOAD_SECONDS=60 cargo run -p vetchat-tests --bin load
//! ```
//!
//! Env: `LOAD_URL` (must be http://127.0.0.1:<port>), `LOCAL_JWT_SECRET` (the server's), `LOAD_SECONDS`
//! (default 180), `LOAD_WORKERS` (concurrent clients, default 8), `LOAD_REPORT` (a file the summary is
//! appended to).
//!
//! The traffic: texts from the gateway (new conversations and replies into open ones), app chats to
//! visible departments, staff replies, transfers, ends, public availability, department lists, settings
//! changes, and requests the contract refuses with 409 (an app chat to a department that is closed with
//! no after-hours messages, deleting the default department). Each worker owns its own clients, so what
//! it was answered is the truth for them; the departments, their counters and the alert outbox are shared
//! by all workers. Any answer other than the expected one (a 5xx, a 4xx other than those 409s, a
//! timeout) is an error. Afterwards (the alert worker given time to drain): the conversations listed are
//! exactly the ones started, each holds exactly the messages sent to it and its transfers, every
//! department's `open_conversations` equals its open conversations, and `/_local/sent` holds one alert per
//! new conversation and per transfer, none twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::identity::Role;
use serde_json::{json, Value};

use vetchat_tests::local_server::{Answer, Client};

const PRACTICE: &str = "prc_load";

/// What one conversation must hold, as its worker was answered.
#[derive(Debug, Clone, Default)]
struct Truth {
    department: String,
    open: bool,
    /// Client and staff messages (auto-replies are counted apart).
    messages: usize,
    transfers: usize,
}

#[derive(Default)]
struct Tally {
    /// (operation, status) → count.
    answers: BTreeMap<(String, u16), u64>,
    /// Unexpected answers, first few kept.
    errors: Vec<String>,
    error_count: u64,
    latencies_ms: Vec<u64>,
}

struct Shared {
    tally: Mutex<Tally>,
    conversations: Mutex<BTreeMap<String, Truth>>,
}

fn record(
    shared: &Shared,
    op: &str,
    started: Instant,
    result: &Result<Answer, String>,
    ok: &[u16],
) {
    let mut t = shared.tally.lock().unwrap();
    t.latencies_ms.push(started.elapsed().as_millis() as u64);
    match result {
        Ok(a) => {
            *t.answers.entry((op.to_owned(), a.status)).or_insert(0) += 1;
            if !ok.contains(&a.status) {
                t.error_count += 1;
                if t.errors.len() < 20 {
                    t.errors.push(format!("{op}: {} {}", a.status, a.body));
                }
            }
        }
        Err(e) => {
            *t.answers.entry((op.to_owned(), 0)).or_insert(0) += 1;
            t.error_count += 1;
            if t.errors.len() < 20 {
                t.errors.push(e.clone());
            }
        }
    }
}

struct Setup {
    team: String,
    /// Visible, open around the clock, alerts on.
    open: Vec<String>,
    /// Visible, never open, no messages after hours: app chats get 409 after_hours.
    closed: String,
}

fn always_open() -> Value {
    let day = json!({"start": "00:00", "end": "24:00"});
    json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day})
}

async fn set_up(c: &Client) -> Setup {
    use reqwest::Method;
    let r = c
        .admin(
            Method::PUT,
            "/practice",
            Some(json!({"name": "Load Vets", "timezone": "America/New_York", "country": "US"})),
        )
        .await;
    assert!(
        r.status == 201 || r.status == 200,
        "PUT /practice: {}",
        r.body
    );
    let team = r.body["default_department_id"].as_str().unwrap().to_owned();
    let r = c
        .admin(
            Method::PATCH,
            &format!("/departments/{team}"),
            Some(json!({"hours": always_open(), "alerts": {"enabled": true, "emails": "desk@load.example"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut open = vec![team.clone()];
    for name in ["Grooming", "Boarding", "Telehealth"] {
        let r = c
            .admin(
                Method::POST,
                "/departments",
                Some(json!({"name": name, "visible_in_app": true, "hours": always_open(),
                       "alerts": {"enabled": true, "emails": format!("{}@load.example", name.to_lowercase())}})),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        open.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let r = c
        .admin(
            Method::POST,
            "/departments",
            Some(
                json!({"name": "Night Desk", "visible_in_app": true, "hours": {},
                   "chat": {"allow_messages_after_hours": false}}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let closed = r.body["id"].as_str().unwrap().to_owned();
    Setup { team, open, closed }
}

/// One worker: its own texting numbers and app clients, until the deadline.
async fn worker(id: usize, c: Client, setup: Arc<Setup>, shared: Arc<Shared>, deadline: Instant) {
    use reqwest::Method;
    let numbers: Vec<String> = (0..40)
        .map(|n| format!("+1201555{:04}", id * 100 + n))
        .collect();
    let apps: Vec<String> = (0..20).map(|n| format!("w{id}-owner-{n}")).collect();
    // The open conversation of each of this worker's clients, as answered.
    let mut open_of: BTreeMap<String, String> = BTreeMap::new();
    let integration = c.token(Role::Integration, "gateway");
    let staff = c.token(Role::Staff, &format!("staff-{id}"));
    let admin = c.token(Role::Admin, "admin-1");
    let mut rng = fastrand::Rng::with_seed(id as u64 * 7919 + 1);
    while Instant::now() < deadline {
        let roll = rng.u32(0..100);
        let started = Instant::now();
        match roll {
            // A text from the gateway: joins the client's open conversation or starts one.
            0..=29 => {
                let from = numbers[rng.usize(0..numbers.len())].clone();
                let r = c
                    .send(
                        Method::POST,
                        "/inbound",
                        Some(integration.clone()),
                        Some(
                            json!({"channel": "sms", "from": from, "body": format!("text {roll}")}),
                        ),
                    )
                    .await;
                record(&shared, "POST /inbound sms", started, &r, &[200, 201]);
                absorb_inbound(&shared, &mut open_of, &from, &setup.team, r);
            }
            // An app chat to a visible department that is open.
            30..=44 => {
                let client = apps[rng.usize(0..apps.len())].clone();
                let d = setup.open[rng.usize(0..setup.open.len())].clone();
                let token = c.token(Role::Client, &client);
                let r = c
                    .send(
                        Method::POST,
                        "/inbound",
                        Some(token),
                        Some(json!({"channel": "app", "department_id": d, "body": "app message"})),
                    )
                    .await;
                record(&shared, "POST /inbound app", started, &r, &[200, 201]);
                absorb_inbound(&shared, &mut open_of, &client, &d, r);
            }
            // A staff reply.
            45..=54 => {
                let Some(cid) = pick(&mut rng, &open_of) else {
                    continue;
                };
                let r = c
                    .send(
                        Method::POST,
                        &format!("/conversations/{cid}/messages"),
                        Some(staff.clone()),
                        Some(json!({"body": "On it!"})),
                    )
                    .await;
                record(
                    &shared,
                    "POST /conversations/{id}/messages",
                    started,
                    &r,
                    &[201],
                );
                if matches!(&r, Ok(a) if a.status == 201) {
                    if let Some(t) = shared.conversations.lock().unwrap().get_mut(&cid) {
                        t.messages += 1;
                    }
                }
            }
            // A transfer to another open department.
            55..=62 => {
                let Some(cid) = pick(&mut rng, &open_of) else {
                    continue;
                };
                let from = shared.conversations.lock().unwrap()[&cid]
                    .department
                    .clone();
                let choices: Vec<&String> = setup.open.iter().filter(|d| **d != from).collect();
                let to = choices[rng.usize(0..choices.len())].clone();
                let r = c
                    .send(
                        Method::POST,
                        &format!("/conversations/{cid}/transfer"),
                        Some(staff.clone()),
                        Some(json!({"department_id": to, "note": "load"})),
                    )
                    .await;
                record(
                    &shared,
                    "POST /conversations/{id}/transfer",
                    started,
                    &r,
                    &[200],
                );
                if matches!(&r, Ok(a) if a.status == 200) {
                    let mut all = shared.conversations.lock().unwrap();
                    let t = all.get_mut(&cid).unwrap();
                    t.department = to;
                    t.transfers += 1;
                }
            }
            // Staff end a conversation.
            63..=72 => {
                let Some(cid) = pick(&mut rng, &open_of) else {
                    continue;
                };
                let r = c
                    .send(
                        Method::POST,
                        &format!("/conversations/{cid}/end"),
                        Some(staff.clone()),
                        None,
                    )
                    .await;
                record(&shared, "POST /conversations/{id}/end", started, &r, &[200]);
                if matches!(&r, Ok(a) if a.status == 200) {
                    shared
                        .conversations
                        .lock()
                        .unwrap()
                        .get_mut(&cid)
                        .unwrap()
                        .open = false;
                    open_of.retain(|_, v| *v != cid);
                }
            }
            // What the app shows.
            73..=84 => {
                let r = c
                    .send(
                        Method::GET,
                        &format!("/public/practices/{PRACTICE}/availability"),
                        None,
                        None,
                    )
                    .await;
                record(&shared, "GET /public/.../availability", started, &r, &[200]);
            }
            85..=89 => {
                let r = c
                    .send(Method::GET, "/departments", Some(staff.clone()), None)
                    .await;
                record(&shared, "GET /departments", started, &r, &[200]);
            }
            // A settings change (no If-Match: it applies to whatever is current).
            90..=92 => {
                let d = setup.open[rng.usize(0..setup.open.len())].clone();
                let r = c
                    .send(
                        Method::PATCH,
                        &format!("/departments/{d}"),
                        Some(admin.clone()),
                        Some(json!({"chat": {"greeting": format!("Hello from worker {id}")}})),
                    )
                    .await;
                record(&shared, "PATCH /departments/{id}", started, &r, &[200]);
            }
            // Expected 409s: a chat to the closed department (from a client with nothing open), and
            // deleting the default department.
            93..=97 => {
                let client = format!("w{id}-closed-{}", rng.u32(0..1_000_000));
                let token = c.token(Role::Client, &client);
                let r = c
                    .send(
                        Method::POST,
                        "/inbound",
                        Some(token),
                        Some(json!({"channel": "web", "department_id": setup.closed, "body": "anyone?"})),
                    )
                    .await;
                record(
                    &shared,
                    "POST /inbound to a closed department",
                    started,
                    &r,
                    &[409],
                );
            }
            _ => {
                let r = c
                    .send(
                        Method::DELETE,
                        &format!("/departments/{}", setup.team),
                        Some(admin.clone()),
                        None,
                    )
                    .await;
                record(
                    &shared,
                    "DELETE the default department",
                    started,
                    &r,
                    &[409],
                );
            }
        }
    }
}

fn pick(rng: &mut fastrand::Rng, open_of: &BTreeMap<String, String>) -> Option<String> {
    if open_of.is_empty() {
        return None;
    }
    open_of.values().nth(rng.usize(0..open_of.len())).cloned()
}

fn absorb_inbound(
    shared: &Shared,
    open_of: &mut BTreeMap<String, String>,
    client: &str,
    department: &str,
    r: Result<Answer, String>,
) {
    let Ok(a) = r else { return };
    if a.status != 200 && a.status != 201 {
        return;
    }
    let cid = a.body["conversation_id"].as_str().unwrap_or("").to_owned();
    let mut all = shared.conversations.lock().unwrap();
    if a.status == 201 {
        all.insert(
            cid.clone(),
            Truth {
                department: a.body["department_id"]
                    .as_str()
                    .unwrap_or(department)
                    .to_owned(),
                open: true,
                messages: 1,
                transfers: 0,
            },
        );
    } else if let Some(t) = all.get_mut(&cid) {
        t.messages += 1;
    } else {
        // A 200 into a conversation this worker never saw start: impossible (clients are per worker).
        panic!("{client} joined unknown conversation {cid}");
    }
    open_of.insert(client.to_owned(), cid);
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let base = std::env::var("LOAD_URL").unwrap_or_else(|_| "http://127.0.0.1:3000".into());
    let url = reqwest::Url::parse(&base).expect("LOAD_URL is a URL");
    assert!(
        url.scheme() == "http" && url.host_str() == Some("127.0.0.1"),
        "LOAD_URL must be http://127.0.0.1:<port> (loopback only), not {base}"
    );
    let secret = std::env::var("LOCAL_JWT_SECRET").unwrap_or_else(|_| "local-dev-secret".into());
    let seconds: u64 = std::env::var("LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180);
    let workers: usize = std::env::var("LOAD_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let c = Client {
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(workers)
            .build()
            .expect("an HTTP client"),
        ..Client::new(&base, &secret, PRACTICE)
    };
    let setup = Arc::new(set_up(&c).await);
    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::default()),
        conversations: Mutex::new(BTreeMap::new()),
    });
    println!("load: {workers} workers for {seconds} s against {base}");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            tokio::spawn(worker(
                i,
                c.clone(),
                setup.clone(),
                shared.clone(),
                deadline,
            ))
        })
        .collect();
    for t in tasks {
        t.await.expect("worker");
    }
    let traffic = started.elapsed();

    // ---- the figures of the traffic
    let mut report = Vec::new();
    {
        let mut t = shared.tally.lock().unwrap();
        t.latencies_ms.sort_unstable();
        let total: u64 = t.answers.values().sum();
        report.push(format!(
            "traffic: {total} requests in {:.0} s ({:.0}/s) from {workers} workers; latency p50 {} ms, p99 {} ms, max {} ms",
            traffic.as_secs_f64(),
            total as f64 / traffic.as_secs_f64(),
            percentile(&t.latencies_ms, 0.5),
            percentile(&t.latencies_ms, 0.99),
            t.latencies_ms.last().copied().unwrap_or(0)
        ));
        for ((op, status), n) in &t.answers {
            report.push(format!("  {op:<40} {status} x {n}"));
        }
        report.push(format!("unexpected answers: {}", t.error_count));
        for e in &t.errors {
            report.push(format!("  {e}"));
        }
    }

    // ---- afterwards: the store against what was sent
    let truth = shared.conversations.lock().unwrap().clone();
    let mut failures: Vec<String> = Vec::new();
    let listed: Vec<Value> = c.all_conversations("").await;
    if listed.len() != truth.len() {
        failures.push(format!(
            "{} conversations listed, {} started",
            listed.len(),
            truth.len()
        ));
    }
    let mut messages_stored = 0;
    let mut messages_sent = 0;
    let mut transfers_stored = 0;
    let mut open_truth: BTreeMap<String, u64> = BTreeMap::new();
    for (cid, want) in &truth {
        let d = c.staff_get(&format!("/conversations/{cid}")).await;
        let stored = d["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["author"]["kind"] != "auto")
            .count();
        let transfers = d["transfers"].as_array().unwrap().len();
        messages_stored += stored;
        messages_sent += want.messages;
        transfers_stored += transfers;
        let status = if want.open { "open" } else { "resolved" };
        if stored != want.messages
            || transfers != want.transfers
            || d["department_id"] != want.department.as_str()
            || d["status"] != status
        {
            failures.push(format!(
                "{cid}: stored {stored} messages, {transfers} transfers, {} {} ; sent {want:?}",
                d["department_id"], d["status"]
            ));
        }
        if want.open {
            *open_truth.entry(want.department.clone()).or_insert(0) += 1;
        }
    }
    let departments = c.staff_get("/departments").await;
    for d in departments.as_array().unwrap() {
        let id = d["id"].as_str().unwrap();
        let count = d["open_conversations"].as_u64().unwrap_or(u64::MAX);
        let want = open_truth.get(id).copied().unwrap_or(0);
        report.push(format!(
            "department {:<12} open_conversations {count} (open conversations sent there: {want})",
            d["name"].as_str().unwrap_or("")
        ));
        if count != want {
            failures.push(format!("{id}: open_conversations {count}, truth {want}"));
        }
    }

    // Alerts: one per new conversation and per transfer (each department alerts one address), once.
    let transfers_sent: usize = truth.values().map(|t| t.transfers).sum();
    let alerts_wanted = truth.len() + transfers_sent;
    let waited = Instant::now();
    let mut sent: Vec<Value>;
    loop {
        let r = c
            .send(reqwest::Method::GET, "/_local/sent", None, None)
            .await
            .expect("GET /_local/sent");
        sent = r.body.as_array().cloned().unwrap_or_default();
        if sent.len() >= alerts_wanted || waited.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A little longer: anything sent twice would show up now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sent = c
        .send(reqwest::Method::GET, "/_local/sent", None, None)
        .await
        .expect("GET /_local/sent")
        .body
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_alert: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sent {
        *by_kind
            .entry(s["kind"].as_str().unwrap_or("").to_owned())
            .or_insert(0) += 1;
        let key = format!(
            "{} {} {} {}",
            s["kind"], s["conversation_ids"], s["department_id"], s["to"]
        );
        *per_alert.entry(key).or_insert(0) += 1;
    }
    let new_alerts = by_kind.get("new_conversation").copied().unwrap_or(0);
    let transfer_alerts = by_kind.get("transfer").copied().unwrap_or(0);
    if new_alerts != truth.len() {
        failures.push(format!(
            "{new_alerts} new-conversation alerts for {} conversations",
            truth.len()
        ));
    }
    // A conversation moved back and forth can be alerted to one department more than once, one alert
    // per transfer: compare totals.
    if transfer_alerts != transfers_sent {
        failures.push(format!(
            "{transfer_alerts} transfer alerts for {transfers_sent} transfers"
        ));
    }
    let new_twice = per_alert
        .iter()
        .filter(|(k, n)| k.starts_with("\"new_conversation\"") && **n > 1)
        .count();
    if new_twice > 0 {
        failures.push(format!(
            "{new_twice} new-conversation alerts delivered twice"
        ));
    }

    report.push(format!(
        "store: {} conversations listed / {} started; {messages_stored} client+staff messages stored / {messages_sent} sent; \
         {transfers_stored} transfers stored / {transfers_sent} made",
        listed.len(),
        truth.len()
    ));
    report.push(format!(
        "alerts: {new_alerts} new-conversation / {} conversations, {transfer_alerts} transfer / {transfers_sent} transfers \
         (delivered within {:.1} s after the traffic)",
        truth.len(),
        waited.elapsed().as_secs_f64()
    ));
    let unexpected = shared.tally.lock().unwrap().error_count;
    let verdict = if failures.is_empty() && unexpected == 0 {
        "RESULT: ok, nothing lost, nothing doubled, no unexpected answer".to_owned()
    } else {
        format!(
            "RESULT: FAILED ({unexpected} unexpected answers, {} mismatches)",
            failures.len()
        )
    };
    for f in failures.iter().take(30) {
        report.push(format!("  mismatch: {f}"));
    }
    report.push(verdict.clone());
    let text = report.join("\n");
    println!("{text}");
    if let Ok(path) = std::env::var("LOAD_REPORT") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open LOAD_REPORT");
        writeln!(f, "{text}").expect("write LOAD_REPORT");
    }
    if !verdict.starts_with("RESULT: ok") {
        std::process::exit(1);
    }
}
