//! `cargo run` keeps its data: the local server's binary on a data directory (the embedded store on a
//! file). What was answered survives a restart and a `kill -9` exactly once, with every department's
//! `open_conversations` true to its conversations; a second server on the same directory is refused; a
//! data file of a format this build does not know is refused with what to do, and left as it was.
//!
//! The crash test runs a few rounds here; more with `VETCHAT_CRASH_ROUNDS=50`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::store::embedded::{OpenError, DATA_FILE, FORMAT};
use adapters::store::EmbeddedStore;
use domain::identity::Role;
use reqwest::Method;
use serde_json::{json, Value};
use vetchat_tests::api::always_open;
use vetchat_tests::local_server::{Client, LocalServer};

const PRACTICE: &str = "prc_durable";
const PRACTICE_NUMBER: &str = "+12015550100";

fn dir_args(dir: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--data-dir".into(),
        dir.to_str().expect("a UTF-8 path").into(),
    ]
}

async fn start_on(dir: &Path, log: &Path) -> LocalServer {
    let args = dir_args(dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    LocalServer::start(&args, log).await
}

fn spawn_on(dir: &Path, log: &Path) -> LocalServer {
    let args = dir_args(dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    LocalServer::spawn(&args, log)
}

/// The practice with its texting number, the default department open around the clock, and Grooming:
/// the two department ids.
async fn set_up(c: &Client) -> Vec<String> {
    let r = c
        .admin(
            Method::PUT,
            "/practice",
            Some(
                json!({"name": "Durable Vets", "timezone": "America/New_York", "country": "US",
                        "sms_numbers": [PRACTICE_NUMBER]}),
            ),
        )
        .await;
    assert_eq!(r.status, 201, "PUT /practice: {}", r.body);
    let team = r.body["default_department_id"]
        .as_str()
        .expect("default department")
        .to_owned();
    let r = c
        .admin(
            Method::PATCH,
            &format!("/departments/{team}"),
            Some(json!({"hours": always_open()})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = c
        .admin(
            Method::POST,
            "/departments",
            Some(json!({"name": "Grooming", "visible_in_app": true, "hours": always_open()})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    vec![team, r.body["id"].as_str().expect("id").to_owned()]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_data_directory_is_refused_and_the_data_stays() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let first = start_on(&dir, &tmp.path().join("first.log")).await;
    let file = dir.join(DATA_FILE);
    assert!(
        first.log_text().contains(file.to_str().unwrap()),
        "the server says where the data is:\n{}",
        first.log_text()
    );
    let departments = set_up(&first.client(PRACTICE)).await;

    let mut second = spawn_on(&dir, &tmp.path().join("second.log"));
    let code = second.exit_code_within(Duration::from_secs(30));
    let said = second.log_text();
    assert_eq!(code, Some(1), "the second server stops at once:\n{said}");
    assert!(
        said.contains(dir.to_str().unwrap())
            && said.contains("in use")
            && said.contains("--data-dir"),
        "it names the directory and how to choose another:\n{said}"
    );
    // The first one still serves, its data untouched.
    let c = first.client(PRACTICE);
    assert_eq!(
        c.staff_get("/departments").await.as_array().unwrap().len(),
        2
    );
    assert_eq!(first.stop(), 0, "SIGTERM stops it cleanly");

    // Once it has stopped, the directory is free, and the data is there.
    let again = start_on(&dir, &tmp.path().join("again.log")).await;
    let c = again.client(PRACTICE);
    let listed: Vec<String> = c
        .staff_get("/departments")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, departments);
    assert_eq!(c.staff_get("/practice").await["name"], "Durable Vets");
}

/// Writes `format` as the data format of the file in `dir` (what a newer build would have left).
fn write_format(dir: &Path, format: u64) {
    // The `meta` table and its `format` row, as `adapters::store::embedded` lays them out.
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let db = redb::Database::open(dir.join(DATA_FILE)).expect("open the data file");
    let tx = db.begin_write().expect("write");
    tx.open_table(META)
        .expect("meta")
        .insert("format", format)
        .expect("insert");
    tx.commit().expect("commit");
}

fn read_format(dir: &Path) -> Option<u64> {
    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
    let db = redb::Database::open(dir.join(DATA_FILE)).expect("open the data file");
    let tx = redb::ReadableDatabase::begin_read(&db).expect("read");
    let meta = tx.open_table(META).expect("meta");
    let format = meta.get("format").expect("get").map(|g| g.value());
    format
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_of_an_unknown_format_is_refused_with_what_to_do_and_left_as_it_was() {
    let tmp = tempfile::tempdir().expect("temp dir");

    // A file a newer build wrote (a format above ours).
    let newer = tmp.path().join("newer");
    drop(EmbeddedStore::open(&newer).expect("a data directory of this build"));
    assert_eq!(read_format(&newer), Some(FORMAT));
    write_format(&newer, FORMAT + 1);
    match EmbeddedStore::open(&newer) {
        Err(OpenError::NewerFormat { found, .. }) => assert_eq!(found, FORMAT + 1),
        other => panic!("expected a refusal of format {}, got {other:?}", FORMAT + 1),
    }
    let mut server = spawn_on(&newer, &tmp.path().join("newer.log"));
    assert_eq!(server.exit_code_within(Duration::from_secs(30)), Some(1));
    let said = server.log_text();
    let file = newer.join(DATA_FILE);
    assert!(
        said.contains(file.to_str().unwrap())
            && said.contains("newer")
            && said.contains("run that version")
            && said.contains("--data-dir"),
        "it names the file and what to do:\n{said}"
    );
    assert_eq!(read_format(&newer), Some(FORMAT + 1), "left as it was");

    // Something that is not a data file at all.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let junk: Vec<u8> = b"notes, not a database\n".repeat(400);
    std::fs::write(other.join(DATA_FILE), &junk).unwrap();
    let mut server = spawn_on(&other, &tmp.path().join("other.log"));
    assert_eq!(server.exit_code_within(Duration::from_secs(30)), Some(1));
    let said = server.log_text();
    assert!(
        said.contains(other.join(DATA_FILE).to_str().unwrap()),
        "it names the file:\n{said}"
    );
    assert_eq!(
        std::fs::read(other.join(DATA_FILE)).unwrap(),
        junk,
        "left as it was"
    );
}

// ---------------------------------------------------------------------------------------------------------
// The crash test
// ---------------------------------------------------------------------------------------------------------

/// What the writers sent and what they were answered, across every round.
#[derive(Default)]
struct Ledger {
    /// Text body (also its `Idempotency-Key`) → (from, conversation answered).
    texts: BTreeMap<String, (String, String)>,
    /// Texts sent without an answer (the server died): body → from. Sent again after the restart.
    unanswered_texts: BTreeMap<String, String>,
    /// Staff reply body → conversation.
    replies: BTreeMap<String, String>,
    /// Conversations answered as ended.
    ended: BTreeSet<String>,
    /// Conversations to reply into and end (answered open once).
    pool: Vec<String>,
    /// Department → (the last greeting answered 200, the one sent without an answer after it).
    greetings: BTreeMap<String, (Option<String>, Option<String>)>,
    /// Answers no writer expected (a 5xx, a refusal the contract does not give here).
    unexpected: Vec<String>,
}

/// Set once the server is killed: a writer with nothing to send then stops too.
type Killed = Arc<AtomicBool>;

fn pick(ledger: &Mutex<Ledger>, rng: &mut fastrand::Rng) -> Option<String> {
    let l = ledger.lock().unwrap();
    (!l.pool.is_empty()).then(|| l.pool[rng.usize(0..l.pool.len())].clone())
}

/// A text from the gateway, its body as its `Idempotency-Key` (bodies are unique).
async fn send_text(
    c: &Client,
    gateway: &str,
    from: &str,
    body: &str,
) -> Result<vetchat_tests::local_server::Answer, String> {
    c.send_with(
        Method::POST,
        "/inbound",
        Some(gateway.to_owned()),
        Some(json!({"channel": "sms", "from": from, "body": body})),
        &[("idempotency-key", body)],
    )
    .await
}

/// Texts from the gateway, each with its body as `Idempotency-Key`, from a few numbers of this writer's
/// own (so they join open conversations or start new ones), until the server stops answering.
async fn texts(c: Client, ledger: Arc<Mutex<Ledger>>, killed: Killed, round: usize, writer: usize) {
    let gateway = c.token(Role::Integration, "gateway");
    let mut rng = fastrand::Rng::with_seed((round * 31 + writer) as u64);
    for n in 0.. {
        if killed.load(Ordering::SeqCst) {
            return;
        }
        let from = format!("+1201555{:02}{:02}", writer, rng.usize(0..12));
        let body = format!("text-r{round}-w{writer}-n{n}");
        let r = send_text(&c, &gateway, &from, &body).await;
        let mut l = ledger.lock().unwrap();
        match r {
            Ok(a) if a.status == 200 || a.status == 201 => {
                let conversation = a.body["conversation_id"].as_str().unwrap().to_owned();
                if a.status == 201 {
                    l.pool.push(conversation.clone());
                }
                l.texts.insert(body, (from, conversation));
            }
            Ok(a) => l
                .unexpected
                .push(format!("POST /inbound: {} {}", a.status, a.body)),
            Err(_) => {
                l.unanswered_texts.insert(body, from);
                return;
            }
        }
    }
}

/// Staff replies into conversations answered open (409 when one was ended meanwhile).
async fn replies(c: Client, ledger: Arc<Mutex<Ledger>>, killed: Killed, round: usize) {
    let staff = c.token(Role::Staff, "staff-1");
    let mut rng = fastrand::Rng::with_seed(round as u64 + 1000);
    for n in 0.. {
        if killed.load(Ordering::SeqCst) {
            return;
        }
        let Some(conversation) = pick(&ledger, &mut rng) else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let body = format!("reply r{round} n{n}");
        let r = c
            .send(
                Method::POST,
                &format!("/conversations/{conversation}/messages"),
                Some(staff.clone()),
                Some(json!({"body": body})),
            )
            .await;
        let mut l = ledger.lock().unwrap();
        match r {
            Ok(a) if a.status == 201 => {
                l.replies.insert(body, conversation);
            }
            // Ended meanwhile (answered, or by a request that got no answer before a kill).
            Ok(a) if a.status == 409 => {}
            Ok(a) => l
                .unexpected
                .push(format!("POST /messages: {} {}", a.status, a.body)),
            Err(_) => return,
        }
    }
}

/// Ends conversations answered open, now and then.
async fn ends(c: Client, ledger: Arc<Mutex<Ledger>>, killed: Killed, round: usize) {
    let staff = c.token(Role::Staff, "staff-2");
    let mut rng = fastrand::Rng::with_seed(round as u64 + 2000);
    while !killed.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let Some(conversation) = pick(&ledger, &mut rng) else {
            continue;
        };
        let r = c
            .send(
                Method::POST,
                &format!("/conversations/{conversation}/end"),
                Some(staff.clone()),
                None,
            )
            .await;
        let mut l = ledger.lock().unwrap();
        match r {
            Ok(a) if a.status == 200 => {
                l.ended.insert(conversation.clone());
                l.pool.retain(|c| c != &conversation);
            }
            Ok(a) => l
                .unexpected
                .push(format!("POST /end: {} {}", a.status, a.body)),
            Err(_) => return,
        }
    }
}

/// Settings changes of one department, one after the other (each `If-Match` the etag just read).
async fn patches(
    c: Client,
    ledger: Arc<Mutex<Ledger>>,
    killed: Killed,
    round: usize,
    department: String,
) {
    let admin = c.token(Role::Admin, "admin-1");
    for n in 0.. {
        if killed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(read) = c
            .send(
                Method::GET,
                &format!("/departments/{department}"),
                Some(admin.clone()),
                None,
            )
            .await
        else {
            return;
        };
        let etag = read.body["etag"].as_str().unwrap_or_default().to_owned();
        let greeting = format!("greeting r{round} n{n}");
        let r = c
            .send_with(
                Method::PATCH,
                &format!("/departments/{department}"),
                Some(admin.clone()),
                Some(json!({"chat": {"greeting": greeting}})),
                &[("if-match", &etag)],
            )
            .await;
        let mut l = ledger.lock().unwrap();
        let state = l.greetings.entry(department.clone()).or_default();
        match r {
            Ok(a) if a.status == 200 => *state = (Some(greeting), None),
            Ok(a) => {
                let line = format!("PATCH /departments: {} {}", a.status, a.body);
                l.unexpected.push(line);
            }
            Err(_) => {
                state.1 = Some(greeting);
                return;
            }
        }
    }
}

/// Every message of a conversation (following `next_after` where the answer pages them).
async fn conversation_with_messages(c: &Client, id: &str) -> (Value, Vec<Value>) {
    let mut path = format!("/conversations/{id}");
    let mut messages = Vec::new();
    loop {
        let page = c.staff_get(&path).await;
        messages.extend(page["messages"].as_array().cloned().unwrap_or_default());
        match page.get("next_after").and_then(Value::as_u64) {
            Some(after) => path = format!("/conversations/{id}?after={after}"),
            None => return (page, messages),
        }
    }
}

/// What the restarted server holds against what was answered.
async fn check(c: &Client, ledger: &Ledger, departments: &[String], round: usize) {
    let conversations = c.all_conversations("").await;
    let mut bodies: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut open_per_department: BTreeMap<String, u64> = BTreeMap::new();
    let mut open_per_client: BTreeMap<String, u64> = BTreeMap::new();
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    for listed in &conversations {
        let id = listed["id"].as_str().unwrap();
        let (detail, messages) = conversation_with_messages(c, id).await;
        let status = detail["status"].as_str().unwrap().to_owned();
        if status == "open" {
            *open_per_department
                .entry(detail["department_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
            *open_per_client
                .entry(detail["client_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        status_of.insert(id.to_owned(), status);
        assert!(
            messages.iter().any(|m| m["author"]["kind"] == "client"),
            "round {round}: conversation {id} has no first message (half a start): {detail}"
        );
        for m in messages.iter().filter(|m| m["author"]["kind"] != "auto") {
            bodies
                .entry(m["body"].as_str().unwrap().to_owned())
                .or_default()
                .push(id.to_owned());
        }
    }
    for (body, held_by) in &bodies {
        assert_eq!(
            held_by.len(),
            1,
            "round {round}: {body:?} is stored more than once: {held_by:?}"
        );
    }
    for (body, (_, conversation)) in &ledger.texts {
        assert_eq!(
            bodies.get(body),
            Some(&vec![conversation.clone()]),
            "round {round}: the text {body:?} answered 2xx is in its conversation, once"
        );
    }
    for (body, conversation) in &ledger.replies {
        assert_eq!(
            bodies.get(body),
            Some(&vec![conversation.clone()]),
            "round {round}: the reply {body:?} answered 201 is in its conversation, once"
        );
    }
    for conversation in &ledger.ended {
        assert_eq!(
            status_of.get(conversation).map(String::as_str),
            Some("resolved"),
            "round {round}: {conversation} was answered ended"
        );
    }
    for (client, open) in &open_per_client {
        assert_eq!(
            *open, 1,
            "round {round}: {client} has {open} open conversations"
        );
    }
    for department in departments {
        let d = c.staff_get(&format!("/departments/{department}")).await;
        assert_eq!(
            d["open_conversations"].as_u64(),
            Some(open_per_department.get(department).copied().unwrap_or(0)),
            "round {round}: {department}'s open_conversations against its open conversations"
        );
        if let Some((answered, unanswered)) = ledger.greetings.get(department) {
            let stored = d["chat"]["greeting"].as_str().map(str::to_owned);
            assert!(
                stored.is_some() && (stored == *answered || stored == *unanswered),
                "round {round}: {department}'s greeting {stored:?}: the last answered \
                 {answered:?}, or the one sent after it without an answer {unanswered:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_was_answered_survives_kill_9_exactly_once_and_the_counts_stay_true() {
    let rounds: usize = std::env::var("VETCHAT_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("data");
    let log = |n: usize| tmp.path().join(format!("server-{n}.log"));
    let mut server = start_on(&dir, &log(0)).await;
    let departments = set_up(&server.client(PRACTICE)).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    // The kill moments: random, and said, so a failing run can be looked into.
    let seed = fastrand::u64(..);
    eprintln!("kill moments from seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);

    for round in 0..rounds {
        let c = server.client(PRACTICE);
        let killed = Killed::default();
        let mut writers = Vec::new();
        for writer in 0..2 {
            let (c, ledger, killed) = (c.clone(), ledger.clone(), killed.clone());
            writers.push(tokio::spawn(texts(c, ledger, killed, round, writer)));
        }
        let (c2, ledger2, killed2) = (c.clone(), ledger.clone(), killed.clone());
        writers.push(tokio::spawn(replies(c2, ledger2, killed2, round)));
        let (c2, ledger2, killed2) = (c.clone(), ledger.clone(), killed.clone());
        writers.push(tokio::spawn(ends(c2, ledger2, killed2, round)));
        for department in &departments {
            let (c, ledger, killed) = (c.clone(), ledger.clone(), killed.clone());
            writers.push(tokio::spawn(patches(
                c,
                ledger,
                killed,
                round,
                department.clone(),
            )));
        }
        // A random moment while every writer is busy.
        tokio::time::sleep(Duration::from_millis(rng.u64(150..700))).await;
        server.kill_9();
        killed.store(true, Ordering::SeqCst);
        for w in writers {
            w.await.expect("writer");
        }

        server = start_on(&dir, &log(round + 1)).await;
        let c = server.client(PRACTICE);
        // The texts that got no answer, sent again with their key (as a gateway retries): each is then
        // stored once, whether or not the first attempt had been.
        let unanswered = std::mem::take(&mut ledger.lock().unwrap().unanswered_texts);
        let gateway = c.token(Role::Integration, "gateway");
        for (body, from) in unanswered {
            let a = send_text(&c, &gateway, &from, &body)
                .await
                .expect("the restarted server answers");
            assert!(
                a.status == 200 || a.status == 201,
                "{} {}",
                a.status,
                a.body
            );
            let conversation = a.body["conversation_id"].as_str().unwrap().to_owned();
            ledger
                .lock()
                .unwrap()
                .texts
                .insert(body, (from, conversation));
        }
        let snapshot = {
            let l = ledger.lock().unwrap();
            assert!(
                l.unexpected.is_empty(),
                "unexpected answers: {:?}",
                l.unexpected
            );
            assert!(
                !l.texts.is_empty() && !l.greetings.is_empty(),
                "the writers got answers before the kill"
            );
            eprintln!(
                "round {round}: {} texts, {} replies, {} ends answered so far",
                l.texts.len(),
                l.replies.len(),
                l.ended.len()
            );
            Ledger {
                texts: l.texts.clone(),
                replies: l.replies.clone(),
                ended: l.ended.clone(),
                greetings: l.greetings.clone(),
                ..Ledger::default()
            }
        };
        check(&c, &snapshot, &departments, round).await;
    }
    assert_eq!(server.stop(), 0);
}
