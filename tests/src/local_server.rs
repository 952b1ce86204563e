//! The local server as a process: the workspace's binaries built for the tests, the server started on a
//! port of its own (on a data directory, in memory, or on DynamoDB), stopped with SIGTERM or killed with
//! SIGKILL, and an HTTP client of it that signs its own tokens.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use domain::identity::Role;
use serde_json::Value;

/// The workspace root (`tests/` sits in it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_owned()
}

/// A loopback port nobody listens on (now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Builds `binaries` of the workspace into the target directory and profile of the running test binary
/// and answers that profile's directory, where they are.
///
/// A test can only get `CARGO_BIN_EXE_<name>` for binaries of its own package, and `cargo test` builds
/// another package's binary only when that package has integration tests, so one found in the target
/// directory may be missing or stale: this runs `cargo build --workspace --bin <name>...`, a no-op of
/// ~0.3 s when up to date; `--workspace` resolves features as the test build does, so it reuses the test
/// build's dependencies (`-p <package>` alone would resolve other features and compile the AWS SDK again).
pub fn build_workspace_binaries(binaries: &[&str]) -> PathBuf {
    // This test runs as <target>/<profile dir>/deps/<test binary>-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test binary>")
        .to_owned();
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
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
    for binary in binaries {
        cargo.args(["--bin", binary]);
    }
    let out = cargo.output().expect("run cargo build");
    assert!(
        out.status.success(),
        "cargo build of {binaries:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    profile_dir
}

/// The local server's binary (`cargo run`'s), built once per test process.
pub fn local_server_binary() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let path = DIR
        .get_or_init(|| build_workspace_binaries(&["local"]))
        .join("local");
    assert!(
        path.is_file(),
        "no local server binary at {}",
        path.display()
    );
    path
}

/// A running local server, killed when dropped.
pub struct LocalServer {
    child: Child,
    pub url: String,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// The signing secret of the servers the tests start.
pub const SERVER_SECRET: &str = "local-server-test-secret";

impl LocalServer {
    /// The server binary with `args` (e.g. `["--data-dir", dir]`), `RUST_LOG=info`, on a free port, its
    /// output in `log`, without the test's `DYNAMODB_TABLE`. Not waited for: see [`Self::wait_ready`].
    pub fn spawn(args: &[&str], log: &Path) -> LocalServer {
        LocalServer::spawn_binary(&local_server_binary(), args, log)
    }

    /// [`Self::spawn`] with another build of the server (e.g. a release binary, for measurements).
    pub fn spawn_binary(binary: &Path, args: &[&str], log: &Path) -> LocalServer {
        let port = free_port();
        let out = std::fs::File::create(log).expect("the server's log file");
        let child = Command::new(binary)
            .args(args)
            .env_remove("DYNAMODB_TABLE")
            .env("PORT", port.to_string())
            .env("LOCAL_JWT_SECRET", SERVER_SECRET)
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "text")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .expect("start the local server");
        LocalServer {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        }
    }

    /// [`Self::spawn`], then waits until it answers (panics with its log if it exits or does not answer
    /// within 60 s).
    pub async fn start(args: &[&str], log: &Path) -> LocalServer {
        let mut server = LocalServer::spawn(args, log);
        server.wait_ready().await;
        server
    }

    pub async fn wait_ready(&mut self) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                panic!("the local server exited ({status}):\n{}", self.log_text());
            }
            let probe = http
                .get(format!("{}/config.json", self.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if probe.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the local server did not answer on {}:\n{}",
                self.url,
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (up to `within`) for the server to exit by itself: its exit code, `None` if still running.
    pub fn exit_code_within(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server") {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, at once: nothing of the server runs after this returns.
    pub fn kill_9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as `kill` or a service manager stops it, and waits for it to exit: its exit code.
    pub fn stop(mut self) -> i32 {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.exit_code_within(Duration::from_secs(20))
            .unwrap_or_else(|| {
                panic!(
                    "the local server did not stop on SIGTERM:\n{}",
                    self.log_text()
                )
            })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client of this server for `practice`, signing tokens with [`SERVER_SECRET`].
    pub fn client(&self, practice: &str) -> Client {
        Client::new(&self.url, SERVER_SECRET, practice)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client of a running local server, for one practice: tokens signed with the server's secret.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub secret: String,
    pub practice: String,
}

/// A status and the JSON body (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

impl Client {
    pub fn new(base: &str, secret: &str, practice: &str) -> Client {
        Client {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("an HTTP client"),
            base: base.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
            practice: practice.to_owned(),
        }
    }

    pub fn token(&self, role: Role, sub: &str) -> String {
        local::sign_token(
            &self.secret,
            &self.practice,
            role,
            sub,
            chrono::Utc::now().timestamp(),
            24 * 3600,
        )
    }

    /// One request; `Err` when no answer came (refused, reset, timed out).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<String>,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        self.send_with(method, path, token, body, &[]).await
    }

    /// [`Self::send`] with extra headers.
    pub async fn send_with(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<String>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut r = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Ok(Answer { status, body })
    }

    /// An admin request that must be answered (panics on no answer).
    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Answer {
        let token = self.token(Role::Admin, "admin-1");
        self.send(method.clone(), path, Some(token), body)
            .await
            .unwrap_or_else(|e| panic!("setup: {e}"))
    }

    /// A staff GET that must answer 200: its body.
    pub async fn staff_get(&self, path: &str) -> Value {
        let token = self.token(Role::Staff, "staff-1");
        let a = self
            .send(reqwest::Method::GET, path, Some(token), None)
            .await
            .unwrap_or_else(|e| panic!("check: {e}"));
        assert_eq!(a.status, 200, "GET {path}: {}", a.body);
        a.body
    }

    /// Every conversation of the practice (`query`: e.g. `status=open`), every page.
    pub async fn all_conversations(&self, query: &str) -> Vec<Value> {
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/conversations?{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.staff_get(&path).await;
            listed.extend(
                page["conversations"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return listed,
            }
        }
    }
}
