//! `local-start`: how long the local server takes to start on a data directory that holds many
//! conversations (BENCHMARKS.md, the durable store):
//!
//! ```sh
//! local-start --bin target/release/local [--conversations 10000] [--starts 10] [--dir DIR]
//! ```
//!
//! 1. Seeds the conversations through the server itself: `POST /inbound`, texts from distinct numbers (each
//!    a new conversation, its first message and the department's count in one commit), from 4 clients at
//!    once; the seeding rate is the durable store's write rate with a few writers waiting on each other.
//! 2. `--starts` times: stops the server (SIGTERM), starts it again, and measures from the spawn to its
//!    first answer (`GET /config.json`).
//! 3. Once more after a `kill -9` instead of a clean stop: the engine then checks the file before it opens.
//!
//! Prints a markdown table. The directory is a fresh temporary one unless `--dir` is given (then kept).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::identity::Role;
use reqwest::Method;
use serde_json::json;
use vetchat_tests::local_server::{Client, LocalServer};

const PRACTICE: &str = "prc_start";
const CLIENTS: usize = 4;

struct Args {
    bin: PathBuf,
    conversations: usize,
    starts: usize,
    dir: Option<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        bin: PathBuf::new(),
        conversations: 10_000,
        starts: 10,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--bin" => a.bin = PathBuf::from(value()),
            "--conversations" => a.conversations = value().parse().expect("--conversations N"),
            "--starts" => a.starts = value().parse().expect("--starts N"),
            "--dir" => a.dir = Some(PathBuf::from(value())),
            "-h" | "--help" => {
                println!(
                    "local-start --bin LOCAL [--conversations 10000] [--starts 10] [--dir DIR]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        a.bin.is_file(),
        "--bin <the local server binary> is required"
    );
    a
}

/// Spawns the server on `dir` and waits for its first answer: the server and the time that took.
async fn start(bin: &Path, dir: &Path, log: &Path) -> (LocalServer, Duration) {
    let started = Instant::now();
    let mut server = LocalServer::spawn_binary(
        bin,
        &["serve", "--data-dir", dir.to_str().expect("a UTF-8 path")],
        log,
    );
    server.wait_ready().await;
    (server, started.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().join("data"));
    let log = tmp.path().join("server.log");

    let (server, _) = start(&a.bin, &dir, &log).await;
    let c = server.client(PRACTICE);
    let r = c
        .admin(
            Method::PUT,
            "/practice",
            Some(
                json!({"name": "Start Vets", "timezone": "America/New_York", "country": "US",
                        "sms_numbers": ["+12015550100"]}),
            ),
        )
        .await;
    assert!(
        r.status == 201 || r.status == 200,
        "PUT /practice: {}",
        r.body
    );

    let next = Arc::new(AtomicUsize::new(0));
    let seeding = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (c, next, total) = (c.clone(), next.clone(), a.conversations);
            tokio::spawn(async move { seed(c, next, total).await })
        })
        .collect();
    for client in clients {
        client.await.expect("a seeding client");
    }
    let seeded = seeding.elapsed();
    let open = c.staff_get("/departments").await[0]["open_conversations"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        open >= a.conversations as u64,
        "{open} open conversations after seeding {}",
        a.conversations
    );

    let mut server = server;
    let mut clean = Vec::with_capacity(a.starts);
    for _ in 0..a.starts {
        assert_eq!(server.stop(), 0, "a clean stop");
        let (s, took) = start(&a.bin, &dir, &log).await;
        clean.push(took);
        server = s;
    }
    server.kill_9();
    let (server, after_kill) = start(&a.bin, &dir, &log).await;
    // Still all there after the crash.
    let c = server.client(PRACTICE);
    let open_after = c.staff_get("/departments").await[0]["open_conversations"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(open_after, open, "the conversations survive the kill");
    server.stop();

    clean.sort();
    let size = std::fs::metadata(dir.join(adapters::store::embedded::DATA_FILE))
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "| conversations stored | data file | start after a clean stop (median of {}) | slowest | start after kill -9 |",
        a.starts
    );
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.1} MiB | {} | {} | {} |",
        open,
        size as f64 / (1024.0 * 1024.0),
        clean
            .get(clean.len() / 2)
            .map(|d| ms(*d))
            .unwrap_or_default(),
        clean.last().map(|d| ms(*d)).unwrap_or_default(),
        ms(after_kill)
    );
    println!();
    println!(
        "Seeding: {} texts (each a new conversation) in {:.1} s, {:.0}/s from {CLIENTS} clients, each answered after its commit is on disk.",
        a.conversations,
        seeded.as_secs_f64(),
        a.conversations as f64 / seeded.as_secs_f64()
    );
}

/// Texts from distinct numbers until `total` were sent by all clients together.
async fn seed(c: Client, next: Arc<AtomicUsize>, total: usize) {
    let gateway = c.token(Role::Integration, "gateway");
    loop {
        let n = next.fetch_add(1, Ordering::SeqCst);
        if n >= total {
            return;
        }
        let from = format!("+1202{:07}", 2_000_000 + n);
        let a = c
            .send(
                Method::POST,
                "/inbound",
                Some(gateway.clone()),
                Some(json!({"channel": "sms", "from": from, "body": "Is Rex ready for pickup?"})),
            )
            .await
            .unwrap_or_else(|e| panic!("seeding: {e}"));
        assert_eq!(a.status, 201, "seeding: {}", a.body);
    }
}
