//! The transfer-alerts function: `POST /conversations/{id}/transfer`, and the dispatcher that delivers
//! pending alerts (new conversation, transfer) through SES v2 and SNS.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::Value;

use adapters::auth::Authenticated;
use adapters::http::{json_response, method_not_allowed, parse_json, ApiResult, Body};
use adapters::{now, UlidIds};
use domain::alert::dispatch::{dispatch_alert, DispatchReport};
use domain::alert::AlertSender;
use domain::conversation::{self, AlertId, ConversationId, TransferInput};
use domain::store::{DispatchStore, TransferStore};

/// The transfer route's state: the transfer store, as its IAM policy allows.
type AppState = adapters::http::AppState<dyn TransferStore>;

pub fn router(store: Arc<dyn TransferStore>) -> Router {
    Router::new()
        .route("/conversations/{id}/transfer", post(transfer))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState::new(store))
}

async fn transfer(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let input: TransferInput = parse_json(&body)?;
    let conversation = conversation::transfer_conversation(
        &*s.store,
        &caller,
        &ConversationId(id),
        input,
        now(),
        &UlidIds,
    )
    .await?;
    Ok(json_response(StatusCode::OK, conversation))
}

/// The alert ids a DynamoDB Streams batch carries: inserted `ALERT#` items. Returns (stream sequence
/// number, alert id) so failures can be reported per record.
pub fn alerts_in_stream_batch(event: &Value) -> Vec<(String, AlertId)> {
    let mut out = Vec::new();
    for record in event["Records"].as_array().into_iter().flatten() {
        if record["eventName"] != "INSERT" {
            continue;
        }
        let keys = &record["dynamodb"]["Keys"];
        let Some(pk) = keys["PK"]["S"].as_str() else {
            continue;
        };
        let Some(id) = pk.strip_prefix("ALERT#") else {
            continue;
        };
        let sequence = record["dynamodb"]["SequenceNumber"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        out.push((sequence, AlertId(id.to_owned())));
    }
    out
}

/// Dispatches every alert of a batch; returns the sequence numbers to report as failed (alerts left
/// pending after the sender's own retries, or a store that was unavailable), so the stream retries only
/// those and, past its retry limit, hands them to the on-failure destination instead of dropping them.
pub async fn dispatch_stream_batch(
    store: &dyn DispatchStore,
    sender: &dyn AlertSender,
    event: &Value,
    now: DateTime<Utc>,
    dashboard_url: &str,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (sequence, id) in alerts_in_stream_batch(event) {
        match dispatch_alert(store, sender, &id, now, dashboard_url).await {
            Ok(DispatchReport { done: true, .. }) => {}
            Ok(report) => {
                tracing::warn!(alert_id = %id, ?report, "alert left pending; the stream will retry it");
                failures.push(sequence);
            }
            Err(e) => {
                tracing::error!(alert_id = %id, error = %e, "alert dispatch failed");
                failures.push(sequence);
            }
        }
    }
    failures
}
