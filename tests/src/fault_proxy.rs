//! A DynamoDB endpoint that fails on purpose: an HTTP proxy on 127.0.0.1 in front of DynamoDB Local that,
//! on a schedule the test sets, answers the errors DynamoDB answers under trouble (throttling, 500), holds a
//! request past the SDK's attempt timeout without forwarding it, or forwards it (DynamoDB applies the write)
//! and then holds the answer back past the attempt timeout: the response is lost, the write is not.
//! Everything else is forwarded untouched.
//!
//! ```no_run
//! # async fn f() {
//! use vetchat_tests::fault_proxy::{Fault, FaultProxy};
//! let proxy = FaultProxy::start().await; // in front of $AWS_ENDPOINT_URL_DYNAMODB
//! proxy.inject(Some("TransactWriteItems"), Fault::Throttling, 2); // the next two transactions are throttled
//! # }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

/// What the proxy does to one request instead of (or after) forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    /// 400 `ThrottlingException`, as DynamoDB answers when a table or account is throttled.
    Throttling,
    /// 400 `ProvisionedThroughputExceededException`, as DynamoDB answers a hot partition.
    ProvisionedThroughputExceeded,
    /// 500 `InternalServerError`.
    InternalServerError,
    /// Holds the request past the attempt timeout and never forwards it: nothing is applied.
    Stall,
    /// Forwards the request (DynamoDB applies it), then holds the answer past the attempt timeout: the
    /// caller never learns that its write went through.
    DropResponse,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Throttling,
        Fault::ProvisionedThroughputExceeded,
        Fault::InternalServerError,
        Fault::Stall,
        Fault::DropResponse,
    ];

    /// The DynamoDB error answer (status, `__type`, message), for the faults that are one.
    fn error(self) -> Option<(StatusCode, &'static str, &'static str)> {
        match self {
            Fault::Throttling => Some((
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            )),
            Fault::ProvisionedThroughputExceeded => Some((
                StatusCode::BAD_REQUEST,
                "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            )),
            Fault::InternalServerError => Some((
                StatusCode::INTERNAL_SERVER_ERROR,
                "com.amazonaws.dynamodb.v20120810#InternalServerError",
                "Internal server error",
            )),
            Fault::Stall | Fault::DropResponse => None,
        }
    }
}

/// One scheduled fault: for requests of `operation` (any when `None`), `remaining` more times (forever
/// when `None`).
#[derive(Debug, Clone)]
struct Rule {
    operation: Option<String>,
    fault: Fault,
    /// Matching requests to let through first.
    skip: usize,
    remaining: Option<usize>,
}

/// One request the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// The DynamoDB operation (`X-Amz-Target` after the dot), e.g. `TransactWriteItems`.
    pub operation: String,
    /// The fault injected, or `None` when it was forwarded untouched.
    pub fault: Option<Fault>,
    /// The `ClientRequestToken` of a `TransactWriteItems`, if it carried one.
    pub client_request_token: Option<String>,
}

#[derive(Default)]
struct Plan {
    rules: Vec<Rule>,
    seen: Vec<Seen>,
}

#[derive(Clone)]
struct Shared {
    plan: Arc<Mutex<Plan>>,
    upstream: String,
    client: reqwest::Client,
    hold: Duration,
}

