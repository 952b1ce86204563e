//! The transfer-alerts function: `POST /conversations/{id}/transfer` (here), and the dispatcher that
//! delivers pending alerts through SES v2 and SNS, one per stream record (`src/bin/alert-dispatcher.rs`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use adapters::auth::Authenticated;
use adapters::http::{json_response, method_not_allowed, parse_json, ApiResult, Body};
use adapters::{now, UlidIds};
use domain::conversation::{self, ConversationId, TransferInput};
use domain::store::TransferStore;

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
