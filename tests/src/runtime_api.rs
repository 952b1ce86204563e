//! A small emulator of the Lambda Runtime API, to run a function's real binary as Lambda runs it.
//!
//! [`RuntimeApi::start`] listens on `127.0.0.1` (random port) and serves the four endpoints a runtime uses:
//! `GET /2018-06-01/runtime/invocation/next` (a long poll that hands out the next queued event),
//! `POST .../invocation/{id}/response`, `POST .../invocation/{id}/error` and `POST .../init/error`.
//! [`RuntimeApi::spawn_function`] starts the binary with the environment Lambda gives it and returns a
//! [`FunctionProcess`]: one API per process, as one Lambda execution environment has one Runtime API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use vetchat_tests::runtime_api::{aws_env_from_current, RuntimeApi};
//! let mut env = aws_env_from_current();
//! env.push(("DYNAMODB_TABLE".into(), "my_table".into()));
//! let mut function = RuntimeApi::start().await?.spawn_function("target/debug/config-api".as_ref(), env)?;
//! let reply = function.invoke(serde_json::json!({"version": "2.0"})).await?;
//! println!("cold start {:?}, answer {reply}", function.cold_start());
//! # Ok(()) }
//! ```
//!
//! For measurements: [`FunctionProcess::cold_start`] is exec → first `next` poll (the instant the runtime is
//! ready for work) and [`FunctionProcess::peak_rss_kib`] the process's peak resident set (Linux).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};

/// How long [`FunctionProcess::invoke`] waits for an answer (the event's `Lambda-Runtime-Deadline-Ms` says
/// the same). Longer than the template's 10 s so a debug build on a busy CI machine does not flake.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of the function's stdout/stderr kept for error messages.
const LOG_LINES_KEPT: usize = 400;

/// Why an invocation produced no response.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The function posted to `/invocation/{id}/error` (e.g. an event it cannot deserialize).
    #[error("the function reported an error: {error_type}: {error_message}")]
    Function {
        error_type: String,
        error_message: String,
    },
    /// No response or error within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The process ended before answering; `init_error` is what it posted to `/init/error`, if anything.
    #[error("the function exited ({status}) before answering; init error: {init_error:?}")]
    Exited {
        status: ExitStatus,
        init_error: Option<Value>,
    },
    /// The response body is not JSON.
    #[error("the response is not JSON: {0}")]
    NotJson(String),
}

/// What the runtime posted for one invocation.
enum Outcome {
    Response(Bytes),
    Error { error_type: String, body: Bytes },
}

struct Queued {
    request_id: String,
    event: Vec<u8>,
    deadline_ms: u128,
}

/// State shared by the HTTP handlers and the [`FunctionProcess`].
struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Queued>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Set by the first `next` poll.
    first_poll: watch::Sender<Option<Instant>>,
    init_error: Mutex<Option<Value>>,
    function_arn: Mutex<String>,
    /// Send the same `Lambda-Runtime-Trace-Id` every time instead of a new one per invocation, as Lambda
    /// does (see [`RuntimeApi::constant_trace_id`]).
    constant_trace_id: std::sync::atomic::AtomicBool,
}

