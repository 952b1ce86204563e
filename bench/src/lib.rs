//! Helpers shared by the benchmark binaries (`lambda-bench`, `ddb-calls`): an in-process client of the local
//! server's router (the handlers every function runs) for seeding and counting, `/proc` readings, percentiles,
//! markdown tables, and an SDK interceptor that asks DynamoDB for the capacity each request consumed.
//!
//! Nothing here is a test: `scripts/bench` runs the binaries and prints their tables (BENCHMARKS.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use adapters::senders::RecordingSender;
use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::body::SdkBody;
use axum::body::Body;
use axum::Router;
use domain::identity::Role;
use domain::store::Store;
use http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// The secret of the in-process local router's tokens (never leaves the process).
pub const SECRET: &str = "bench-secret";
pub const DASHBOARD: &str = "https://dashboard.example/app";

// ---------------------------------------------------------------------------------------------------------
// In-process API (the local server's router: every function's handlers, local token verification)
// ---------------------------------------------------------------------------------------------------------

/// The local server's router on a given store, called without a socket.
#[derive(Clone)]
pub struct Api {
    app: Router,
    pub store: Arc<dyn Store>,
    pub recorder: RecordingSender,
}

impl Api {
    pub fn new(store: Arc<dyn Store>) -> Api {
        let services = local::LocalServices::recording(DASHBOARD, "ws://127.0.0.1:3000/ws");
        let recorder = services.recorder.clone();
        Api {
            app: local::app(store.clone(), SECRET, services),
            store,
            recorder,
        }
    }

    /// A token of `practice` for `role`, with `sub`.
    pub fn token(practice: &str, role: Role, sub: &str) -> String {
        local::sign_token(
            SECRET,
            practice,
            role,
            sub,
            chrono::Utc::now().timestamp(),
            24 * 3600,
        )
    }

    /// One request; the body is parsed as JSON (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.request(method, path, token, &[], body).await
    }

    /// [`Api::call`] with a token, extra headers and a body.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> (StatusCode, Value) {
        self.request(method, path, Some(token), headers, Some(body))
            .await
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("a valid request");
        let response = self
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .expect("a readable body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, body)
    }

    /// [`Api::call`] that must answer `expected`; panics with the body otherwise.
    pub async fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> Value {
        let (status, reply) = self.call(method.clone(), path, Some(token), body).await;
        assert_eq!(status, expected, "{method} {path}: {reply}");
        reply
    }
}

// ---------------------------------------------------------------------------------------------------------
// DynamoDB Local
// ---------------------------------------------------------------------------------------------------------

