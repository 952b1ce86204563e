//! The all-in-one local server: every HTTP route of every function on one port, with the same handlers the
//! Lambda functions run. It verifies HS256 tokens (`LOCAL_JWT_SECRET`) and hands the functions the claims
//! exactly where API Gateway's JWT authorizer puts them. It also serves the staff pages of `web/` ([`web`])
//! and the live updates at `/ws` ([`live`]).

pub mod live;
pub mod web;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue, Method};
use serde::Deserialize;
use serde_json::{json, Value};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use adapters::auth::LocalTokens;
pub use adapters::auth::{sign_token, LocalClaims, TokenVerifier, LOCAL_ISSUER};
use adapters::config::{Config, LocalStore, StoreFlags};
use adapters::http::{ApiError, Body};
use adapters::senders::RecordingSender;
use adapters::store::{ChangeFeed, EmbeddedStore};
use domain::alert::dispatch::dispatch_alert;
use domain::alert::AlertSender;
use domain::conversation::rate_limit::ClientRateLimits;
use domain::conversation::{DeliveryEvent, DeliveryStatus, FailureReason, MessageId};
use domain::identity::{plausible_id, PracticeId, Role};
use domain::realtime::Change;
use domain::reminder::{DueShards, Paging};
use domain::store::Store;
use domain::texting::{send_text, texts_to_send, TextSender};
use domain::{DomainError, InvalidCode};

/// The changes a store commits, for the local fanout ([`live::spawn_fanout`]).
pub type Changes = tokio::sync::mpsc::UnboundedReceiver<Vec<Change>>;

/// The store the local server runs on ([`Config::local_store`]): the embedded store on a file in the data
/// directory (the default), or in memory (`--in-memory`), or DynamoDB when `DYNAMODB_TABLE` is set (the
/// table is created if missing); with the feed of the changes it commits. Says at start where the data is.
/// On DynamoDB the feed carries the writes this process makes (the local stand-in for the table's stream,
/// which another process's writes would need).
pub async fn build_store(
    config: &Config,
    flags: &StoreFlags,
) -> Result<(Arc<dyn Store>, Changes), Box<dyn std::error::Error + Send + Sync>> {
    let (feed, changes) = ChangeFeed::channel();
    match config.local_store(flags)? {
        LocalStore::Dynamo(table) => {
            let sdk = adapters::aws::sdk_config(config).await?;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            adapters::store::ensure_table(&client, &table).await?;
            tracing::info!(table, "using DynamoDB");
            let store = adapters::store::DynamoStore::new(client, table);
            Ok((Arc::new(store.with_change_feed(feed)), changes))
        }
        LocalStore::File(dir) => {
            let store = EmbeddedStore::open(&dir)?;
            tracing::info!(
                "keeping the data in {} (choose another directory with --data-dir DIR or DATA_DIR=DIR; \
                 --in-memory for a throwaway run)",
                store.file().unwrap_or(&dir).display()
            );
            Ok((Arc::new(store.with_change_feed(feed)), changes))
        }
        LocalStore::InMemory => {
            tracing::info!(
                "keeping the data in memory only (--in-memory): it is gone when the server stops"
            );
            Ok((
                Arc::new(EmbeddedStore::in_memory().with_change_feed(feed)),
                changes,
            ))
        }
    }
}

/// What the local-only routes work with.
#[derive(Clone)]
pub struct LocalServices {
    /// What `GET /_local/sent` shows.
    pub recorder: RecordingSender,
    /// Where alerts and reminders go: the recorder, or SES/SNS with `ALERT_SENDER=aws`.
    pub sender: Arc<dyn AlertSender>,
    /// Where replies to texting clients go: the recorder (their `reply` entries at `GET /_local/sent`).
    pub text_sender: Arc<dyn TextSender>,
    pub dashboard_url: String,
    /// Where the tickets of `POST /realtime/tickets` send their connections.
    pub websocket_url: String,
    /// The open sockets of `/ws`, where the local fanout posts.
    pub sockets: live::LocalSockets,
    /// The origins whose pages may call the server from a browser (`*`: any), see [`cors`].
    pub cors_allow_origins: Vec<String>,
    /// What a client's chat may send (`Config::client_rate_limits`; the defaults unless changed).
    pub client_rate_limits: ClientRateLimits,
}

impl LocalServices {
    /// Alerts recorded (shown at `GET /_local/sent`), no socket open yet.
    pub fn recording(dashboard_url: &str, websocket_url: &str) -> LocalServices {
        let recorder = RecordingSender::new();
        LocalServices {
            sender: Arc::new(recorder.clone()),
            text_sender: Arc::new(recorder.clone()),
            recorder,
            dashboard_url: dashboard_url.to_owned(),
            websocket_url: websocket_url.to_owned(),
            sockets: live::LocalSockets::default(),
            cors_allow_origins: vec!["*".to_owned()],
            client_rate_limits: ClientRateLimits::default(),
        }
    }
}

