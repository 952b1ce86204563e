//! One client floods the local server (loopback HTTP, the embedded store in memory) while other clients and
//! staff chat: the per-client limits must hold, the others must see no 429 and keep their latency, and
//! nothing accepted may be lost. Two runs of the same chatter, `quiet` (alone) and `flood` (beside
//! `--flooders` connections of one client sending `POST /inbound` as fast as they are answered). Afterwards
//! every conversation is read back through the API and each accepted message is looked for (bodies are
//! unique): `lost` counts those missing, `stored refused` those answered 429 that were stored anyway.
//! Prints a Markdown table, and `--json <file>`.
//!
//!   flood [--seconds 10] [--flooders 16] [--others 20] [--staff 2] [--json out.json]
//!
//! A pet owner chats at most 30 messages a minute (the default limit): each other client sends one message
//! every 2.5 s and reads its conversation every 0.5 s; each staff member lists open conversations and
//! replies to one every second. Latency is each such request's, from send to the whole answer read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::identity::Role;
use serde_json::{json, Value};
use vetchat_bench::{arg, percentile};
use vetchat_tests::api::Api;
use vetchat_tests::live::LiveServer;
use vetchat_tests::TestStore;

/// What one run saw.
#[derive(Default)]
struct Tally {
    /// Latencies (ms) of the other clients' and staff's requests.
    others_ms: Vec<f64>,
    others_429: usize,
    others_failed: usize,
    flooder_requests: usize,
    flooder_accepted: usize,
    flooder_429: usize,
    flooder_failed: usize,
    /// Bodies answered 2xx, and bodies answered 429, by client.
    accepted: BTreeMap<String, Vec<String>>,
    refused: BTreeMap<String, Vec<String>>,
    /// The conversation each client's messages went to.
    conversations: BTreeMap<String, String>,
}

struct Run {
    base: String,
    http: reqwest::Client,
    practice: String,
    tally: Mutex<Tally>,
    stop: AtomicBool,
}

impl Run {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let body = r.json::<Value>().await.unwrap_or(Value::Null);
                (status, body)
            }
            Err(_) => (0, Value::Null),
        }
    }

    /// An inbound message of `client`; counted as the flooder's or as chatter.
    async fn message(&self, client: &str, token: &str, body: String, flooder: bool) {
        let start = Instant::now();
        let (status, answer) = self
            .send(
                reqwest::Method::POST,
                "/inbound",
                token,
                Some(json!({"channel": "web", "body": body})),
            )
            .await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut t = self.tally.lock().unwrap();
        match (flooder, status) {
            (true, _) => {
                t.flooder_requests += 1;
                match status {
                    200 | 201 => t.flooder_accepted += 1,
                    429 => t.flooder_429 += 1,
                    _ => t.flooder_failed += 1,
                }
            }
            (false, 429) => t.others_429 += 1,
            (false, 200 | 201) => {}
            (false, _) => t.others_failed += 1,
        }
        if !flooder {
            t.others_ms.push(ms);
        }
        match status {
            200 | 201 => {
                if let Some(id) = answer["conversation_id"].as_str() {
                    t.conversations.insert(client.to_owned(), id.to_owned());
                }
                t.accepted.entry(client.to_owned()).or_default().push(body);
            }
            429 => t.refused.entry(client.to_owned()).or_default().push(body),
            _ => {}
        }
    }

    /// A request of the chatter whose latency counts (reads, staff work).
    async fn timed(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Value {
        let start = Instant::now();
        let (status, answer) = self.send(method, path, token, body).await;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let mut t = self.tally.lock().unwrap();
        t.others_ms.push(ms);
        match status {
            200..=299 => {}
            429 => t.others_429 += 1,
            _ => t.others_failed += 1,
        }
        answer
    }
}