/// The Runtime API server. Dropping it (or the [`FunctionProcess`] that took it) stops the server.
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    queue: mpsc::UnboundedSender<Queued>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on `127.0.0.1:<random port>` and serves until dropped.
    pub async fn start() -> std::io::Result<RuntimeApi> {
        let (queue, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: tokio::sync::Mutex::new(rx),
            in_flight: Mutex::new(HashMap::new()),
            first_poll: watch::Sender::new(None),
            init_error: Mutex::new(None),
            function_arn: Mutex::new(String::new()),
            constant_trace_id: std::sync::atomic::AtomicBool::new(false),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(RuntimeApi {
            addr,
            shared,
            queue,
            server,
        })
    }

    /// From now on every invocation carries the same trace id. A diagnostic for memory measurements:
    /// `lambda_runtime` copies each invocation's trace id into the environment (`_X_AMZN_TRACE_ID`), and
    /// glibc's `setenv` never frees a value it replaced, so unique ids grow any function by ~144 bytes per
    /// invocation; with one id, what still grows is the function's own.
    pub fn constant_trace_id(self) -> Self {
        self.shared
            .constant_trace_id
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts `binary` with a Lambda-like environment: nothing inherited, then `AWS_LAMBDA_RUNTIME_API`,
    /// `AWS_LAMBDA_FUNCTION_NAME` (the binary's file name), `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`,
    /// `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`, the log group and stream names, `TZ=:UTC`, then `env` (which
    /// may override any of these). stdout and stderr are kept ([`FunctionProcess::logs`]); the process is
    /// killed when the [`FunctionProcess`] is dropped.
    pub fn spawn_function(
        self,
        binary: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> std::io::Result<FunctionProcess> {
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".to_owned());
        let mut vars: Vec<(String, String)> = vec![
            ("AWS_LAMBDA_RUNTIME_API".into(), self.addr.to_string()),
            ("AWS_LAMBDA_FUNCTION_NAME".into(), name.clone()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "128".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME".into(),
                format!("/aws/lambda/{name}"),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME".into(),
                format!("2026/01/01/[$LATEST]{}", ulid::Ulid::new().0 as u64),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
            ("TZ".into(), ":UTC".into()),
        ];
        vars.extend(env);
        let function_name = vars
            .iter()
            .rev()
            .find(|(k, _)| k == "AWS_LAMBDA_FUNCTION_NAME")
            .map_or(name, |(_, v)| v.clone());
        *self.shared.function_arn.lock().unwrap() =
            format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}");

        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(vars)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawned_at = Instant::now();
        let mut child = command.spawn()?;
        let logs = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(out) = child.stdout.take() {
            keep_lines(out, logs.clone());
        }
        if let Some(err) = child.stderr.take() {
            keep_lines(err, logs.clone());
        }
        Ok(FunctionProcess {
            api: self,
            child,
            spawned_at,
            logs,
        })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Keeps the last lines of a child's output (a thread per stream: tokio's `process` feature is not in the
/// workspace's build, and adding it would rebuild every crate that uses tokio).
fn keep_lines(stream: impl Read + Send + 'static, logs: Arc<Mutex<VecDeque<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut logs = logs.lock().unwrap();
            if logs.len() == LOG_LINES_KEPT {
                logs.pop_front();
            }
            logs.push_back(line);
        }
    });
}

/// A function binary running against its own [`RuntimeApi`].
pub struct FunctionProcess {
    api: RuntimeApi,
    child: Child,
    spawned_at: Instant,
    logs: Arc<Mutex<VecDeque<String>>>,
}

impl FunctionProcess {
    /// Sends `event` and waits (up to [`DEFAULT_TIMEOUT`]) for what the function posts back.
    pub async fn invoke(&mut self, event: Value) -> Result<Value, InvocationError> {
        self.invoke_with_timeout(event, DEFAULT_TIMEOUT).await
    }

    /// One invocation, as Lambda makes it: queued for the next `next` poll (so the first one also waits for
    /// the cold start), answered by `/response` or `/error`; the process ending first is an error too.
    pub async fn invoke_with_timeout(
        &mut self,
        event: Value,
        timeout: Duration,
    ) -> Result<Value, InvocationError> {
        let request_id = uuid_like(ulid::Ulid::new().0);
        let (tx, rx) = oneshot::channel();
        self.api
            .shared
            .in_flight
            .lock()
            .unwrap()
            .insert(request_id.clone(), tx);
        let deadline_ms = (SystemTime::now() + timeout)
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis();
        let queued = Queued {
            request_id: request_id.clone(),
            event: serde_json::to_vec(&event).expect("a Value serializes"),
            deadline_ms,
        };
        self.api
            .queue
            .send(queued)
            .expect("the queue lives in self");

        let outcome = tokio::select! {
            outcome = rx => outcome.ok(),
            _ = tokio::time::sleep(timeout) => None,
            status = exited(&mut self.child) => {
                // Give an /init/error posted just before the exit a moment to land.
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.api.shared.in_flight.lock().unwrap().remove(&request_id);
                return Err(InvocationError::Exited { status, init_error: self.init_error() });
            }
        };
        self.api
            .shared
            .in_flight
            .lock()
            .unwrap()
            .remove(&request_id);
        match outcome {
            None => Err(InvocationError::Timeout(timeout)),
            Some(Outcome::Response(body)) => serde_json::from_slice(&body)
                .map_err(|_| InvocationError::NotJson(String::from_utf8_lossy(&body).into_owned())),
            Some(Outcome::Error { error_type, body }) => {
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Err(InvocationError::Function {
                    error_type: body["errorType"].as_str().map_or(error_type, str::to_owned),
                    error_message: body["errorMessage"].as_str().unwrap_or_default().to_owned(),
                })
            }
        }
    }

    /// Waits until the runtime polls `next` for the first time; returns exec → first poll.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<Duration, InvocationError> {
        let mut polled = self.api.shared.first_poll.subscribe();
        tokio::select! {
            first = polled.wait_for(Option::is_some) => {
                let first = first.expect("the sender lives in self").expect("checked by wait_for");
                Ok(first - self.spawned_at)
            }
            _ = tokio::time::sleep(timeout) => Err(InvocationError::Timeout(timeout)),
            status = exited(&mut self.child) => Err(InvocationError::Exited {
                status,
                init_error: self.init_error(),
            }),
        }
    }

    /// Exec → first `next` poll, once the runtime has polled.
    pub fn cold_start(&self) -> Option<Duration> {
        self.first_poll().map(|first| first - self.spawned_at)
    }

    /// The instant of the first `next` poll.
    pub fn first_poll(&self) -> Option<Instant> {
        *self.api.shared.first_poll.borrow()
    }

    /// The instant just before the process was spawned.
    pub fn spawned_at(&self) -> Instant {
        self.spawned_at
    }

    /// What the runtime posted to `/runtime/init/error`, if it did.
    pub fn init_error(&self) -> Option<Value> {
        self.api.shared.init_error.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident set size so far (`VmHWM` of `/proc/<pid>/status`, Linux only), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// The last lines the function wrote to stdout and stderr.
    pub fn logs(&self) -> String {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resolves when the process has ended (polled: `std::process::Child` has no async wait).
async fn exited(child: &mut Child) -> ExitStatus {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("waiting for the function process: {e}"),
        }
    }
}

/// The caller's AWS SDK settings for the function (`AWS_*` but `AWS_LAMBDA_*` and `AWS_CA_BUNDLE`:
/// endpoints, credentials, region), plus `RUST_LOG` and `RUST_BACKTRACE` when set.
pub fn aws_env_from_current() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| {
            // Not AWS_CA_BUNDLE: Lambda never sets it, and a machine that sets it for its own tools (this
            // one does) would make every function read and decode that bundle at start.
            (k.starts_with("AWS_") && !k.starts_with("AWS_LAMBDA_") && k != "AWS_CA_BUNDLE")
                || k == "RUST_LOG"
                || k == "RUST_BACKTRACE"
        })
        .collect()
}

