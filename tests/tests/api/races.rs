//! Concurrent staff and admins, through the HTTP API on DynamoDB Local, repeated round after round
//! (`VETCHAT_RACE_ROUNDS`, default 12 to keep `scripts/test` quick; RELIABILITY.md has a 200-round run): the store contract suites race each pair a few times on both
//! stores; here every race runs many times on the real database, and after the last round the whole
//! practice is checked against what was answered (conversations, transfers, open counts, alerts).
//!
//! - two PATCHes with the same `If-Match` (and a third without one): one wins, one gets 412, the third
//!   lands on top of the winner, nothing is lost;
//! - deleting a department while chats start in it: either the delete wins and no chat got in, or a chat
//!   won and the delete is refused with every chat kept;
//! - ending a conversation while it is transferred: always ended, transferred only if the transfer went
//!   first, and the client's next message starts a new conversation;
//! - three transfers of one conversation at once: one chain of moves, one alert per move.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{self, always_open, Api, Reply};

/// One racing request, answering its status and body.
type Racer = std::pin::Pin<Box<dyn std::future::Future<Output = (StatusCode, Value)> + Send>>;

fn rounds() -> usize {
    std::env::var("VETCHAT_RACE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12)
}

struct Practice {
    api: Arc<Api>,
    p: String,
    team: String,
}

impl Practice {
    /// A practice on a fresh DynamoDB Local table; the default department open around the clock with
    /// alerts on.
    async fn new() -> Practice {
        let api = Arc::new(Api::dynamo().await);
        let p = Api::practice_id();
        let team = api.setup_practice(&p).await;
        let r = api
            .admin(
                &p,
                Method::PATCH,
                &format!("/departments/{team}"),
                Some(json!({"hours": always_open(), "alerts": {"enabled": true, "emails": "desk@happypaws.example"}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        Practice { api, p, team }
    }

    async fn department(&self, name: &str, visible: bool) -> String {
        self.api
            .add_department(
                &self.p,
                json!({"name": name, "visible_in_app": visible, "hours": always_open(),
                       "alerts": {"enabled": true, "emails": "team@happypaws.example"}}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn text(&self, from: &str, body: &str) -> Reply {
        self.api
            .call(
                &self.p,
                Role::Integration,
                Method::POST,
                "/inbound",
                Some(json!({"channel": "sms", "from": from, "body": body})),
            )
            .await
    }

    async fn staff(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.api
            .call(&self.p, Role::Staff, method, path, body)
            .await
    }

    async fn conversations(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/conversations?cursor={c}"),
                None => "/conversations".to_owned(),
            };
            let r = self.staff(Method::GET, &path, None).await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            out.extend(r.body["conversations"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Every department's `open_conversations` is the number of open conversations listed in it; every
    /// conversation's department exists; once delivered, each conversation has one new-conversation alert
    /// and one transfer alert per recorded transfer, and nobody got anything twice.
    async fn assert_consistent(&self) -> (usize, usize) {
        let departments = self
            .api
            .admin(&self.p, Method::GET, "/departments", None)
            .await
            .body;
        let counts: BTreeMap<String, u64> = departments
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["open_conversations"].as_u64().unwrap(),
                )
            })
            .collect();
        let conversations = self.conversations().await;
        let mut open: BTreeMap<String, u64> = BTreeMap::new();
        let mut transfers = 0;
        let mut alerts_wanted: BTreeMap<(String, String), usize> = BTreeMap::new();
        for c in &conversations {
            let d = c["department_id"].as_str().unwrap().to_owned();
            assert!(counts.contains_key(&d), "{c} lives in a deleted department");
            if c["status"] == "open" {
                *open.entry(d).or_insert(0) += 1;
            }
            let id = c["id"].as_str().unwrap().to_owned();
            let detail = self
                .staff(Method::GET, &format!("/conversations/{id}"), None)
                .await
                .body;
            *alerts_wanted
                .entry(("new_conversation".into(), id.clone()))
                .or_insert(0) += 1;
            for t in detail["transfers"].as_array().unwrap() {
                transfers += 1;
                *alerts_wanted
                    .entry(("transfer".into(), id.clone()))
                    .or_insert(0) += 1;
                let _ = t;
            }
        }
        for (d, count) in &counts {
            assert_eq!(
                *count,
                open.get(d).copied().unwrap_or(0),
                "open_conversations of {d}"
            );
        }
        // The dispatcher takes 100 pending alerts a run: run it until none is left.
        for _ in 0..1000 {
            self.api.deliver_alerts().await;
            if self
                .api
                .store
                .pending_alert_ids(1)
                .await
                .unwrap()
                .is_empty()
            {
                break;
            }
        }
        let mut alerts_got: BTreeMap<(String, String), usize> = BTreeMap::new();
        for s in self.api.recorder.sent() {
            let kind = serde_json::to_value(s.kind).unwrap();
            *alerts_got
                .entry((
                    kind.as_str().unwrap().to_owned(),
                    s.conversation_ids[0].as_str().to_owned(),
                ))
                .or_insert(0) += 1;
        }
        let differences: Vec<_> = alerts_wanted
            .keys()
            .chain(alerts_got.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|k| alerts_got.get(*k) != alerts_wanted.get(*k))
            .map(|k| (k, alerts_got.get(k), alerts_wanted.get(k)))
            .take(10)
            .collect();
        assert!(
            differences.is_empty(),
            "one alert per start and per move; (alert, delivered, wanted): {differences:?}"
        );
        assert_eq!(self.api.recorder.repeated_keys(), Vec::<String>::new());
        (conversations.len(), transfers)
    }
}

/// Runs every future at once (each on its own task) and answers their results in order.
async fn at_once<F>(futures: Vec<F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(futures.len()));
    let tasks: Vec<_> = futures
        .into_iter()
        .map(|f| {
            let b = barrier.clone();
            tokio::spawn(async move {
                b.wait().await;
                f.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("racer"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patches_with_the_same_if_match_one_wins_one_412_nothing_lost() {
    let w = Practice::new().await;
    let d = w.department("Grooming", true).await;
    let path = format!("/departments/{d}");
    let auth = format!("Bearer {}", Api::token(&w.p, Role::Admin));
    let started = Instant::now();
    let mut third_first = 0;
    for round in 0..rounds() {
        // Phase 1: two admins edit from the same version at once: exactly one wins, the other gets 412.
        let before = w.api.admin(&w.p, Method::GET, &path, None).await.body;
        let etag = before["etag"].as_str().unwrap().to_owned();
        let pair = |phase: &str| -> Vec<_> {
            (0..2)
                .map(|i| {
                    let (api, path, etag, auth) =
                        (w.api.clone(), path.clone(), etag.clone(), auth.clone());
                    let greeting = format!("round {round} {phase} admin {i}");
                    async move {
                        let body = json!({"chat": {"greeting": greeting}}).to_string();
                        let r = api
                            .raw(
                                Method::PATCH,
                                &path,
                                &[("authorization", &auth), ("if-match", &etag)],
                                Some(body),
                            )
                            .await;
                        (r.status, r.body)
                    }
                })
                .collect()
        };
        let results = at_once(pair("alone")).await;
        let statuses: Vec<StatusCode> = results.iter().map(|r| r.0).collect();
        let winner = match statuses.as_slice() {
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED] => 0,
            [StatusCode::PRECONDITION_FAILED, StatusCode::OK] => 1,
            other => panic!("round {round}: {other:?} {results:?}"),
        };
        assert_eq!(results[1 - winner].1["error"]["code"], "stale_etag");
        let after = w.api.admin(&w.p, Method::GET, &path, None).await.body;
        assert_eq!(
            after["chat"]["greeting"],
            format!("round {round} alone admin {winner}").as_str(),
            "round {round}: the winner's write is what is stored"
        );
        assert_eq!(after["etag"], results[winner].1["etag"], "round {round}");
        assert_ne!(after["etag"], before["etag"]);

        // Phase 2: the same pair, and a third admin changing another field without If-Match. The third
        // always lands; of the pair at most one wins (none if the third went first), and every write that
        // was answered 200 is in the end state.
        let etag2 = after["etag"].as_str().unwrap().to_owned();
        let etag = etag2;
        let mut racers: Vec<Racer> = Vec::new();
        for i in 0..2 {
            let (api, path, etag, auth) = (w.api.clone(), path.clone(), etag.clone(), auth.clone());
            let greeting = format!("round {round} with-third admin {i}");
            racers.push(Box::pin(async move {
                let body = json!({"chat": {"greeting": greeting}}).to_string();
                let r = api
                    .raw(
                        Method::PATCH,
                        &path,
                        &[("authorization", &auth), ("if-match", &etag)],
                        Some(body),
                    )
                    .await;
                (r.status, r.body)
            }));
        }
        {
            let (api, path, auth) = (w.api.clone(), path.clone(), auth.clone());
            let message = format!("closed, round {round}");
            racers.push(Box::pin(async move {
                let body = json!({"chat": {"after_hours_message": message}}).to_string();
                let r = api
                    .raw(
                        Method::PATCH,
                        &path,
                        &[("authorization", &auth)],
                        Some(body),
                    )
                    .await;
                (r.status, r.body)
            }));
        }
        let results = at_once(racers).await;
        assert_eq!(results[2].0, StatusCode::OK, "round {round}: {results:?}");
        let winners: Vec<usize> = (0..2).filter(|i| results[*i].0 == StatusCode::OK).collect();
        for i in 0..2 {
            assert!(
                matches!(
                    results[i].0,
                    StatusCode::OK | StatusCode::PRECONDITION_FAILED
                ),
                "round {round}: {results:?}"
            );
        }
        assert!(
            winners.len() <= 1,
            "round {round}: two PATCHes from one etag won: {results:?}"
        );
        let end = w.api.admin(&w.p, Method::GET, &path, None).await.body;
        assert_eq!(
            end["chat"]["after_hours_message"],
            format!("closed, round {round}").as_str(),
            "round {round}: the write without If-Match is kept"
        );
        match winners.first() {
            Some(i) => assert_eq!(
                end["chat"]["greeting"],
                format!("round {round} with-third admin {i}").as_str(),
                "round {round}: the winner's write is kept"
            ),
            None => {
                third_first += 1;
                assert_eq!(
                    end["chat"]["greeting"], after["chat"]["greeting"],
                    "round {round}"
                );
            }
        }
    }
    eprintln!(
        "{} rounds of 2 PATCHes with one If-Match (then again beside 1 without If-Match, which went \
         first {third_first} times) in {:?}",
        rounds(),
        started.elapsed()
    );
}

/// Seven admins each change another day's hours of one department at once, without If-Match (found by
/// the load run: with three re-plans, such a PATCH could answer 503): every PATCH answers 200 and every
/// day's change is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn patches_without_if_match_all_land() {
    let w = Practice::new().await;
    let d = w.department("Grooming", true).await;
    let path = format!("/departments/{d}");
    let started = Instant::now();
    let rounds = rounds().div_ceil(3);
    for round in 0..rounds {
        let racers: Vec<Racer> = DAYS
            .iter()
            .enumerate()
            .map(|(i, day)| {
                let (api, p, path) = (w.api.clone(), w.p.clone(), path.clone());
                let hours = json!({*day: {"start": format!("{:02}:00", 6 + i), "end": format!("{:02}:{:02}", 12 + i, round % 60)}});
                Box::pin(async move {
                    let r = api
                        .admin(&p, Method::PATCH, &path, Some(json!({ "hours": hours })))
                        .await;
                    (r.status, r.body)
                }) as Racer
            })
            .collect();
        let results = at_once(racers).await;
        for r in &results {
            assert_eq!(r.0, StatusCode::OK, "round {round}: {:?}", r.1);
        }
        let end = w.api.admin(&w.p, Method::GET, &path, None).await.body;
        for (i, day) in DAYS.iter().enumerate() {
            assert_eq!(
                end["hours"][*day]["end"],
                format!("{:02}:{:02}", 12 + i, round % 60).as_str(),
                "round {round}: {day} kept"
            );
        }
    }
    eprintln!(
        "{rounds} rounds of 7 PATCHes without If-Match at once in {:?}",
        started.elapsed()
    );
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_a_department_while_chats_start_in_it_is_all_or_nothing() {
    let w = Practice::new().await;
    let started = Instant::now();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    const CHATS: usize = 3;
    for round in 0..rounds() {
        let d = w.department(&format!("Round {round}"), true).await;
        let mut racers = Vec::new();
        for i in 0..=CHATS {
            let (api, p, d) = (w.api.clone(), w.p.clone(), d.clone());
            racers.push(async move {
                if i == CHATS / 2 {
                    // Spread the delete over the chats' read-then-write window.
                    tokio::time::sleep(std::time::Duration::from_millis((round % 4) as u64 * 3))
                        .await;
                    let r = api
                        .admin(&p, Method::DELETE, &format!("/departments/{d}"), None)
                        .await;
                    ("delete", r.status, r.body)
                } else {
                    let token = local::sign_token(
                        api::SECRET,
                        &p,
                        Role::Client,
                        &format!("r{round}-owner-{i}"),
                        chrono::Utc::now().timestamp(),
                        3600,
                    );
                    let r = api
                        .raw(
                            Method::POST,
                            "/inbound",
                            &[("authorization", &format!("Bearer {token}"))],
                            Some(
                                json!({"channel": "app", "department_id": d, "body": "hello"})
                                    .to_string(),
                            ),
                        )
                        .await;
                    ("chat", r.status, r.body)
                }
            });
        }
        let results = at_once(racers).await;
        let delete = results.iter().find(|r| r.0 == "delete").unwrap();
        let chats: Vec<_> = results.iter().filter(|r| r.0 == "chat").collect();
        let started_chats = chats.iter().filter(|r| r.1 == StatusCode::CREATED).count();
        let in_department = w
            .conversations()
            .await
            .into_iter()
            .filter(|c| c["department_id"] == d.as_str())
            .count();
        match delete.1 {
            StatusCode::NO_CONTENT => {
                outcomes
                    .entry("delete won")
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                assert_eq!(started_chats, 0, "round {round}: {results:?}");
                for c in &chats {
                    assert_eq!(
                        c.1,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "round {round}: {c:?}"
                    );
                    assert_eq!(c.2["error"]["code"], "department_not_visible");
                }
                assert_eq!(in_department, 0, "round {round}");
                let gone = w
                    .api
                    .admin(&w.p, Method::GET, &format!("/departments/{d}"), None)
                    .await;
                assert_eq!(gone.status, StatusCode::NOT_FOUND);
            }
            StatusCode::CONFLICT => {
                outcomes
                    .entry("a chat won")
                    .and_modify(|n| *n += 1)
                    .or_insert(1);
                assert_eq!(
                    delete.2["error"]["code"],
                    "department_has_open_conversations"
                );
                assert_eq!(started_chats, CHATS, "round {round}: {results:?}");
                assert_eq!(in_department, CHATS, "round {round}");
                let kept = w
                    .api
                    .admin(&w.p, Method::GET, &format!("/departments/{d}"), None)
                    .await;
                assert_eq!(kept.body["open_conversations"], CHATS as u64);
            }
            other => panic!("round {round}: delete answered {other}: {:?}", delete.2),
        }
    }
    let (conversations, _) = w.assert_consistent().await;
    eprintln!(
        "{} rounds of delete vs {CHATS} chats in {:?}: {outcomes:?}, {conversations} conversations",
        rounds(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ending_while_transferring_always_ends_and_moves_only_if_first() {
    let w = Practice::new().await;
    let vet = w.department("Telehealth Vet", false).await;
    let started = Instant::now();
    let mut transfers_won = 0;
    for round in 0..rounds() {
        let from = format!("+1201555{:04}", 1000 + round);
        let r = w.text(&from, "hello").await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = r.body["conversation_id"].as_str().unwrap().to_owned();
        let (a, b) = (w.api.clone(), w.api.clone());
        let (p1, p2, id1, id2, to) = (
            w.p.clone(),
            w.p.clone(),
            id.clone(),
            id.clone(),
            vet.clone(),
        );
        let end = async move {
            a.call(
                &p1,
                Role::Staff,
                Method::POST,
                &format!("/conversations/{id1}/end"),
                None,
            )
            .await
        };
        let transfer = async move {
            b.call(
                &p2,
                Role::Staff,
                Method::POST,
                &format!("/conversations/{id2}/transfer"),
                Some(json!({"department_id": to})),
            )
            .await
        };
        let (ended, moved) = tokio::join!(tokio::spawn(end), tokio::spawn(transfer));
        let (ended, moved) = (ended.unwrap(), moved.unwrap());
        assert_eq!(
            ended.status,
            StatusCode::OK,
            "round {round}: {:?}",
            ended.body
        );
        assert_eq!(ended.body["status"], "resolved");
        let detail = w
            .staff(Method::GET, &format!("/conversations/{id}"), None)
            .await
            .body;
        assert_eq!(detail["status"], "resolved", "round {round}");
        let history = detail["transfers"].as_array().unwrap();
        match moved.status {
            StatusCode::OK => {
                transfers_won += 1;
                assert_eq!(history.len(), 1, "round {round}");
                assert_eq!(detail["department_id"], vet.as_str(), "round {round}");
                assert_eq!(ended.body["department_id"], vet.as_str(), "round {round}");
            }
            StatusCode::CONFLICT => {
                assert_eq!(moved.code(), "conversation_resolved", "round {round}");
                assert_eq!(history.len(), 0, "round {round}");
                assert_eq!(detail["department_id"], w.team.as_str(), "round {round}");
            }
            other => panic!("round {round}: transfer answered {other}: {:?}", moved.body),
        }
        // The client's claim was released: the next text starts a new conversation.
        let next = w.text(&from, "me again").await;
        assert_eq!(
            next.status,
            StatusCode::CREATED,
            "round {round}: {:?}",
            next.body
        );
        assert_ne!(next.body["conversation_id"], id.as_str());
    }
    let (conversations, transfers) = w.assert_consistent().await;
    assert_eq!(transfers, transfers_won);
    eprintln!(
        "{} rounds of end vs transfer in {:?}: transfer first {transfers_won} times; {conversations} conversations",
        rounds(),
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transfers_at_once_make_one_chain() {
    let w = Practice::new().await;
    let a = w.department("Alpha", false).await;
    let b = w.department("Beta", false).await;
    let started = Instant::now();
    let mut moves = 0;
    // Three transfers of one conversation conflict on its items and back off: a third of the rounds.
    let rounds = rounds().div_ceil(3);
    for round in 0..rounds {
        let r = w
            .text(&format!("+1201555{:04}", 3000 + round), "hello")
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let id = r.body["conversation_id"].as_str().unwrap().to_owned();
        let targets = [a.clone(), b.clone(), a.clone()];
        let racers: Vec<_> = targets
            .iter()
            .map(|to| {
                let (api, p, id, to) = (w.api.clone(), w.p.clone(), id.clone(), to.clone());
                async move {
                    api.call(
                        &p,
                        Role::Staff,
                        Method::POST,
                        &format!("/conversations/{id}/transfer"),
                        Some(json!({"department_id": to})),
                    )
                    .await
                }
            })
            .collect();
        let results = at_once(racers).await;
        let mut won = 0;
        for (to, r) in targets.iter().zip(&results) {
            match r.status {
                StatusCode::OK => {
                    won += 1;
                    assert_eq!(r.body["department_id"], to.as_str(), "round {round}");
                }
                StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(r.code(), "same_department"),
                other => panic!("round {round}: {other} {:?}", r.body),
            }
        }
        assert!(won >= 1, "round {round}: somebody moves it");
        let detail = w
            .staff(Method::GET, &format!("/conversations/{id}"), None)
            .await
            .body;
        let history = detail["transfers"].as_array().unwrap();
        assert_eq!(history.len(), won, "round {round}: one record per move");
        // The moves form one path from the default department to where the conversation is: every
        // department is left as often as entered, except the start (left once more) and the end (entered
        // once more). And the history lists them in the order they were committed: a chain.
        let mut balance: BTreeMap<String, i64> = BTreeMap::new();
        for t in history {
            assert_ne!(t["from"], t["to"], "round {round}");
            *balance
                .entry(t["from"].as_str().unwrap().to_owned())
                .or_insert(0) -= 1;
            *balance
                .entry(t["to"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        *balance.entry(w.team.clone()).or_insert(0) += 1;
        *balance
            .entry(detail["department_id"].as_str().unwrap().to_owned())
            .or_insert(0) -= 1;
        assert!(
            balance.values().all(|b| *b == 0),
            "round {round}: {history:?} ends in {}",
            detail["department_id"]
        );
        let chained = history[0]["from"] == w.team.as_str()
            && history.windows(2).all(|p| p[0]["to"] == p[1]["from"])
            && history.last().unwrap()["to"] == detail["department_id"];
        assert!(
            chained,
            "round {round}: the history is not listed in commit order: {history:?} ends in {}",
            detail["department_id"]
        );
        assert_eq!(detail["status"], "open");
        moves += won;
    }
    let (conversations, transfers) = w.assert_consistent().await;
    assert_eq!(transfers, moves);
    eprintln!(
        "{} rounds of 3 transfers at once in {:?}: {moves} moves; {conversations} conversations; \
         every history a chain in commit order",
        rounds,
        started.elapsed()
    );
}