async fn client_chatter(run: Arc<Run>, client: String) {
    let token = Api::token_as(&run.practice, Role::Client, &client);
    let mut k = 0;
    let mut last_message = Instant::now() - Duration::from_secs(10);
    while !run.stop.load(Ordering::Relaxed) {
        if last_message.elapsed() >= Duration::from_millis(2500) {
            last_message = Instant::now();
            run.message(&client, &token, format!("{client} says {k}"), false)
                .await;
            k += 1;
        }
        let conversation = run
            .tally
            .lock()
            .unwrap()
            .conversations
            .get(&client)
            .cloned();
        if let Some(id) = conversation {
            run.timed(
                reqwest::Method::GET,
                &format!("/client/conversations/{id}/messages"),
                &token,
                None,
            )
            .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn staff_chatter(run: Arc<Run>, staff: String) {
    let token = Api::token_as(&run.practice, Role::Staff, &staff);
    let mut k = 0;
    while !run.stop.load(Ordering::Relaxed) {
        let list = run
            .timed(
                reqwest::Method::GET,
                "/conversations?status=open",
                &token,
                None,
            )
            .await;
        let first = list["conversations"][k % 3]["id"]
            .as_str()
            .map(str::to_owned);
        if let Some(id) = first {
            run.timed(
                reqwest::Method::POST,
                &format!("/conversations/{id}/messages"),
                &token,
                Some(json!({"body": format!("{staff} answers {k}")})),
            )
            .await;
        }
        k += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn flooder(run: Arc<Run>, lane: usize) {
    let token = Api::token_as(&run.practice, Role::Client, "flooder");
    let mut k = 0;
    while !run.stop.load(Ordering::Relaxed) {
        run.message("flooder", &token, format!("flood {lane}-{k}"), true)
            .await;
        k += 1;
    }
}

/// Every stored body of `id`, through `GET /conversations/{id}` page by page.
async fn stored_bodies(run: &Run, id: &str) -> Vec<String> {
    let token = Api::token_as(&run.practice, Role::Staff, "auditor");
    let mut after = 0;
    let mut bodies = Vec::new();
    loop {
        let (status, page) = run
            .send(
                reqwest::Method::GET,
                &format!("/conversations/{id}?after={after}&limit=200"),
                &token,
                None,
            )
            .await;
        assert_eq!(status, 200, "reading {id}: {page}");
        for m in page["messages"].as_array().into_iter().flatten() {
            if let Some(b) = m["body"].as_str() {
                bodies.push(b.to_owned());
            }
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return bodies,
        }
    }
}

struct Row {
    name: &'static str,
    tally: Tally,
    lost: usize,
    stored_refused: usize,
}

async fn one_run(
    name: &'static str,
    seconds: u64,
    flooders: usize,
    others: usize,
    staff: usize,
) -> Row {
    let store = TestStore::memory();
    let live = LiveServer::start(&store).await;
    let practice = Api::practice_id();
    live.api.setup_open_practice(&practice).await;
    let run = Arc::new(Run {
        base: format!("http://{}", live.addr),
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .expect("HTTP client"),
        practice,
        tally: Mutex::new(Tally::default()),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for i in 0..others {
        tasks.push(tokio::spawn(client_chatter(
            run.clone(),
            format!("owner-{i}"),
        )));
    }
    for i in 0..staff {
        tasks.push(tokio::spawn(staff_chatter(
            run.clone(),
            format!("staff-{i}"),
        )));
    }
    for lane in 0..flooders {
        tasks.push(tokio::spawn(flooder(run.clone(), lane)));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    run.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("task");
    }
    // Everything accepted is stored once; nothing refused is stored.
    let (conversations, accepted, refused) = {
        let t = run.tally.lock().unwrap();
        (
            t.conversations.clone(),
            t.accepted.clone(),
            t.refused.clone(),
        )
    };
    let (mut lost, mut stored_refused) = (0, 0);
    for (client, id) in &conversations {
        let stored = stored_bodies(&run, id).await;
        lost += accepted[client]
            .iter()
            .filter(|b| !stored.contains(b))
            .count();
        stored_refused += refused
            .get(client)
            .into_iter()
            .flatten()
            .filter(|b| stored.contains(b))
            .count();
    }
    let mut tally = std::mem::take(&mut *run.tally.lock().unwrap());
    tally.others_ms.sort_by(f64::total_cmp);
    Row {
        name,
        tally,
        lost,
        stored_refused,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let seconds = arg("--seconds", 10) as u64;
    let flooders = arg("--flooders", 16);
    let others = arg("--others", 20);
    let staff = arg("--staff", 2);
    let json_out = std::env::args().skip_while(|a| a != "--json").nth(1);

    let quiet = one_run("quiet", seconds, 0, others, staff).await;
    let flood = one_run("flood", seconds, flooders, others, staff).await;

    println!(
        "| run | others' requests | p50 ms | p99 ms | max ms | others' 429 | others' errors | flooder requests | accepted | 429 | errors | lost | refused but stored |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut json_rows = Vec::new();
    for row in [&quiet, &flood] {
        let t = &row.tally;
        let (p50, p99) = (
            percentile(&t.others_ms, 0.5),
            percentile(&t.others_ms, 0.99),
        );
        let max = t.others_ms.last().copied().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {p50:.2} | {p99:.2} | {max:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.name,
            t.others_ms.len(),
            t.others_429,
            t.others_failed,
            t.flooder_requests,
            t.flooder_accepted,
            t.flooder_429,
            t.flooder_failed,
            row.lost,
            row.stored_refused
        );
        json_rows.push(json!({
            "run": row.name, "others_requests": t.others_ms.len(), "p50_ms": p50, "p99_ms": p99, "max_ms": max,
            "others_429": t.others_429, "others_errors": t.others_failed,
            "flooder_requests": t.flooder_requests, "flooder_accepted": t.flooder_accepted,
            "flooder_429": t.flooder_429, "flooder_errors": t.flooder_failed,
            "lost": row.lost, "refused_but_stored": row.stored_refused,
        }));
    }
    let ratio = percentile(&flood.tally.others_ms, 0.99) / percentile(&quiet.tally.others_ms, 0.99);
    println!();
    println!(
        "{seconds} s per run, {others} other clients, {staff} staff, {flooders} flooding connections of one client; \
         the others' p99 under the flood is {ratio:.2}x the quiet one (budget 2x)."
    );
    if let Some(path) = json_out {
        let doc = json!({"seconds": seconds, "flooders": flooders, "others": others, "staff": staff,
                         "p99_ratio": ratio, "runs": json_rows});
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).expect("write --json");
    }
    // The properties, whatever the machine: the limit held, nobody else was refused, nothing was lost.
    let held = flood.tally.flooder_accepted <= 30 * (seconds as usize).div_ceil(60);
    let clean = [&quiet, &flood]
        .iter()
        .all(|r| r.tally.others_429 == 0 && r.lost == 0 && r.stored_refused == 0);
    if !(held && clean) {
        eprintln!("flood: the limit did not hold, someone else was refused, or an accepted message was lost");
        std::process::exit(1);
    }
}
