//! An in-process client of the local server's router: the same handlers, auth and error mapping as the
//! running server, without a socket. `Api::memory()` and `Api::dynamo()` give the two stores;
//! [`crate::on_every_store!`] hands one on each store to a test taking an `Api`.

use std::sync::Arc;

use adapters::senders::RecordingSender;
use axum::body::Body;
use axum::Router;
use domain::identity::Role;
use domain::store::Store;
use domain::texting::TextSender;
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

pub const SECRET: &str = "test-secret";
pub const DASHBOARD: &str = "https://dashboard.example/app";

/// Weekly hours open every day, all day.
pub fn always_open() -> Value {
    let day = serde_json::json!({"start": "00:00", "end": "24:00"});
    serde_json::json!({"mon": day, "tue": day, "wed": day, "thu": day, "fri": day, "sat": day, "sun": day})
}

pub struct Api {
    app: Router,
    pub store: Arc<dyn Store>,
    /// What `GET /_local/sent` shows: the alerts the local sender took.
    pub recorder: RecordingSender,
    /// The store's change feed, when it has one: what [`Api::deliver_texts`] sends from.
    changes: Option<Arc<tokio::sync::Mutex<Changes>>>,
}

type Changes = tokio::sync::mpsc::UnboundedReceiver<Vec<domain::realtime::Change>>;

