//! Every file of `events/` through the real function binaries, run as Lambda runs them: each binary is
//! started against the in-repo Runtime API emulator (`vetchat_tests::runtime_api`) and DynamoDB Local, gets
//! its events through `GET /runtime/invocation/next` and answers through `/response` (or `/error`).
//!
//! Adding a function = one entry in [`FUNCTIONS`] (binary → events directory → the events in the order
//! they are sent, each with its expected status and check). An event file without an entry fails
//! `every_event_file_has_a_check`.
//!
//! The binaries: a test can only get `CARGO_BIN_EXE_<name>` for binaries of its own package, and
//! `cargo test` builds another package's binary only when that package has integration tests, so one found
//! in the target directory may be missing or stale. The suite therefore runs
//! `cargo build --workspace --bin <function>...` once per test process into the target directory and
//! profile of this test binary: a no-op of ~0.3 s when up to date, and `--workspace` resolves features as
//! the test build does, so it reuses the test build's dependencies (`-p <function>` alone would resolve
//! other features and compile the AWS SDK a second time). `VETCHAT_LAMBDA_BIN_DIR=<dir>` uses the binaries
//! in `<dir>` instead and builds nothing (e.g. release builds, for measurements).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{json, Map, Value};
use vetchat_tests::runtime_api::{
    aws_env_from_current, FunctionProcess, InvocationError, RuntimeApi,
};

// ---------------------------------------------------------------------------------------------------------
// The table: function binary → events directory → the events in order, with what each must answer
// ---------------------------------------------------------------------------------------------------------

struct Function {
    /// The binary's name (`[[bin]]` name; for a package's main binary, the package name).
    binary: &'static str,
    /// The directory under `events/` holding this entry's events.
    events_dir: &'static str,
    /// Extra environment beyond the table name and the AWS settings of the test process.
    env: &'static [(&'static str, &'static str)],
    /// The events in the order they are sent: one story on a fresh table. A file may appear more than once.
    steps: &'static [Step],
}

struct Step {
    file: &'static str,
    expect: Expect,
}

enum Expect {
    /// An API Gateway HTTP API (payload 2.0) response with this status, then the check.
    Http(u16, fn(&HttpReply)),
    /// Any other entry (EventBridge, SNS, DynamoDB Streams): the check gets the function's output.
    #[allow(dead_code)] // for the non-HTTP functions to come
    Output(fn(&Value)),
}

const FUNCTIONS: &[Function] = &[Function {
    binary: "config-api",
    events_dir: "config-api",
    env: &[],
    steps: &[
        Step {
            file: "put-practice.json",
            expect: Expect::Http(201, practice_created),
        },
        Step {
            file: "get-departments.json",
            expect: Expect::Http(200, only_the_default_department),
        },
        Step {
            file: "post-department.json",
            expect: Expect::Http(201, grooming_created),
        },
        Step {
            file: "get-departments.json",
            expect: Expect::Http(200, default_then_grooming),
        },
        Step {
            file: "public-availability.json",
            expect: Expect::Http(200, both_open_on_monday_morning),
        },
        Step {
            file: "forbidden-staff-put-practice.json",
            expect: Expect::Http(403, forbidden),
        },
        Step {
            file: "put-practice.json",
            expect: Expect::Http(200, practice_updated),
        },
    ],
}];

// The config-api story (practice `prc_demo`, whose default department id is derived from it).

const PRACTICE: &str = "prc_demo";
const DEFAULT_DEPARTMENT: &str = "dep_team_prc_demo";

fn practice_created(r: &HttpReply) {
    assert_eq!(r.body["id"], PRACTICE);
    assert_eq!(r.body["name"], "Happy Paws");
    assert_eq!(r.body["timezone"], "America/New_York");
    assert_eq!(r.body["country"], "US");
    assert_eq!(r.body["sms_numbers"], json!(["+12015550100"]));
    assert_eq!(r.body["default_department_id"], DEFAULT_DEPARTMENT);
    assert!(r.body.get("version").is_none(), "internal counter leaked");
}

fn practice_updated(r: &HttpReply) {
    practice_created(r);
}

fn only_the_default_department(r: &HttpReply) {
    let list = r.body.as_array().expect("a JSON array");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], DEFAULT_DEPARTMENT);
    assert_eq!(list[0]["name"], "Happy Paws Team");
    assert_eq!(list[0]["is_default"], true);
    assert_eq!(list[0]["visible_in_app"], true);
}

fn grooming_created(r: &HttpReply) {
    let d = &r.body;
    assert!(d["id"].as_str().is_some_and(|id| id.starts_with("dep_")));
    assert_eq!(d["name"], "Grooming");
    assert_eq!(d["is_default"], false);
    assert_eq!(d["alerts"]["emails"], json!(["desk@happypaws.example"]));
    assert_eq!(d["alerts"]["sms_numbers"], json!(["+12015550123"]));
    assert_eq!(
        d["unresolved_reminder"],
        json!({"enabled": true, "at": "17:30"})
    );
    assert_eq!(d["hours"]["fri"], json!({"start": "09:00", "end": "16:00"}));
    assert_eq!(d["hours"]["sun"], Value::Null);
    assert_eq!(d["open_conversations"], 0);
    let etag = d["etag"].as_str().expect("an etag");
    assert_eq!(r.header("etag"), Some(etag), "ETag header = etag");
}