/// Every route of every function, plus the local-only ones, behind local token verification and request
/// logging; any other GET is a file of `web/` or the contract's 404. Each function's router gets the one
/// store as the traits that function holds on AWS.
pub fn app(store: Arc<dyn Store>, jwt_secret: &str, local: LocalServices) -> Router {
    let cors = cors(&local.cors_allow_origins);
    let reminder = Router::new()
        .route("/_local/eod-reminder", post(eod_reminder))
        .with_state((store.clone(), local.clone()));
    let live = Router::new()
        .route("/ws", get(live::connect))
        .with_state((store.clone(), local.sockets.clone()));
    let routes = Router::new()
        .merge(config_api::router(store.clone()))
        .merge(inbound_router::router(
            store.clone(),
            &local.websocket_url,
            local.client_rate_limits,
        ))
        .merge(transfer_alerts::router(store.clone()))
        .route("/_local/sent", get(sent).with_state(local.recorder.clone()))
        .route(
            "/_local/delivery",
            post(play_delivery).with_state((store.clone(), local.recorder.clone())),
        )
        .route(
            "/_local/token",
            post(local_token).with_state(Arc::<str>::from(jwt_secret)),
        )
        .merge(reminder)
        .merge(live)
        .fallback(web::serve);
    LocalTokens::for_local_server(jwt_secret)
        .layer(routes)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // Outermost: a browser's preflight is answered before any token is looked at, as API Gateway does.
        .layer(cors)
}

/// CORS as the template's `HttpApi` `CorsConfiguration` has it, so the web-chat widget on a clinic's site (another
/// origin) can call the local server as it calls API Gateway: the same methods, request headers
/// (`Idempotency-Key` for a message's retry) and exposed headers. No cookies: the API takes bearer tokens.
pub fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            http::header::AUTHORIZATION,
            http::header::CONTENT_TYPE,
            http::header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([http::header::ETAG, http::header::RETRY_AFTER])
        .max_age(std::time::Duration::from_secs(600))
}

/// `GET /_local/sent`: every alert the local senders took, one entry per recipient, and every text to a
/// client (`kind: "reply"`), oldest first.
async fn sent(State(recorder): State<RecordingSender>) -> Json<Vec<Value>> {
    let alerts = recorder.sent().into_iter().map(|a| (a.at, json!(a)));
    let replies = recorder.replies().into_iter().map(|r| (r.at, json!(r)));
    let mut all: Vec<(DateTime<Utc>, Value)> = alerts.chain(replies).collect();
    // Stable: entries of one instant keep the order they were taken in, alerts first.
    all.sort_by_key(|(at, _)| *at);
    Json(all.into_iter().map(|(_, v)| v).collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlayedDelivery {
    message_id: MessageId,
    status: PlayedStatus,
    #[serde(default)]
    reason: Option<FailureReason>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum PlayedStatus {
    Delivered,
    Failed,
}

/// `POST /_local/delivery` `{"message_id", "status": "delivered" | "failed", "reason"}`: a provider's
/// status event for the latest send of that text, applied as the status entry applies one. Answers the
/// text's `delivery` after it (unchanged when the event came too late to count); 404 for a text the local
/// sender never took.
async fn play_delivery(
    State((store, recorder)): State<(Arc<dyn Store>, RecordingSender)>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let played: PlayedDelivery = adapters::http::parse_json(&body)?;
    let (text, attempt) = recorder
        .replies()
        .into_iter()
        .rev()
        .find(|r| r.message_id == played.message_id)
        .and_then(|r| r.text)
        .ok_or(DomainError::NotFound("sent text"))?;
    let now = adapters::now();
    let event = match played.status {
        PlayedStatus::Delivered => {
            DeliveryEvent::new(DeliveryStatus::Delivered, now, Some(attempt))
        }
        PlayedStatus::Failed => DeliveryEvent::failed(
            played.reason.unwrap_or(FailureReason::ProviderError),
            now,
            Some(attempt),
        ),
    };
    domain::texting::apply_status(&*store, &text, &event).await?;
    let stored = store
        .get_text(&text)
        .await
        .map_err(DomainError::from)?
        .ok_or(DomainError::NotFound("sent text"))?;
    Ok(Json(
        json!({"message_id": played.message_id, "delivery": stored.message.delivery}),
    ))
}

/// Sends, once each, the texts a batch of committed changes left queued (what the stream-triggered
/// `text-sender` does on AWS).
pub async fn send_texts(store: &dyn Store, sender: &dyn TextSender, changes: &[Change]) {
    for text in texts_to_send(changes) {
        match send_text(store, sender, &text, &adapters::now).await {
            Ok(report) => tracing::debug!(?text, ?report, "text reply"),
            Err(e) => {
                tracing::warn!(?text, error = %e, "a text reply could not be sent; staff see it queued")
            }
        }
    }
}

/// How long a token of the pages' development sign-in lasts: a working day.
const SIGN_IN_HOURS: i64 = 8;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    practice_id: String,
    role: String,
    sub: String,
}

/// `POST /_local/token` `{"practice_id", "role", "sub"}`: the development sign-in of the pages (what
/// `cargo run -- token` prints, for a browser). Local server only: on AWS the pages sign in with the JWT
/// issuer. Answers `{"token", "expires_at"}`.
async fn local_token(
    State(secret): State<Arc<str>>,
    Body(body): Body,
) -> Result<Json<Value>, ApiError> {
    let request: TokenRequest = adapters::http::parse_json(&body)?;
    let invalid = |field: &str, message: &str| {
        ApiError::from(DomainError::invalid(
            InvalidCode::InvalidValue,
            field,
            message,
        ))
    };
    let practice = PracticeId::parse(request.practice_id.trim()).ok_or_else(|| {
        invalid(
            "practice_id",
            "a practice id is 1 to 64 letters, digits, _ or -",
        )
    })?;
    let role = Role::parse(&request.role)
        .ok_or_else(|| invalid("role", "the role is admin, staff, client or integration"))?;
    let sub = request.sub.trim();
    if !plausible_id(sub) {
        return Err(invalid("sub", "a user id is 1 to 128 bytes"));
    }
    let now = adapters::now();
    let token = sign_token(
        &secret,
        &practice.0,
        role,
        sub,
        now.timestamp(),
        SIGN_IN_HOURS * 3600,
    );
    let expires_at = now + chrono::Duration::hours(SIGN_IN_HOURS);
    Ok(Json(json!({
        "token": token,
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })))
}

/// Delivers every pending alert once (what the stream-driven dispatcher does on AWS). Returns how many
/// alerts were looked at.
pub async fn dispatch_pending(
    store: &dyn Store,
    sender: &dyn AlertSender,
    dashboard_url: &str,
) -> usize {
    let ids = match store.pending_alert_ids(100).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "could not list pending alerts");
            return 0;
        }
    };
    for id in &ids {
        if let Err(e) = dispatch_alert(store, sender, id, adapters::now(), dashboard_url).await {
            tracing::warn!(alert_id = %id, error = %e, "alert dispatch failed; will retry");
        }
    }
    ids.len()
}

