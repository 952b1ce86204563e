//! Push latency of the live updates, locally: message stored → frame received, over `connections` open
//! WebSocket connections of one practice's staff (each gets every message), on the local server with the
//! embedded store (the same fanout code as on AWS, posting to local sockets). For each of `messages` staff
//! replies, one sample per connection: the instant the frame was read minus the message's `at` (taken just
//! before the store's write). Prints p50/p99/max, a Markdown table, and `--json <file>`.
//!
//!   push-latency [--connections 100] [--messages 200] [--json out.json]

use std::time::Duration;

use domain::identity::Role;
use futures_util::StreamExt;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_bench::{arg, percentile};
use vetchat_tests::api::Api;
use vetchat_tests::live::LiveServer;
use vetchat_tests::TestStore;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let connections = arg("--connections", 100);
    let messages = arg("--messages", 200);
    let json_out = std::env::args().skip_while(|a| a != "--json").nth(1);
    let store = TestStore::memory();
    let live = LiveServer::start(&store).await;
    let p = Api::practice_id();
    live.api.setup_open_practice(&p).await;
    let r = live
        .api
        .call_as(
            &p,
            Role::Client,
            "owner-bench",
            Method::POST,
            "/inbound",
            Some(json!({"channel": "app", "body": "Benchmark chat"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let conversation = r.body["conversation_id"].as_str().unwrap().to_owned();

    let mut readers = Vec::new();
    for i in 0..connections {
        let socket = live
            .connect(&p, Role::Staff, &format!("staff-{i}"), None)
            .await;
        readers.push(tokio::spawn(async move {
            let mut socket = socket;
            let mut samples = Vec::with_capacity(messages);
            while samples.len() < messages {
                let frame = tokio::time::timeout(Duration::from_secs(30), socket.next())
                    .await
                    .expect("a frame within 30 s")
                    .expect("open")
                    .expect("a frame");
                let received = chrono::Utc::now();
                let tokio_tungstenite::tungstenite::Message::Text(text) = frame else {
                    continue;
                };
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                if frame["type"] != "message.created" {
                    continue;
                }
                let at: chrono::DateTime<chrono::Utc> =
                    serde_json::from_value(frame["message"]["at"].clone()).expect("an instant");
                samples
                    .push((received - at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0);
            }
            samples
        }));
    }
    let started = std::time::Instant::now();
    for n in 0..messages {
        let r = live
            .api
            .call_as(
                &p,
                Role::Staff,
                "staff-bench",
                Method::POST,
                &format!("/conversations/{conversation}/messages"),
                Some(json!({"body": format!("reply {n}")})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let mut samples: Vec<f64> = Vec::new();
    for reader in readers {
        samples.extend(reader.await.expect("a reader"));
    }
    let wall = started.elapsed();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p99, max) = (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
    );
    println!("| connections | messages | frames | p50 | p99 | max | wall |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {connections} | {messages} | {} | {p50:.2} ms | {p99:.2} ms | {max:.2} ms | {:.2} s |",
        samples.len(),
        wall.as_secs_f64()
    );
    println!();
    if let Some(path) = json_out {
        let report = json!({"connections": connections, "messages": messages, "frames": samples.len(),
                            "p50_ms": p50, "p99_ms": p99, "max_ms": max, "wall_s": wall.as_secs_f64()});
        std::fs::write(&path, serde_json::to_vec_pretty(&report).unwrap())
            .expect("write the JSON report");
    }
}
