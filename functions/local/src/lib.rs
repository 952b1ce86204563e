//! The all-in-one local server: every HTTP route of every function on one port, with the same handlers the
//! Lambda functions run. It verifies HS256 tokens (`LOCAL_JWT_SECRET`) and hands the functions the claims
//! exactly where API Gateway's JWT authorizer puts them.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use axum::Router;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use adapters::auth::request_context_with_claims;
use adapters::config::Config;
use adapters::http::{no_route, ApiError, AppState};
use adapters::senders::{RecordingSender, SentAlert};
use domain::alert::AlertSender;
use domain::dispatch::dispatch_alert;
use domain::identity::Role;
use domain::store::Store;

/// The store the local server runs on: DynamoDB when `DYNAMODB_TABLE` is set (the table is created if
/// missing), else the embedded in-memory store.
pub async fn build_store(
    config: &Config,
) -> Result<Arc<dyn Store>, Box<dyn std::error::Error + Send + Sync>> {
    match &config.table_name {
        Some(table) => {
            let sdk = adapters::aws::sdk_config().await;
            let client = aws_sdk_dynamodb::Client::new(&sdk);
            adapters::store::ensure_table(&client, table).await?;
            tracing::info!(table, "using DynamoDB");
            Ok(Arc::new(adapters::store::DynamoStore::new(
                client,
                table.clone(),
            )))
        }
        None => {
            tracing::info!(
                "using the embedded in-memory store (set DYNAMODB_TABLE to use DynamoDB)"
            );
            Ok(Arc::new(adapters::store::MemoryStore::new()))
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
    pub dashboard_url: String,
}

/// Every route of every function, plus the local-only ones, behind local token verification and request
/// logging.
pub fn app(state: AppState, jwt_secret: &str, local: LocalServices) -> Router {
    let verifier = Arc::new(TokenVerifier::new(jwt_secret));
    let reminder = Router::new()
        .route("/_local/eod-reminder", axum::routing::post(eod_reminder))
        .with_state((state.store.clone(), local.clone()));
    Router::new()
        .merge(config_api::router(state.clone()))
        .merge(inbound_router::router(state.clone()))
        .merge(transfer_alerts::router(state))
        .route("/_local/sent", get(sent).with_state(local.recorder.clone()))
        .merge(reminder)
        .fallback(no_route)
        .layer(middleware::from_fn_with_state(verifier, authenticate))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

/// The claims a local token carries (the contract's three plus the standard ones).
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalClaims {
    pub sub: String,
    pub practice_id: String,
    pub role: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

pub const LOCAL_ISSUER: &str = "vetchat-local";

pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &str) -> Self {
        // HS256 only: a token with another algorithm (or "none") is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        TokenVerifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The claims as API Gateway's JWT authorizer hands them over: every value a string.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, String> {
        let data = decode::<HashMap<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| format!("the token is not valid: {e}"))?;
        Ok(data
            .claims
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect())
    }
}

/// Signs a local token for a practice and role (what `cargo run -- token` prints).
pub fn sign_token(
    secret: &str,
    practice_id: &str,
    role: Role,
    sub: &str,
    now: i64,
    ttl_secs: i64,
) -> String {
    let claims = LocalClaims {
        sub: sub.to_owned(),
        practice_id: practice_id.to_owned(),
        role: role.as_str().to_owned(),
        iss: LOCAL_ISSUER.to_owned(),
        iat: now,
        exp: now + ttl_secs,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Plays API Gateway's JWT authorizer: protected routes need a valid bearer token, whose claims are put in
/// the request context; public and local-only routes take none.
async fn authenticate(
    State(verifier): State<Arc<TokenVerifier>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let public = path.starts_with("/public/") || path.starts_with("/_local/");
    // Whatever the client sent, the request context is the server's to set.
    request
        .extensions_mut()
        .remove::<lambda_http::request::RequestContext>();
    if !public {
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        match header.map(|h| h.trim()) {
            None => {}
            Some(h) => {
                let Some(token) = h
                    .strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
                else {
                    return ApiError::Unauthenticated(
                        "Authorization must be \"Bearer <token>\"".into(),
                    )
                    .into_response();
                };
                match verifier.verify(token.trim()) {
                    Ok(claims) => {
                        request
                            .extensions_mut()
                            .insert(request_context_with_claims(claims));
                    }
                    Err(reason) => return ApiError::Unauthenticated(reason).into_response(),
                }
            }
        }
    }
    next.run(request).await
}

/// `GET /_local/sent`: every alert the local senders took, oldest first, one entry per recipient.
async fn sent(State(recorder): State<RecordingSender>) -> Json<Vec<SentAlert>> {
    Json(recorder.sent())
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

/// `POST /_local/eod-reminder`: runs the reminder function for the scheduled event in the body (its `time`
/// is the instant the run is for) and answers its summary.
async fn eod_reminder(
    State((store, local)): State<(Arc<dyn Store>, LocalServices)>,
    body: bytes::Bytes,
) -> Result<Json<domain::reminder::RunSummary>, ApiError> {
    let event: Value = adapters::http::parse_json(&body)?;
    match eod_reminder::handle_event(&*store, &*local.sender, &event, &local.dashboard_url).await {
        Ok(summary) => Ok(Json(summary)),
        Err(eod_reminder::ReminderError::BadEvent(reason)) => {
            Err(domain::DomainError::malformed(reason, Some("time".into())).into())
        }
        Err(eod_reminder::ReminderError::Domain(e)) => Err(e.into()),
    }
}

/// The local server's reminder schedule: a run for the current instant every `every`.
pub fn spawn_reminder_timer(
    store: Arc<dyn Store>,
    local: LocalServices,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let event = serde_json::json!({"time": adapters::now().to_rfc3339()});
            if let Err(e) =
                eod_reminder::handle_event(&*store, &*local.sender, &event, &local.dashboard_url)
                    .await
            {
                tracing::warn!(error = %e, "reminder run failed; the next run catches up");
            }
        }
    })
}
