//! The HTTP functions under `cargo lambda watch`, as a developer runs them: each package served on its own
//! port through cargo-lambda's router (`[workspace.metadata.lambda.watch.router]`: the contract's real paths),
//! answering the local server's tokens (`[workspace.metadata.lambda.watch] env_var` sets LOCAL_JWT_SECRET),
//! on a DynamoDB Local table.
//!
//! Needs cargo-lambda: `scripts/test` installs it (PyPI `cargo-lambda`) and sets `CARGO_LAMBDA` to it.
//! Each package is built first as watch's `cargo run -p <package>` builds it (a few minutes when cold).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use domain::identity::Role;
use serde_json::{json, Value};
use vetchat_tests::local_server::{free_port, workspace_root};

/// How long watch may take to start the (already built) function and answer.
const START: Duration = Duration::from_secs(300);
/// How long one request may take.
const REQUEST: Duration = Duration::from_secs(30);

fn cargo_lambda() -> PathBuf {
    match std::env::var_os("CARGO_LAMBDA").filter(|v| !v.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => panic!(
            "cargo-lambda is needed: run `scripts/test` (installs it under ~/.cache/vetchat/tools) or \
             `pip install cargo-lambda` and set CARGO_LAMBDA to the cargo-lambda binary"
        ),
    }
}

/// `cargo lambda watch -p <package>` in its own process group, stopped (with the `cargo run` it started)
/// when dropped.
struct Watch {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Watch {
    fn start(package: &str, table: &str) -> Watch {
        // Build first, as watch's `cargo run -p <package>` will (same package, same features): watch then
        // starts the function at once, and a slow cold build fails here with cargo's own message.
        eprintln!("building {package} as cargo lambda watch -p {package} will run it");
        let built = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "-q", "-p", package, "--bins"])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(built.success(), "cargo build -p {package} failed");
        let port = free_port();
        eprintln!("starting cargo lambda watch -p {package} on 127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("vetchat-watch-{package}-{port}.log"));
        let out = std::fs::File::create(&log).expect("create the watch log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(cargo_lambda())
            .args(["lambda", "watch", "--ignore-changes", "-q", "-p", package])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .current_dir(workspace_root())
            .env("DYNAMODB_TABLE", table)
            // Whatever the developer's shell has, the secret comes from Cargo.toml's watch env_var.
            .env_remove("LOCAL_JWT_SECRET")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("start cargo lambda watch");
        Watch {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `request` (built again for each try) until watch answers: its first answer comes once it has
    /// started the function.
    async fn first_answer(
        &mut self,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> (u16, Value) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cargo lambda watch exited ({status}):\n{}", self.logs());
            }
            if let Ok(resp) = request(&self.base).timeout(REQUEST).send().await {
                let status = resp.status().as_u16();
                return (status, resp.json().await.unwrap_or(Value::Null));
            }
            assert!(
                started.elapsed() < START,
                "cargo lambda watch did not answer within {START:?}:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn call(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap_or_else(|e| {
            panic!("request to {path} failed: {e}\n{}", self.logs());
        });
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The whole group: watch and the `cargo run` / function processes it started.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &group])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &group])
            .status();
        let _ = self.child.wait();
    }
}

