//! DynamoDB under trouble, through the HTTP API: a proxy in front of DynamoDB Local
//! (`vetchat_tests::fault_proxy`) throttles, fails, stalls and drops answers on purpose, and the service
//! runs with its own SDK retry and timeout settings (`adapters::aws`). After every scenario the store is
//! checked against what was sent: every message stored once, every count right, every alert delivered once.
//!
//! Also here: a function killed between two steps of an alert delivery, and alerts written during an
//! SES/SNS outage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use adapters::aws::{ATTEMPT_TIMEOUT, MAX_ATTEMPTS, OPERATION_TIMEOUT};
use adapters::senders::FaultySender;
use adapters::store::DynamoStore;
use domain::alert::AlertSender;
use domain::identity::Role;
use http::{Method, StatusCode};
use serde_json::{json, Value};
use vetchat_tests::api::{always_open, Api, Reply, DASHBOARD};
use vetchat_tests::fault_proxy::{Fault, FaultProxy};

/// The faults a retry must absorb (DropResponse has its own test: the write is applied).
const RETRIED: [Fault; 4] = [
    Fault::Throttling,
    Fault::ProvisionedThroughputExceeded,
    Fault::InternalServerError,
    Fault::Stall,
];

/// A practice on a DynamoDB Local table reached through the fault proxy: the default department and a
/// "Telehealth Vet" department, both open around the clock with alerts to one address each.
struct World {
    proxy: FaultProxy,
    api: Api,
    store: Arc<DynamoStore>,
    p: String,
    team: String,
    vet: String,
}