impl From<crate::TestStore> for Api {
    /// On the test's store, with a change feed (the texts its writes leave to send).
    fn from(store: crate::TestStore) -> Api {
        let (feed, changes) = adapters::store::ChangeFeed::channel();
        let store: Arc<dyn Store> = match store {
            crate::TestStore::Embedded(s, _) => Arc::new((*s).clone().with_change_feed(feed)),
            crate::TestStore::Dynamo(s) => Arc::new((*s).clone().with_change_feed(feed)),
        };
        let mut api = Api::with_store(store);
        api.changes = Some(Arc::new(tokio::sync::Mutex::new(changes)));
        api
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    /// The contract's error code, if this is an error.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

impl Api {
    pub fn with_store(store: Arc<dyn Store>) -> Api {
        let services = local::LocalServices::recording(DASHBOARD, "ws://127.0.0.1:3000/ws");
        Api::with_services(store, services)
    }

    /// On `store` with the local-only services given (a live server's sockets and WebSocket URL).
    pub fn with_services(store: Arc<dyn Store>, services: local::LocalServices) -> Api {
        let recorder = services.recorder.clone();
        Api {
            app: local::app(store.clone(), SECRET, services),
            store,
            recorder,
            changes: None,
        }
    }

    pub async fn memory() -> Api {
        Api::with_store(Arc::new(adapters::store::EmbeddedStore::in_memory()))
    }

    pub async fn dynamo() -> Api {
        Api::with_store(Arc::new(crate::fresh_dynamo_store().await))
    }

    /// Runs the dispatcher over every pending alert, as the local worker does every half second.
    pub async fn deliver_alerts(&self) {
        local::dispatch_pending(&*self.store, &self.recorder, DASHBOARD).await;
    }

    /// Sends the texts the changes committed so far left queued, as the local server's worker does as they
    /// commit (the stream-triggered sender on AWS). Panics on an `Api` built without a change feed.
    pub async fn deliver_texts(&self) {
        self.deliver_texts_with(&self.recorder).await;
    }

    /// [`Api::deliver_texts`] through `sender`.
    pub async fn deliver_texts_with(&self, sender: &dyn TextSender) {
        let changes = self
            .changes
            .as_ref()
            .expect("deliver_texts needs an Api built from a TestStore (with a change feed)");
        let mut changes = changes.lock().await;
        while let Ok(batch) = changes.try_recv() {
            local::send_texts(&*self.store, sender, &batch).await;
        }
    }

    /// Drops the changes committed so far without sending their texts: the stream records a sender never
    /// got (the dispatcher's retries exhausted, the record on the dead-letter queue).
    pub async fn lose_changes(&self) {
        let changes = self
            .changes
            .as_ref()
            .expect("lose_changes needs an Api built from a TestStore (with a change feed)");
        let mut changes = changes.lock().await;
        while changes.try_recv().is_ok() {}
    }

    /// A fresh, unique practice id (tests on a shared table must not meet).
    pub fn practice_id() -> String {
        format!("prc_{}", ulid::Ulid::new().to_string().to_lowercase())
    }

    pub fn token(practice: &str, role: Role) -> String {
        Api::token_as(practice, role, &format!("{}-1", role.as_str()))
    }

    /// A token of `practice` for the user `sub` (a given pet owner, a given staff member), valid an hour.
    pub fn token_as(practice: &str, role: Role, sub: &str) -> String {
        let now = chrono::Utc::now().timestamp();
        local::sign_token(SECRET, practice, role, sub, now, 3600)
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let has_body = body.is_some();
        if has_body {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("JSON body")
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A request whose answer need not be JSON (the pages of `web/`): status, headers and the bytes.
    pub async fn fetch(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut builder = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let response = self
            .app
            .clone()
            .oneshot(builder.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    /// A call as `role` of `practice`.
    pub async fn call(
        &self,
        practice: &str,
        role: Role,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let auth = format!("Bearer {}", Api::token(practice, role));
        self.raw(
            method,
            path,
            &[("authorization", &auth)],
            body.map(|b| b.to_string()),
        )
        .await
    }

    /// A call as the user `sub` with `role` of `practice` (a given pet owner, a given staff member).
    pub async fn call_as(
        &self,
        practice: &str,
        role: Role,
        sub: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let auth = format!("Bearer {}", Api::token_as(practice, role, sub));
        self.raw(
            method,
            path,
            &[("authorization", &auth)],
            body.map(|b| b.to_string()),
        )
        .await
    }

    pub async fn admin(
        &self,
        practice: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        self.call(practice, Role::Admin, method, path, body).await
    }

    pub async fn public(&self, path: &str) -> Reply {
        self.raw(Method::GET, path, &[], None).await
    }

    /// Sets up a practice (US, New York) and returns its default department id.
    pub async fn setup_practice(&self, practice: &str) -> String {
        let r = self
            .admin(
                practice,
                Method::PUT,
                "/practice",
                Some(serde_json::json!({"name": "Happy Paws", "timezone": "America/New_York", "country": "US"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["default_department_id"].as_str().unwrap().to_owned()
    }

    /// [`Api::setup_practice`], with the default department open around the clock.
    pub async fn setup_open_practice(&self, practice: &str) -> String {
        let default_id = self.setup_practice(practice).await;
        let r = self
            .admin(
                practice,
                Method::PATCH,
                &format!("/departments/{default_id}"),
                Some(serde_json::json!({"hours": always_open()})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        default_id
    }

    /// A practice texting from `practice_number`, and a client's first text to it from `from`: the new
    /// conversation's id (what the replies-by-text tests start from).
    pub async fn texted_conversation(
        &self,
        practice: &str,
        practice_number: &str,
        from: &str,
    ) -> String {
        let r = self
            .admin(
                practice,
                Method::PUT,
                "/practice",
                Some(
                    serde_json::json!({"name": "Happy Paws", "timezone": "America/New_York",
                                        "country": "US", "sms_numbers": [practice_number]}),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let r = self
            .call(
                practice,
                Role::Integration,
                Method::POST,
                "/inbound",
                Some(serde_json::json!({"channel": "sms", "from": from, "body": "Is Rex ready?"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["conversation_id"].as_str().unwrap().to_owned()
    }

    /// A staff reply `body` in conversation `id`, as answered.
    pub async fn staff_reply(&self, practice: &str, id: &str, body: &str) -> Reply {
        self.call(
            practice,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages"),
            Some(serde_json::json!({ "body": body })),
        )
        .await
    }

    /// A staff retry of the text reply `message` in conversation `id`, as answered.
    pub async fn retry_text(&self, practice: &str, id: &str, message: &str) -> Reply {
        self.call(
            practice,
            Role::Staff,
            Method::POST,
            &format!("/conversations/{id}/messages/{message}/retry"),
            None,
        )
        .await
    }

    /// One department's entry in the public availability of `practice` at `at` (RFC 3339; now when `None`).
    pub async fn availability_of(
        &self,
        practice: &str,
        department_id: &str,
        at: Option<&str>,
    ) -> Value {
        let query = at.map_or(String::new(), |at| {
            format!("?at={}", at.replace('+', "%2B"))
        });
        let r = self
            .public(&format!("/public/practices/{practice}/availability{query}"))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["departments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == department_id)
            .cloned()
            .unwrap_or_else(|| panic!("{department_id} is not listed: {}", r.body))
    }

    pub async fn add_department(&self, practice: &str, body: Value) -> Value {
        let r = self
            .admin(practice, Method::POST, "/departments", Some(body))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body
    }
}