/// A DynamoDB client configured from the environment (`AWS_ENDPOINT_URL_DYNAMODB` etc.), with `extra`
/// interceptors.
pub async fn dynamo_client(extra: Option<CapacityProbe>) -> aws_sdk_dynamodb::Client {
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none_or(|v| v.is_empty()) {
        eprintln!(
            "AWS_ENDPOINT_URL_DYNAMODB is not set: run scripts/bench (it starts DynamoDB Local), or \
             `scripts/test --services-only` and export what it prints"
        );
        std::process::exit(2);
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let mut config = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(probe) = extra {
        config = config.interceptor(probe);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// A fresh table (`ensure_table`) with a unique name.
pub async fn fresh_table(client: &aws_sdk_dynamodb::Client) -> String {
    let table = format!("bench_{}", ulid::Ulid::new().to_string().to_lowercase());
    adapters::store::ensure_table(client, &table)
        .await
        .expect("create the benchmark table");
    // DynamoDB Local keeps stream records in SQLite and reads them on every request to the table
    // (`getTableInfo` → `getStreamDescription`, seen with jstack), so a table with a stream slows down with
    // each write: seeding 10,000 conversations stalled at 100% CPU. Nothing here reads the stream (the
    // dispatcher's stream events are made by the harness), so benchmark tables go without one.
    client
        .update_table()
        .table_name(&table)
        .stream_specification(
            aws_sdk_dynamodb::types::StreamSpecification::builder()
                .stream_enabled(false)
                .build()
                .expect("a stream specification"),
        )
        .send()
        .await
        .expect("turn the benchmark table's stream off");
    table
}

/// Consumed capacity, as DynamoDB reports it with `ReturnConsumedCapacity=INDEXES`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capacity {
    /// Total capacity units (table and indexes).
    pub units: f64,
    pub read: f64,
    pub write: f64,
    /// The units by where they were consumed: `table`, or an index's name (`GSI1`, `GSI2`, `DUE`), for the
    /// scale model's per-index rates and write amplification (scripts/scale-model).
    pub by_target: std::collections::BTreeMap<String, f64>,
    /// Responses that carried a `ConsumedCapacity`.
    pub reported: u64,
}

/// An interceptor that adds `"ReturnConsumedCapacity": "INDEXES"` to every data-plane request and adds up
/// the `ConsumedCapacity` of the responses. For measurements only: the store never asks for it.
#[derive(Debug, Clone, Default)]
pub struct CapacityProbe {
    total: Arc<Mutex<Capacity>>,
}

/// The read operations among them (their capacity is read units).
const READ_OPERATIONS: &[&str] = &[
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "TransactGetItems",
];

/// The operations that take `ReturnConsumedCapacity`.
const CAPACITY_OPERATIONS: &[&str] = &[
    "GetItem",
    "BatchGetItem",
    "Query",
    "Scan",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactGetItems",
    "TransactWriteItems",
];

impl CapacityProbe {
    pub fn take(&self) -> Capacity {
        std::mem::take(&mut *self.total.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn add(&self, operation: &str, response: &Value) {
        // DynamoDB Local reports only `CapacityUnits` (no read/write split): those are read units for the
        // read operations and write units for the others.
        let reads = READ_OPERATIONS.contains(&operation);
        let one = |c: &Value| {
            let units = c["CapacityUnits"].as_f64().unwrap_or(0.0);
            let split = |field: &str, fallback: bool| {
                c[field]
                    .as_f64()
                    .unwrap_or(if fallback { units } else { 0.0 })
            };
            (
                units,
                split("ReadCapacityUnits", reads),
                split("WriteCapacityUnits", !reads),
            )
        };
        let consumed: Vec<&Value> = match &response["ConsumedCapacity"] {
            Value::Array(list) => list.iter().collect(),
            c @ Value::Object(_) => vec![c],
            _ => return,
        };
        let all: Vec<(f64, f64, f64)> = consumed.iter().map(|c| one(c)).collect();
        let mut total = self.total.lock().unwrap_or_else(PoisonError::into_inner);
        for c in &consumed {
            let units = |v: &Value| v["CapacityUnits"].as_f64().unwrap_or(0.0);
            *total.by_target.entry("table".into()).or_default() += units(&c["Table"]);
            for indexes in ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"] {
                if let Some(map) = c[indexes].as_object() {
                    for (name, v) in map {
                        *total.by_target.entry(name.clone()).or_default() += units(v);
                    }
                }
            }
        }
        for (units, read, write) in all {
            total.units += units;
            total.read += read;
            total.write += write;
        }
        total.reported += 1;
    }
}

fn operation(cfg: &ConfigBag) -> &str {
    cfg.load::<Metadata>().map(Metadata::name).unwrap_or("")
}

impl Intercept for CapacityProbe {
    fn name(&self) -> &'static str {
        "CapacityProbe"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if !CAPACITY_OPERATIONS.contains(&operation(cfg)) {
            return Ok(());
        }
        let request = context.request_mut();
        let Some(bytes) = request.body().bytes() else {
            return Ok(());
        };
        let mut json: Value = serde_json::from_slice(bytes)?;
        let Some(object) = json.as_object_mut() else {
            return Ok(());
        };
        object
            .entry("ReturnConsumedCapacity")
            .or_insert_with(|| Value::String("INDEXES".into()));
        let body = serde_json::to_vec(&json)?;
        request
            .headers_mut()
            .insert("content-length", body.len().to_string());
        *request.body_mut() = SdkBody::from(body);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        if !CAPACITY_OPERATIONS.contains(&op) {
            return Ok(());
        }
        if let Some(bytes) = context.response().body().bytes() {
            if let Ok(json) = serde_json::from_slice::<Value>(bytes) {
                self.add(op, &json);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------
// Processes, statistics, tables
// ---------------------------------------------------------------------------------------------------------

/// `VmRSS` and `VmHWM` of a process, KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The `q` quantile (0..=1) of `samples` by nearest rank; `Duration::ZERO` when empty.
pub fn quantile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n", header.join(" | "));
    out.push_str(&format!(
        "|{}\n",
        header
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
            .collect::<String>()
    ));
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// The workspace root (bench/ is one level down).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ is in the workspace")
        .to_owned()
}

/// `events/<dir>/<file>` as JSON.
pub fn read_event(dir: &str, file: &str) -> Value {
    let path = workspace_root().join("events").join(dir).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "read {} (the benchmark's sample event): {e}",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Counts by operation as `Query 1, TransactWriteItems 1`.
pub fn counts_text(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(op, n)| format!("{op} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The number after `name` on the command line (`--seconds 10`), else `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

/// The `p` quantile (0 to 1) of sorted samples, nearest rank; NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