/// A request id shaped like Lambda's (a UUID).
fn uuid_like(n: u128) -> String {
    let h = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

// ---------------------------------------------------------------------------------------------------------
// The endpoints
// ---------------------------------------------------------------------------------------------------------

async fn next(State(s): State<Arc<Shared>>) -> Response {
    s.first_poll.send_if_modified(|first| {
        let unset = first.is_none();
        if unset {
            *first = Some(Instant::now());
        }
        unset
    });
    // Long poll: wait for the next event. One process polls at a time, so holding the lock is fine.
    let Some(q) = s.queue.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let random = if s
        .constant_trace_id
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        0x5759_e988_bd86_2e3f_e1be_46a9_9427_2793
    } else {
        ulid::Ulid::new().0
    };
    let trace_id = format!(
        "Root=1-{now_s:08x}-{:024x};Parent={:016x};Sampled=0",
        random >> 32,
        random as u64
    );
    let arn = s.function_arn.lock().unwrap().clone();
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("lambda-runtime-aws-request-id", q.request_id),
        ("lambda-runtime-deadline-ms", q.deadline_ms.to_string()),
        ("lambda-runtime-invoked-function-arn", arn),
        ("lambda-runtime-trace-id", trace_id),
    ];
    let mut response = (StatusCode::OK, q.event).into_response();
    for (name, value) in headers {
        response.headers_mut().insert(
            name,
            value.parse().expect("header values are ASCII built above"),
        );
    }
    response
}

fn accepted() -> Response {
    (StatusCode::ACCEPTED, Json(json!({"status": "OK"}))).into_response()
}

fn settle(s: &Shared, id: &str, outcome: Outcome) -> Response {
    match s.in_flight.lock().unwrap().remove(id) {
        Some(tx) => {
            // The invoker may have given up (timeout); nothing to do then.
            let _ = tx.send(outcome);
            accepted()
        }
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"errorType": "InvalidRequestID", "errorMessage": format!("no invocation {id} in flight")})),
        )
            .into_response(),
    }
}

async fn response(
    State(s): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    settle(&s, &id, Outcome::Response(body))
}

async fn error(
    State(s): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned();
    settle(&s, &id, Outcome::Error { error_type, body })
}

async fn init_error(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    *s.init_error.lock().unwrap() = Some(value);
    accepted()
}