fn token(practice: &str, role: Role, sub: &str, secret: &str) -> String {
    let now = adapters::now().timestamp();
    local::sign_token(secret, practice, role, sub, now, 3600)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_under_cargo_lambda_watch_serve_the_contract_paths_with_local_tokens() {
    let client = vetchat_tests::dynamo_client().await;
    let table = vetchat_tests::unique_table_name();
    adapters::store::ensure_table(&client, &table)
        .await
        .expect("create the table");
    let http = reqwest::Client::new();
    let secret = adapters::config::DEFAULT_LOCAL_JWT_SECRET;
    let practice = format!("prc_watch_{}", ulid::Ulid::new().to_string().to_lowercase());
    let admin = token(&practice, Role::Admin, "admin-1", secret);
    let staff = token(&practice, Role::Staff, "staff-1", secret);
    let client_token = token(&practice, Role::Client, "owner-1", secret);
    let forged = token(&practice, Role::Admin, "admin-1", "not-the-secret");

    // config-api: the settings routes and the public one.
    let mut config = Watch::start("config-api", &table);
    let (status, body) = config
        .first_answer(|base| http.get(format!("{base}/public/practices/{practice}/availability")))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    let put = json!({"name": "Watch Paws", "timezone": "America/New_York", "country": "US"});
    let (status, body) = config
        .call(
            &http,
            reqwest::Method::PUT,
            "/practice",
            None,
            Some(put.clone()),
        )
        .await;
    assert_eq!(status, 401, "no token: {body}");
    let (status, body) = config
        .call(
            &http,
            reqwest::Method::PUT,
            "/practice",
            Some(&forged),
            Some(put.clone()),
        )
        .await;
    assert_eq!(status, 401, "a token signed with another secret: {body}");
    let (status, body) = config
        .call(
            &http,
            reqwest::Method::PUT,
            "/practice",
            Some(&staff),
            Some(put.clone()),
        )
        .await;
    assert_eq!(status, 403, "staff may not set up the practice: {body}");
    let (status, body) = config
        .call(
            &http,
            reqwest::Method::PUT,
            "/practice",
            Some(&admin),
            Some(put),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let team = body["default_department_id"]
        .as_str()
        .expect("default_department_id")
        .to_owned();
    let (status, body) = config
        .call(
            &http,
            reqwest::Method::GET,
            "/departments",
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["id"], team.as_str(), "{body}");
    assert_eq!(body[0]["name"], "Watch Paws Team", "{body}");
    let (status, body) = config
        .call(
            &http,
            reqwest::Method::PATCH,
            &format!("/departments/{team}"),
            Some(&admin),
            Some(json!({"hours": {"mon": {"start": "00:00", "end": "24:00"},
                "tue": {"start": "00:00", "end": "24:00"}, "wed": {"start": "00:00", "end": "24:00"},
                "thu": {"start": "00:00", "end": "24:00"}, "fri": {"start": "00:00", "end": "24:00"},
                "sat": {"start": "00:00", "end": "24:00"}, "sun": {"start": "00:00", "end": "24:00"}}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    drop(config);

    // inbound-router: a pet owner writes from the app, staff list the open conversations.
    let mut inbound = Watch::start("inbound-router", &table);
    let (status, _) = inbound
        .first_answer(|base| http.get(format!("{base}/conversations")))
        .await;
    assert_eq!(status, 401, "listing conversations needs a token");
    let (status, body) = inbound
        .call(
            &http,
            reqwest::Method::POST,
            "/inbound",
            Some(&client_token),
            Some(json!({"channel": "app", "body": "Can I book a bath for Rex?"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["department_id"], team.as_str(), "{body}");
    let conversation = body["conversation_id"].as_str().expect("id").to_owned();
    let (status, body) = inbound
        .call(
            &http,
            reqwest::Method::GET,
            "/conversations?status=open",
            Some(&staff),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ids: Vec<&str> = body["conversations"]
        .as_array()
        .expect("conversations")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, vec![conversation.as_str()], "{body}");
    drop(inbound);

    // transfer-alerts: a transfer to the department it is already in is refused by the function itself.
    let mut transfer = Watch::start("transfer-alerts", &table);
    let (status, body) = transfer
        .first_answer(|base| {
            http.post(format!("{base}/conversations/{conversation}/transfer"))
                .bearer_auth(&staff)
                .json(&json!({"department_id": team, "note": "same place"}))
        })
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("same_department")),
        "{body}"
    );
}

/// `cargo lambda watch -p <package>`, `sam build` (one package at a time) and `cargo run` (the local server)
/// build one package with only its own dependencies' features. The `workspace-hack` crate (cargo-hakari)
/// gives every package the workspace's feature set, so those builds reuse the test build's compiled
/// dependencies instead of compiling the AWS SDK again (minutes on 2 cores). A dependency added without
/// `cargo hakari generate` brings the recompiling back: this test names it.
#[test]
fn building_one_package_compiles_no_dependency_again() {
    let root = workspace_root();
    for package in [
        "config-api",
        "inbound-router",
        "transfer-alerts",
        "eod-reminder",
        "local",
    ] {
        let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "-p", package, "--bins", "--message-format=json"])
            .current_dir(&root)
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo build");
        assert!(out.status.success(), "cargo build -p {package} failed");
        let compiled: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["fresh"] == false)
            .filter(|m| {
                !m["manifest_path"]
                    .as_str()
                    .is_some_and(|p| std::path::Path::new(p).starts_with(&root))
            })
            .filter_map(|m| m["package_id"].as_str().map(str::to_owned))
            .collect();
        assert!(
            compiled.is_empty(),
            "`cargo build -p {package}` compiled dependencies the workspace build had already compiled \
             (their features differ): {compiled:?}. Run `cargo hakari generate && cargo hakari manage-deps` \
             (install: `cargo install cargo-hakari --locked`) and commit workspace-hack/."
        );
    }
}