/// The proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FaultProxy {
    /// A proxy in front of `$AWS_ENDPOINT_URL_DYNAMODB` (DynamoDB Local), holding stalled requests and
    /// dropped answers for twice the SDK's attempt timeout.
    pub async fn start() -> FaultProxy {
        let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB")
            .ok()
            .filter(|v| !v.is_empty())
            .expect("DynamoDB Local is not running: run scripts/test (or --services-only)");
        FaultProxy::start_in_front_of(&upstream, adapters::aws::ATTEMPT_TIMEOUT * 2).await
    }

    /// A proxy in front of `upstream`, holding stalled requests and dropped answers for `hold`.
    pub async fn start_in_front_of(upstream: &str, hold: Duration) -> FaultProxy {
        let shared = Shared {
            plan: Arc::default(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            hold,
        };
        // Loopback only: nothing outside this machine can reach it.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy on 127.0.0.1");
        let addr = listener.local_addr().expect("the proxy's address");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy {
            addr,
            shared,
            server,
        }
    }

    /// The endpoint URL to give the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next `times` requests of `operation` (any operation when `None`) get `fault`.
    pub fn inject(&self, operation: Option<&str>, fault: Fault, times: usize) {
        self.plan().rules.push(Rule {
            operation: operation.map(str::to_owned),
            fault,
            skip: 0,
            remaining: Some(times),
        });
    }

    /// The `n`th request of `operation` from now (1 = the next one) gets `fault`, once; the ones before it
    /// pass.
    pub fn inject_nth(&self, operation: Option<&str>, n: usize, fault: Fault) {
        self.plan().rules.push(Rule {
            operation: operation.map(str::to_owned),
            fault,
            skip: n.saturating_sub(1),
            remaining: Some(1),
        });
    }

    /// Every request of `operation` (any when `None`) gets `fault` until [`FaultProxy::heal`].
    pub fn inject_always(&self, operation: Option<&str>, fault: Fault) {
        self.plan().rules.push(Rule {
            operation: operation.map(str::to_owned),
            fault,
            skip: 0,
            remaining: None,
        });
    }

    /// No more faults: everything is forwarded.
    pub fn heal(&self) {
        self.plan().rules.clear();
    }

    /// Every request seen so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.plan().seen.clone()
    }

    /// How many faults of each kind were injected so far.
    pub fn injected(&self) -> BTreeMap<Fault, usize> {
        let mut out = BTreeMap::new();
        for s in self.plan().seen.iter() {
            if let Some(f) = s.fault {
                *out.entry(f).or_insert(0) += 1;
            }
        }
        out
    }

    /// Faults injected so far, of every kind.
    pub fn injected_total(&self) -> usize {
        self.plan()
            .seen
            .iter()
            .filter(|s| s.fault.is_some())
            .count()
    }

    /// Forgets what was seen (the schedule stays).
    pub fn forget(&self) {
        self.plan().seen.clear();
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.shared.plan.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The fault for a request of `operation`, if one is scheduled: the first matching rule with uses left.
fn take_fault(plan: &mut Plan, operation: &str) -> Option<Fault> {
    let rule = plan.rules.iter_mut().find(|r| {
        r.operation.as_deref().is_none_or(|o| o == operation) && r.remaining != Some(0)
    })?;
    if rule.skip > 0 {
        rule.skip -= 1;
        return None;
    }
    if let Some(n) = rule.remaining.as_mut() {
        *n -= 1;
    }
    Some(rule.fault)
}

async fn handle(
    State(shared): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("")
        .to_owned();
    let client_request_token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["ClientRequestToken"].as_str().map(str::to_owned));
    let fault = {
        let mut plan = shared.plan.lock().unwrap_or_else(|e| e.into_inner());
        let fault = take_fault(&mut plan, &operation);
        plan.seen.push(Seen {
            operation,
            fault,
            client_request_token,
        });
        fault
    };
    if let Some((status, kind, message)) = fault.and_then(Fault::error) {
        let body = serde_json::json!({"__type": kind, "message": message}).to_string();
        return Response::builder()
            .status(status)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amzn-requestid", ulid::Ulid::new().to_string())
            .body(Body::from(body))
            .expect("an error response");
    }
    if fault == Some(Fault::Stall) {
        tokio::time::sleep(shared.hold).await;
        return Response::builder()
            .status(StatusCode::GATEWAY_TIMEOUT)
            .body(Body::empty())
            .expect("a response");
    }
    let response = forward(&shared, method, &uri, &headers, body).await;
    if fault == Some(Fault::DropResponse) {
        // Applied upstream; the caller gives up waiting for the answer.
        tokio::time::sleep(shared.hold).await;
    }
    response
}

async fn forward(
    shared: &Shared,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in headers {
        if !matches!(
            name.as_str(),
            "host" | "content-length" | "connection" | "transfer-encoding"
        ) {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(upstream) => {
            let status = upstream.status();
            let mut out = Response::builder().status(status);
            for (name, value) in upstream.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "connection" | "transfer-encoding"
                ) {
                    out = out.header(name, value);
                }
            }
            let bytes = upstream.bytes().await.unwrap_or_default();
            out.body(Body::from(bytes)).expect("a forwarded response")
        }
        Err(e) => Response::builder()
            .status(StatusCode::BAD_GATEWAY)
            .header(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )
            .body(Body::from(format!("fault proxy: upstream failed: {e}")))
            .expect("a response"),
    }
}