fn default_then_grooming(r: &HttpReply) {
    let names: Vec<&str> = r
        .body
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Happy Paws Team", "Grooming"]);
}

/// The event asks at Monday 2026-11-23 10:00 New York time: both departments keep 09:00–18:00 on Mondays.
fn both_open_on_monday_morning(r: &HttpReply) {
    assert_eq!(
        r.body["practice"],
        json!({"name": "Happy Paws", "timezone": "America/New_York"})
    );
    let departments = r.body["departments"].as_array().expect("departments");
    let names: Vec<&str> = departments
        .iter()
        .map(|d| d["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["Happy Paws Team", "Grooming"]);
    for d in departments {
        assert_eq!(d["open"], true, "{d}");
        assert_eq!(d["reason"], "open", "{d}");
        assert_eq!(d["closes_at"], "2026-11-23T18:00:00-05:00", "{d}");
        assert_eq!(d["accepts_messages_now"], true, "{d}");
    }
    assert_eq!(departments[0]["id"], DEFAULT_DEPARTMENT);
    assert_eq!(
        departments[1]["greeting"],
        "Hi! Grooming here, how can we help?"
    );
    let text = r.body.to_string();
    assert!(
        !text.contains("desk@happypaws.example") && !text.contains("+12015550123"),
        "availability shows no alert recipients: {text}"
    );
}

fn forbidden(r: &HttpReply) {
    assert_eq!(r.code(), "forbidden", "{}", r.body);
}

// ---------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------

/// Every directory of `events/` belongs to an entry of [`FUNCTIONS`], every file in it is sent by a step,
/// and every step's file exists and is JSON.
#[test]
fn every_event_file_has_a_check() {
    let mut known: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for f in FUNCTIONS {
        let files = known.entry(f.events_dir).or_default();
        files.extend(f.steps.iter().map(|s| s.file));
    }
    let mut unknown = Vec::new();
    for dir in read_dir_names(&events_root()) {
        let Some(files) = known.get(dir.as_str()) else {
            unknown.push(format!("events/{dir} (no function in FUNCTIONS uses it)"));
            continue;
        };
        for file in read_dir_names(&events_root().join(&dir)) {
            if !files.contains(file.as_str()) {
                unknown.push(format!("events/{dir}/{file}"));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "event files no step of tests/tests/lambda_events.rs sends and checks: {unknown:?}"
    );
    for f in FUNCTIONS {
        for step in f.steps {
            read_event(f.events_dir, step.file);
        }
    }
}

/// Each function binary, on a table of its own, answers its events in order as its steps expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_function_answers_its_events() {
    for f in FUNCTIONS {
        let table = fresh_table().await;
        let mut function = spawn(f, Some(&table)).await;
        for (i, step) in f.steps.iter().enumerate() {
            let event = read_event(f.events_dir, step.file);
            let context = format!("{} step {} ({})", f.binary, i + 1, step.file);
            let output = match function.invoke(event).await {
                Ok(output) => output,
                Err(e) => panic!("{context}: {e}\n--- function log:\n{}", function.logs()),
            };
            // Printed before the check, so a failing check's output says which step it was.
            println!("{context}: {output}");
            match &step.expect {
                Expect::Http(status, check) => {
                    let reply = HttpReply::parse(&output);
                    assert_eq!(
                        reply.status,
                        *status,
                        "{context}: status; body {}\n--- function log:\n{}",
                        reply.body,
                        function.logs()
                    );
                    check(&reply);
                }
                Expect::Output(check) => check(&output),
            }
        }
        println!(
            "{}: {} events; exec to first poll {:?}; peak RSS {:?} KiB",
            f.binary,
            f.steps.len(),
            function.cold_start().expect("it polled"),
            function.peak_rss_kib()
        );
    }
}

/// The checks can fail: invalid events get the contract's errors, an event of the wrong kind comes back
/// through `/invocation/{id}/error` (and the function keeps serving), and a step's check rejects a reply
/// it was not written for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_events_are_refused() {
    let config_api = function("config-api");
    let table = fresh_table().await;
    let mut function = spawn(config_api, Some(&table)).await;

    let mut mars = read_event("config-api", "put-practice.json");
    mars["body"] = json!(
        r#"{"name": "Happy Paws", "timezone": "Mars/Olympus", "country": "US", "sms_numbers": []}"#
    );
    let r = invoke_http(&mut function, mars).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.code(), "invalid_time_zone");
    assert_eq!(r.body["error"]["field"], "timezone");

    let mut not_json = read_event("config-api", "put-practice.json");
    not_json["body"] = json!(r#"{"name": "Happy Paws", "timezone": "#);
    let r = invoke_http(&mut function, not_json).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.code(), "malformed_request");

    let scheduled = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012", "time": "2026-11-23T22:00:00Z",
        "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/vetchat-reminder"],
        "detail": {}
    });
    match function.invoke(scheduled).await {
        Err(InvocationError::Function { error_type, .. }) => {
            assert!(!error_type.is_empty());
        }
        other => panic!("an EventBridge event is not an HTTP request: {other:?}"),
    }

    // Still serving; and nothing above created the practice.
    let r = invoke_http(
        &mut function,
        read_event("config-api", "get-departments.json"),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(r.code(), "practice_not_set_up");

    // A step's check is not satisfied by just any reply.
    let Expect::Http(_, check_first_put) = &config_api.steps[0].expect else {
        panic!("the first config-api step is an HTTP one");
    };
    let check_first_put = *check_first_put;
    assert!(
        std::panic::catch_unwind(|| check_first_put(&r)).is_err(),
        "the put-practice check accepted a 409 error body"
    );
}