impl World {
    async fn new() -> World {
        let proxy = FaultProxy::start().await;
        let store = Arc::new(vetchat_tests::dynamo_store_at(&proxy.url()).await);
        let api = Api::with_store(store.clone());
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
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let vet = api
            .add_department(
                &p,
                json!({"name": "Telehealth Vet", "visible_in_app": true, "hours": always_open(),
                       "alerts": {"enabled": true, "emails": "dr.lee@happypaws.example"}}),
            )
            .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        proxy.forget();
        World {
            proxy,
            api,
            store,
            p,
            team,
            vet,
        }
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

    async fn transfer(&self, id: &str, to: &str) -> Reply {
        self.staff(
            Method::POST,
            &format!("/conversations/{id}/transfer"),
            Some(json!({"department_id": to, "note": "over to you"})),
        )
        .await
    }

    async fn end(&self, id: &str) -> Reply {
        self.staff(Method::POST, &format!("/conversations/{id}/end"), None)
            .await
    }

    async fn detail(&self, id: &str) -> Value {
        let r = self
            .staff(Method::GET, &format!("/conversations/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body
    }

    async fn department(&self, id: &str) -> Value {
        let r = self
            .api
            .admin(&self.p, Method::GET, &format!("/departments/{id}"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body
    }

    /// Every conversation of the practice, through the list endpoint (all pages).
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

    /// Checks the store against what was sent, through the API (with no faults scheduled): the
    /// conversations are exactly `expected` (id → the client's message bodies in order, its department,
    /// its status, its number of transfers), each department's `open_conversations` is the number of open
    /// conversations in it, and once the alerts are delivered each department address got exactly one
    /// new-conversation alert per conversation started there and one transfer alert per transfer into it.
    async fn assert_the_truth(&self, expected: &BTreeMap<String, Expected>) {
        let listed = self.conversations().await;
        let listed_ids: Vec<&str> = listed.iter().map(|c| c["id"].as_str().unwrap()).collect();
        let mut want_ids: Vec<&str> = expected.keys().map(String::as_str).collect();
        let mut got_ids = listed_ids.clone();
        want_ids.sort();
        got_ids.sort();
        assert_eq!(got_ids, want_ids, "the conversations stored");
        let mut open: BTreeMap<&str, u64> = BTreeMap::new();
        let mut new_alerts: BTreeMap<String, usize> = BTreeMap::new();
        let mut transfer_alerts: BTreeMap<String, usize> = BTreeMap::new();
        for (id, want) in expected {
            let d = self.detail(id).await;
            let bodies: Vec<&str> = d["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["author"]["kind"] == "client")
                .map(|m| m["body"].as_str().unwrap())
                .collect();
            assert_eq!(bodies, want.bodies, "messages of {id}: each stored once");
            assert_eq!(d["department_id"], want.department.as_str(), "{id}");
            assert_eq!(
                d["status"],
                if want.open { "open" } else { "resolved" },
                "{id}"
            );
            let transfers = d["transfers"].as_array().unwrap();
            assert_eq!(transfers.len(), want.transfers.len(), "transfers of {id}");
            for (t, to) in transfers.iter().zip(&want.transfers) {
                assert_eq!(t["to"], to.as_str(), "{id}");
                *transfer_alerts.entry(format!("{id} {to}")).or_insert(0) += 1;
            }
            if want.open {
                *open.entry(want.department.as_str()).or_insert(0) += 1;
            }
            *new_alerts.entry(id.clone()).or_insert(0) += 1;
        }
        for d in [&self.team, &self.vet] {
            assert_eq!(
                self.department(d).await["open_conversations"],
                open.get(d.as_str()).copied().unwrap_or(0),
                "open_conversations of {d}"
            );
        }

        // The alerts: each delivered once (run the dispatcher twice: the second finds nothing to do).
        self.api.deliver_alerts().await;
        self.api.deliver_alerts().await;
        assert_eq!(
            vetchat_tests::dynamo_pending_alerts(&self.store).await,
            vec![],
            "no alert left pending"
        );
        let sent = self.api.recorder.sent();
        let mut got_new: BTreeMap<String, usize> = BTreeMap::new();
        let mut got_transfer: BTreeMap<String, usize> = BTreeMap::new();
        for s in &sent {
            let s = serde_json::to_value(s).unwrap();
            let conversation = s["conversation_ids"][0].as_str().unwrap().to_owned();
            match s["kind"].as_str().unwrap() {
                "new_conversation" => *got_new.entry(conversation).or_insert(0) += 1,
                "transfer" => {
                    *got_transfer
                        .entry(format!(
                            "{conversation} {}",
                            s["department_id"].as_str().unwrap()
                        ))
                        .or_insert(0) += 1
                }
                other => panic!("unexpected alert {other}"),
            }
        }
        assert_eq!(got_new, new_alerts, "one new-conversation alert each");
        assert_eq!(got_transfer, transfer_alerts, "one transfer alert each");
        assert_eq!(
            self.api.recorder.repeated_keys(),
            Vec::<String>::new(),
            "nobody got an alert twice"
        );
    }
}

/// What one conversation must hold.
#[derive(Debug, Clone)]
struct Expected {
    bodies: Vec<String>,
    department: String,
    open: bool,
    transfers: Vec<String>,
}

impl Expected {
    fn new(department: &str, body: &str) -> Expected {
        Expected {
            bodies: vec![body.to_owned()],
            department: department.to_owned(),
            open: true,
            transfers: Vec::new(),
        }
    }
}

fn id_of(r: &Reply) -> String {
    r.body["conversation_id"]
        .as_str()
        .or_else(|| r.body["id"].as_str())
        .unwrap_or_else(|| panic!("no id in {:?}", r.body))
        .to_owned()
}

/// Throttling, 500s and stalled attempts, a few in a row (fewer than the SDK's retries) before every
/// request of every kind: each request succeeds, slower, and the store ends exactly as without faults.
#[tokio::test]
async fn throttling_errors_and_stalls_are_retried_and_everything_is_stored_once() {
    let w = World::new().await;
    let mut expected = BTreeMap::new();
    let retries = (MAX_ATTEMPTS - 1) as usize;
    for (i, fault) in RETRIED.into_iter().enumerate() {
        // A stall costs a whole attempt timeout; one per operation is enough to prove it is retried.
        let times = if fault == Fault::Stall { 1 } else { retries };
        let from = format!("+1201555{:04}", 100 + i);

        // A new conversation: the read and the transaction each meet the fault first.
        w.proxy.inject(Some("BatchGetItem"), fault, times);
        w.proxy.inject(Some("TransactWriteItems"), fault, times);
        let first = w.text(&from, &format!("first {i}")).await;
        assert_eq!(
            first.status,
            StatusCode::CREATED,
            "{fault:?}: {:?}",
            first.body
        );
        let id = id_of(&first);
        expected.insert(id.clone(), Expected::new(&w.team, &format!("first {i}")));

        // The client writes again (append), staff transfer it and, every other time, end it.
        w.proxy.inject(Some("TransactWriteItems"), fault, times);
        let again = w.text(&from, &format!("again {i}")).await;
        assert_eq!(again.status, StatusCode::OK, "{fault:?}: {:?}", again.body);
        assert_eq!(id_of(&again), id);
        expected
            .get_mut(&id)
            .unwrap()
            .bodies
            .push(format!("again {i}"));

        w.proxy.inject(Some("TransactWriteItems"), fault, times);
        let moved = w.transfer(&id, &w.vet).await;
        assert_eq!(moved.status, StatusCode::OK, "{fault:?}: {:?}", moved.body);
        let e = expected.get_mut(&id).unwrap();
        e.department = w.vet.clone();
        e.transfers.push(w.vet.clone());

        if i % 2 == 0 {
            w.proxy.inject(Some("TransactWriteItems"), fault, times);
            let ended = w.end(&id).await;
            assert_eq!(ended.status, StatusCode::OK, "{fault:?}: {:?}", ended.body);
            expected.get_mut(&id).unwrap().open = false;
        }

        // A settings change meets the fault on whatever it sends first.
        w.proxy.inject(None, fault, times);
        let greeting = format!("Hello #{i}");
        let r = w
            .api
            .admin(
                &w.p,
                Method::PATCH,
                &format!("/departments/{}", w.vet),
                Some(json!({"chat": {"greeting": greeting}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{fault:?}: {:?}", r.body);
        assert_eq!(
            w.department(&w.vet).await["chat"]["greeting"],
            greeting.as_str()
        );
    }
    let injected = w.proxy.injected();
    eprintln!("faults injected: {injected:?}");
    for fault in RETRIED {
        assert!(
            injected.get(&fault).copied().unwrap_or(0) > 0,
            "{fault:?} was never injected"
        );
    }
    w.assert_the_truth(&expected).await;
}

/// A DynamoDB that keeps failing: every write answers 503 `unavailable` within the operation timeout, and
/// nothing of it is stored (no conversation, no count, no alert, no settings change). Once DynamoDB is
/// back, the same request succeeds once.
#[tokio::test]
async fn a_store_that_keeps_failing_answers_503_and_writes_nothing() {
    let w = World::new().await;
    let before = w.department(&w.vet).await;
    let mut expected = BTreeMap::new();
    for (i, fault) in RETRIED.into_iter().enumerate() {
        let from = format!("+1201555{:04}", 200 + i);
        let alerts_before = vetchat_tests::dynamo_pending_alerts(&w.store).await.len();
        w.proxy.inject_always(Some("TransactWriteItems"), fault);
        w.proxy.inject_always(Some("UpdateItem"), fault);
        let started = Instant::now();
        let r = w.text(&from, "anyone there?").await;
        let took = started.elapsed();
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "unavailable", "{fault:?}");
        assert!(
            took < OPERATION_TIMEOUT + Duration::from_secs(2),
            "{fault:?}: answered after {took:?}"
        );

        let r = w
            .api
            .admin(
                &w.p,
                Method::PATCH,
                &format!("/departments/{}", w.vet),
                Some(json!({"chat": {"greeting": "never stored"}, "name": "Never"})),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{fault:?}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "unavailable");

        w.proxy.heal();
        assert_eq!(
            w.conversations().await.len(),
            i,
            "{fault:?}: nothing stored (only the earlier rounds' conversations)"
        );
        assert_eq!(
            vetchat_tests::dynamo_pending_alerts(&w.store).await.len(),
            alerts_before,
            "{fault:?}: no new alert"
        );
        assert_eq!(
            w.department(&w.vet).await,
            before,
            "{fault:?}: settings unchanged"
        );
        assert_eq!(w.department(&w.team).await["open_conversations"], 0);

        // Back up: the retry of the same text is stored once.
        let r = w.text(&from, "anyone there?").await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let id = id_of(&r);
        let end = w.end(&id).await;
        assert_eq!(end.status, StatusCode::OK);
        let mut e = Expected::new(&w.team, "anyone there?");
        e.open = false;
        expected.insert(id, e);
        // Only the conversations of earlier rounds (all ended) exist.
        assert_eq!(w.conversations().await.len(), i + 1);
    }
    eprintln!("faults injected: {:?}", w.proxy.injected());
    w.assert_the_truth(&expected).await;
}

/// DynamoDB applies a write and its answer is lost (the proxy forwards, then holds the answer past the
/// attempt timeout): the SDK sends it again. Nothing is doubled: a transaction's retry carries the same
/// `ClientRequestToken`, and the store recognises a conditional write of its own that is already there.
#[tokio::test]
async fn a_lost_answer_doubles_nothing() {
    let w = World::new().await;
    let mut expected = BTreeMap::new();

    w.proxy
        .inject(Some("TransactWriteItems"), Fault::DropResponse, 1);
    let first = w
        .text("+12015550300", "lost answer, new conversation")
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let id = id_of(&first);
    expected.insert(
        id.clone(),
        Expected::new(&w.team, "lost answer, new conversation"),
    );
    let tokens: Vec<_> = w
        .proxy
        .seen()
        .into_iter()
        .filter(|s| s.operation == "TransactWriteItems")
        .map(|s| s.client_request_token)
        .collect();
    assert!(
        tokens.len() >= 2,
        "the transaction was sent again: {tokens:?}"
    );
    assert!(tokens[0].is_some(), "a ClientRequestToken");
    assert!(
        tokens.windows(2).all(|t| t[0] == t[1]),
        "every attempt carries the same token: {tokens:?}"
    );

    w.proxy
        .inject(Some("TransactWriteItems"), Fault::DropResponse, 1);
    let again = w.text("+12015550300", "lost answer, append").await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    expected
        .get_mut(&id)
        .unwrap()
        .bodies
        .push("lost answer, append".into());

    w.proxy
        .inject(Some("TransactWriteItems"), Fault::DropResponse, 1);
    let moved = w.transfer(&id, &w.vet).await;
    assert_eq!(moved.status, StatusCode::OK, "{:?}", moved.body);
    let e = expected.get_mut(&id).unwrap();
    e.department = w.vet.clone();
    e.transfers.push(w.vet.clone());

    w.proxy
        .inject(Some("TransactWriteItems"), Fault::DropResponse, 1);
    let ended = w.end(&id).await;
    assert_eq!(ended.status, StatusCode::OK, "{:?}", ended.body);
    expected.get_mut(&id).unwrap().open = false;

    // A settings write whose answer is lost: applied once, answered 200, the etag moved once.
    let etag = w.department(&w.vet).await["etag"].clone();
    w.proxy.inject(Some("UpdateItem"), Fault::DropResponse, 1);
    let r = w
        .api
        .raw(
            Method::PATCH,
            &format!("/departments/{}", w.vet),
            &[
                (
                    "authorization",
                    &format!("Bearer {}", Api::token(&w.p, Role::Admin)),
                ),
                ("if-match", etag.as_str().unwrap()),
            ],
            Some(json!({"chat": {"greeting": "Applied once"}}).to_string()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let after = w.department(&w.vet).await;
    assert_eq!(after["chat"]["greeting"], "Applied once");
    assert_eq!(r.body["etag"], after["etag"]);

    // The dispatcher's bookkeeping loses answers. A lost answer to a claim: the claim holds its lease
    // (the dispatcher cannot tell its own lost claim from another's), so that delivery waits for the lease
    // and then goes, once.
    w.proxy
        .inject_nth(Some("UpdateItem"), 1, Fault::DropResponse);
    w.api.deliver_alerts().await;
    let pending = w.api.store.pending_alert_ids(10).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the alert whose claim answer was lost waits"
    );
    assert_eq!(w.api.recorder.sent().len(), 1, "the other alert went");
    // After the lease; and this time the answer to the outcome record is lost (claim, send, record):
    // the retried record finds the outcome there, nothing is sent twice.
    w.proxy
        .inject_nth(Some("UpdateItem"), 2, Fault::DropResponse);
    let after_lease =
        adapters::now() + domain::alert::dispatch::CLAIM_LEASE + chrono::Duration::seconds(1);
    let report = domain::alert::dispatch::dispatch_alert(
        &*w.api.store,
        &w.api.recorder,
        &pending[0],
        after_lease,
        DASHBOARD,
    )
    .await
    .expect("dispatch");
    assert_eq!((report.sent, report.pending, report.done), (1, 0, true));
    assert_eq!(
        w.proxy.injected().get(&Fault::DropResponse).copied(),
        Some(7),
        "every scheduled answer was lost"
    );
    eprintln!("faults injected: {:?}", w.proxy.injected());
    w.assert_the_truth(&expected).await;
}

/// The SDK's settings are the ones `adapters::aws` documents.
#[tokio::test]
async fn the_sdk_settings_are_the_chosen_ones() {
    let config = adapters::config::Config::from_env().expect("configuration");
    let sdk = adapters::aws::sdk_config(&config)
        .await
        .expect("SDK configuration");
    let retry = sdk.retry_config().expect("a retry config");
    assert_eq!(retry.mode(), aws_config::retry::RetryMode::Standard);
    assert_eq!(retry.max_attempts(), MAX_ATTEMPTS);
    assert_eq!(retry.initial_backoff(), adapters::aws::INITIAL_BACKOFF);
    assert_eq!(retry.max_backoff(), adapters::aws::MAX_BACKOFF);
    let timeouts = sdk.timeout_config().expect("timeouts");
    assert_eq!(timeouts.operation_attempt_timeout(), Some(ATTEMPT_TIMEOUT));
    assert_eq!(timeouts.operation_timeout(), Some(OPERATION_TIMEOUT));
    assert_eq!(
        timeouts.connect_timeout(),
        Some(adapters::aws::CONNECT_TIMEOUT)
    );
    // Two operations in a row fit the Lambda's 10 s, and several attempts fit one operation.
    assert!(OPERATION_TIMEOUT * 2 < Duration::from_secs(10));
    assert!(ATTEMPT_TIMEOUT * 2 < OPERATION_TIMEOUT);
}

// ---------------------------------------------------------------------------------------------------------
// A function killed between two steps; SES/SNS outages (both stores)
// ---------------------------------------------------------------------------------------------------------

/// Alerts written while SES and SNS are down stay pending through every dispatcher run of the outage,
/// and once the providers are back each recipient gets each alert exactly once.
async fn alerts_written_during_an_outage_are_each_delivered_once_after_it(api: Api) {
    let p = Api::practice_id();
    let team = api.setup_practice(&p).await;
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{team}"),
        Some(json!({"hours": always_open(), "alerts": {"enabled": true,
              "emails": "desk@happypaws.example, vet@happypaws.example", "sms_numbers": ["+12015550123"]}})),
    )
    .await;
    let sender = FaultySender::new(api.recorder.clone());
    sender.outage(true);
    let mut conversations = Vec::new();
    for i in 0..6 {
        let r = api
            .call(&p, Role::Integration, Method::POST, "/inbound",
                  Some(json!({"channel": "sms", "from": format!("+1201555{:04}", 400 + i), "body": "hi"})))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        conversations.push(id_of(&r));
        // The dispatcher runs during the outage, again and again.
        local::dispatch_pending(&*api.store, &sender, DASHBOARD).await;
    }
    assert!(
        sender.calls() >= 6 * 3,
        "every run tried: {}",
        sender.calls()
    );
    assert!(api.recorder.sent().is_empty(), "nothing got through");

    sender.outage(false);
    local::dispatch_pending(&*api.store, &sender, DASHBOARD).await;
    local::dispatch_pending(&*api.store, &sender, DASHBOARD).await;
    let sent = api.recorder.sent();
    assert_eq!(sent.len(), 6 * 3, "three recipients of six alerts");
    assert_eq!(api.recorder.repeated_keys(), Vec::<String>::new());
    for c in &conversations {
        let to: Vec<String> = sent
            .iter()
            .filter(|s| s.conversation_ids.iter().any(|x| x.as_str() == c))
            .map(|s| s.to.clone())
            .collect();
        assert_eq!(to.len(), 3, "{c}: {to:?}");
    }
    assert_eq!(api.store.pending_alert_ids(100).await.unwrap(), vec![]);
}

/// A dispatcher that claimed a delivery and died before sending it: the claim holds its lease, so no
/// other run sends it meanwhile (nor loses it), and the first run after the lease sends it, once.
async fn a_dispatcher_killed_after_claiming_is_replaced_after_the_lease(api: Api) {
    let p = Api::practice_id();
    let team = api.setup_practice(&p).await;
    api.admin(
        &p,
        Method::PATCH,
        &format!("/departments/{team}"),
        Some(json!({"hours": always_open(), "alerts": {"enabled": true, "emails": "desk@happypaws.example, vet@happypaws.example"}})),
    )
    .await;
    let r = api
        .call(
            &p,
            Role::Integration,
            Method::POST,
            "/inbound",
            Some(json!({"channel": "sms", "from": "+12015550500", "body": "hi"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let ids = api.store.pending_alert_ids(100).await.unwrap();
    assert_eq!(ids.len(), 1);
    let id = &ids[0];
    let t = adapters::now();

    // The first dispatcher: claims the first delivery, then the process is killed (nothing sent).
    struct Killed;
    #[async_trait::async_trait]
    impl AlertSender for Killed {
        async fn send(&self, _: &domain::alert::Delivery) -> Result<(), domain::alert::SendError> {
            futures_never().await
        }
    }
    let killed = tokio::time::timeout(
        Duration::from_millis(300),
        domain::alert::dispatch::dispatch_alert(&*api.store, &Killed, id, t, DASHBOARD),
    )
    .await;
    assert!(killed.is_err(), "the first dispatcher was killed mid-send");

    // A second run within the lease (the stream's retry): sends the other delivery, leaves the claimed one.
    let later = t + chrono::Duration::seconds(5);
    let report =
        domain::alert::dispatch::dispatch_alert(&*api.store, &api.recorder, id, later, DASHBOARD)
            .await
            .unwrap();
    assert_eq!((report.sent, report.pending, report.done), (1, 1, false));
    assert_eq!(
        api.store.pending_alert_ids(100).await.unwrap(),
        vec![id.clone()]
    );

    // After the lease: the claimed one goes out, once, and the alert is done.
    let after = t + domain::alert::dispatch::CLAIM_LEASE + chrono::Duration::seconds(1);
    let report =
        domain::alert::dispatch::dispatch_alert(&*api.store, &api.recorder, id, after, DASHBOARD)
            .await
            .unwrap();
    assert_eq!((report.sent, report.pending, report.done), (1, 0, true));
    let mut to: Vec<String> = api.recorder.sent().into_iter().map(|s| s.to).collect();
    to.sort();
    assert_eq!(to, vec!["desk@happypaws.example", "vet@happypaws.example"]);
    assert_eq!(api.recorder.repeated_keys(), Vec::<String>::new());
    assert_eq!(api.store.pending_alert_ids(100).await.unwrap(), vec![]);
}

/// A future that never completes (a send that hangs until the process is killed).
async fn futures_never() -> Result<(), domain::alert::SendError> {
    std::future::pending().await
}

vetchat_tests::on_every_store!(
    alerts_written_during_an_outage_are_each_delivered_once_after_it,
    a_dispatcher_killed_after_claiming_is_replaced_after_the_lease,
);