/// The local server's in-process alert worker: the stand-in for the DynamoDB stream trigger.
pub fn spawn_alert_worker(
    store: Arc<dyn Store>,
    sender: Arc<dyn AlertSender>,
    dashboard_url: String,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            dispatch_pending(&*store, &*sender, &dashboard_url).await;
            tokio::time::sleep(every).await;
        }
    })
}

/// `POST /_local/eod-reminder`: runs the reminder function for the scheduled event in the body, read as the
/// Lambda entry reads it (`eod_reminder::scheduled_run`): its `time` is the instant the run is for, and its
/// `detail.shards`, if any, the range of the due index's shards (none: every shard). `{"time": ...}` alone
/// will do. The reminders it stored are then delivered at once (the alert worker's pass, which the stream
/// does on AWS within a second), so they are in `GET /_local/sent` when it answers the run's summary.
async fn eod_reminder(
    State((store, local)): State<(Arc<dyn Store>, LocalServices)>,
    body: bytes::Bytes,
) -> Result<Json<domain::reminder::RunSummary>, ApiError> {
    let mut event: Value = adapters::http::parse_json(&body)?;
    // The fields of an EventBridge event that are not the run's, so that `{"time": ...}` parses as one.
    if let Value::Object(fields) = &mut event {
        for (name, value) in [
            ("detail-type", json!("Scheduled Event")),
            ("source", json!("aws.events")),
            ("detail", json!({})),
        ] {
            fields.entry(name).or_insert(value);
        }
    }
    let run = eod_reminder::scheduled_run(event).map_err(|e| {
        let field = match e {
            eod_reminder::ReminderError::BadShards(_) => "detail.shards",
            _ => "time",
        };
        DomainError::malformed(e.to_string(), Some(field.into()))
    })?;
    let summary = eod_reminder::run(&*store, run, Paging::ONE_PAGE).await?;
    dispatch_pending(&*store, &*local.sender, &local.dashboard_url).await;
    Ok(Json(summary))
}

/// The local server's sweep of stuck texts (the `text-sweep` schedule on AWS): at start (a text queued when
/// the server was last stopped is sent; one it was sending is `unconfirmed`), then every `every`.
pub fn spawn_text_sweep(
    store: Arc<dyn Store>,
    sender: Arc<dyn TextSender>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match domain::texting::sweep_texts(&*store, &*sender, &adapters::now).await {
                Ok(report) if report.stuck > 0 => {
                    tracing::warn!(?report, "stuck texts taken over")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sweep of stuck texts failed; the next run retries")
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// The local server's reminder schedule: a run for the current instant every `every` (the alert worker
/// delivers what it stores).
pub fn spawn_reminder_timer(
    store: Arc<dyn Store>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let run = eod_reminder::ScheduledRun {
                run_at: adapters::now(),
                shards: DueShards::ALL,
            };
            if let Err(e) = eod_reminder::run(&*store, run, Paging::ONE_PAGE).await {
                tracing::warn!(error = %e, "reminder run failed; the next run catches up");
            }
        }
    })
}