/// A function that cannot start (no table configured) is reported as such, not as a timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_cannot_start_is_reported() {
    let mut function = spawn(function("config-api"), None).await;
    let event = read_event("config-api", "get-departments.json");
    match function
        .invoke_with_timeout(event, Duration::from_secs(20))
        .await
    {
        Err(InvocationError::Exited { status, .. }) => {
            assert!(!status.success());
            assert!(
                function.logs().contains("DYNAMODB_TABLE"),
                "the log says why: {}",
                function.logs()
            );
        }
        other => panic!("expected the process to exit: {other:?}"),
    }
    assert_eq!(function.first_poll(), None, "it never polled");
}

// ---------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------

/// An API Gateway HTTP API (payload 2.0) response, as the function returned it.
struct HttpReply {
    status: u16,
    headers: Map<String, Value>,
    /// The body parsed as JSON (`null` when empty).
    body: Value,
}

impl HttpReply {
    fn parse(output: &Value) -> HttpReply {
        let status = output["statusCode"]
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .unwrap_or_else(|| panic!("no statusCode in {output}"));
        assert_ne!(
            output["isBase64Encoded"], true,
            "a JSON body is sent as text: {output}"
        );
        let text = output["body"].as_str().unwrap_or_default();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
        };
        if !text.is_empty() {
            assert_eq!(
                output["headers"]["content-type"], "application/json",
                "{output}"
            );
        }
        HttpReply {
            status,
            headers: output["headers"].as_object().cloned().unwrap_or_default(),
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    /// The contract's error code, if this is an error.
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn invoke_http(function: &mut FunctionProcess, event: Value) -> HttpReply {
    match function.invoke(event).await {
        Ok(output) => HttpReply::parse(&output),
        Err(e) => panic!("{e}\n--- function log:\n{}", function.logs()),
    }
}

fn function(binary: &str) -> &'static Function {
    FUNCTIONS
        .iter()
        .find(|f| f.binary == binary)
        .unwrap_or_else(|| panic!("no {binary} in FUNCTIONS"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

fn events_root() -> PathBuf {
    workspace_root().join("events")
}

fn read_dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fn read_event(dir: &str, file: &str) -> Value {
    let path = events_root().join(dir).join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A new table on DynamoDB Local (panics with the usual message when it is not running).
async fn fresh_table() -> String {
    let client = vetchat_tests::dynamo_client().await;
    let table = vetchat_tests::unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the test table");
    table
}

/// Starts the function's binary on a Runtime API of its own, with `DYNAMODB_TABLE` (when given), the AWS
/// settings of this process (DynamoDB Local's endpoint, credentials, region) and the entry's `env`.
async fn spawn(f: &Function, table: Option<&str>) -> FunctionProcess {
    let mut env = aws_env_from_current();
    env.extend(table.map(|t| ("DYNAMODB_TABLE".to_owned(), t.to_owned())));
    env.extend(
        f.env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let binary = function_binary(f.binary);
    let api = RuntimeApi::start().await.expect("start the Runtime API");
    api.spawn_function(&binary, env)
        .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()))
}

/// The path of a function's binary, building every function of [`FUNCTIONS`] first (once per run).
fn function_binary(name: &str) -> PathBuf {
    static BIN_DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = BIN_DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("VETCHAT_LAMBDA_BIN_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        // This test runs as <target>/<profile dir>/deps/lambda_events-<hash>.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("<target>/<profile>/deps/<test binary>")
            .to_owned();
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let mut cargo =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        cargo
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", target_dir)
            .args(["build", "--quiet", "--workspace"]);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cargo.arg("--release");
            }
            Some(other) => {
                cargo.args(["--profile", other]);
            }
            None => panic!("no profile directory in {}", exe.display()),
        }
        let binaries: BTreeSet<&str> = FUNCTIONS.iter().map(|f| f.binary).collect();
        for binary in binaries {
            cargo.args(["--bin", binary]);
        }
        let out = cargo.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "cargo build of the function binaries failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        profile_dir
    });
    let path = dir.join(name);
    assert!(path.is_file(), "no function binary at {}", path.display());
    path
}
