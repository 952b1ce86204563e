//! Reply latency of texts, locally: a staff reply stored → its `SendTextMessage` call received by End User
//! Messaging. The local server (the same change feed and sender code as the local `cargo run`, the
//! stream-triggered sender's protocol: claim, one call, record) sends through the service's own End User
//! Messaging SDK client to the in-repo fake of the service (`vetchat_tests::fake_texting`, over loopback
//! HTTP). For each of `replies` staff replies into `conversations` texted conversations (sent one after
//! another, each answered 201 before the next), one sample: the instant the fake read the request minus the
//! message's `at` (taken just before the store's write). Prints p50/p99/max per store, a Markdown table, and
//! `--json <file>`.
//!
//!   reply-latency [--replies 200] [--conversations 10] [--json out.json]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use vetchat_bench::{arg, percentile};
use vetchat_tests::api::Api;
use vetchat_tests::fake_texting::FakeTexting;
use vetchat_tests::live::LiveServer;
use vetchat_tests::TestStore;

struct Run {
    store: &'static str,
    samples: Vec<f64>,
    wall: Duration,
}

async fn run(
    store_name: &'static str,
    store: TestStore,
    replies: usize,
    conversations: usize,
) -> Run {
    let fake = FakeTexting::start().await;
    let live =
        LiveServer::start_sending_with(&store, Some(Arc::new(fake.aws_sender().await))).await;
    let mut texted = Vec::new();
    for c in 0..conversations {
        // A practice per conversation: each has its own number, as practices do.
        let p = Api::practice_id();
        let id = live
            .api
            .texted_conversation(
                &p,
                &format!("+1201555{:04}", 1000 + c),
                &format!("+1201556{:04}", c),
            )
            .await;
        texted.push((p, id));
    }
    let mut stored_at = HashMap::new();
    let started = std::time::Instant::now();
    for n in 0..replies {
        let (p, id) = &texted[n % conversations];
        let body = format!("Reply {n}");
        let r = live.api.staff_reply(p, id, &body).await;
        assert_eq!(r.status, http::StatusCode::CREATED, "{}", r.body);
        let at: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(r.body["at"].clone()).expect("an instant");
        stored_at.insert(body, at);
    }
    // Every reply reaches the fake (the sender works behind the answers).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while fake.sms().len() < replies {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {replies} texts reached End User Messaging in 60 s",
            fake.sms().len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = started.elapsed();
    let sent = fake.sms();
    assert_eq!(sent.len(), replies, "each reply sent once");
    let mut samples: Vec<f64> = sent
        .iter()
        .map(|s| {
            let at = stored_at[s.body.as_deref().expect("a body")];
            (s.received_at - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
        })
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Run {
        store: store_name,
        samples,
        wall,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let replies = arg("--replies", 200);
    let conversations = arg("--conversations", 10).max(1);
    let json_out = std::env::args().skip_while(|a| a != "--json").nth(1);
    let runs = vec![
        run(
            "embedded, in memory",
            TestStore::memory(),
            replies,
            conversations,
        )
        .await,
        run(
            "embedded, on a file",
            TestStore::file(),
            replies,
            conversations,
        )
        .await,
    ];
    println!("| store | replies | p50 | p99 | max | wall |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut report = Vec::new();
    for r in &runs {
        let (p50, p99, max) = (
            percentile(&r.samples, 0.5),
            percentile(&r.samples, 0.99),
            r.samples[r.samples.len() - 1],
        );
        println!(
            "| {} | {} | {p50:.2} ms | {p99:.2} ms | {max:.2} ms | {:.2} s |",
            r.store,
            r.samples.len(),
            r.wall.as_secs_f64()
        );
        report.push(
            json!({"store": r.store, "replies": r.samples.len(), "p50_ms": p50,
                           "p99_ms": p99, "max_ms": max, "wall_s": r.wall.as_secs_f64()}),
        );
    }
    println!();
    if let Some(path) = json_out {
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(&Value::Array(report)).unwrap(),
        )
        .expect("write the JSON report");
    }
}
