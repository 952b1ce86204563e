//! The inbound-router function: inbound messages and the conversation lifecycle. `router` is mounted by this
//! function's Lambda entry and by the local server; `sms` handles texts arriving through SNS.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use adapters::auth::Authenticated;
use adapters::http::{json_response, method_not_allowed, parse_json, ApiResult, Body};
use adapters::{now, UlidIds};
use domain::conversation::{self, ConversationId, ConversationStatus, InboundInput, StartInput};
use domain::identity::DepartmentId;
use domain::store::{ConversationFilter, ConversationStore};
use domain::{DomainError, InvalidCode};

pub mod sms;

/// The inbound-router function's state: the conversation store, as its IAM policy allows.
type AppState = adapters::http::AppState<dyn ConversationStore>;

pub fn router(store: Arc<dyn ConversationStore>) -> Router {
    Router::new()
        .route("/inbound", post(inbound))
        .route(
            "/conversations",
            get(list_conversations).post(start_conversation),
        )
        .route("/conversations/{id}", get(conversation_detail))
        .route("/conversations/{id}/messages", post(reply))
        .route("/conversations/{id}/end", post(end_conversation))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(AppState::new(store))
}

async fn inbound(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    headers: http::HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let input: InboundInput = parse_json(&body)?;
    // Checked by the domain (visible ASCII): a header that is not text fails it there.
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let inbound = conversation::inbound_from_caller(&caller, input, idempotency_key.as_deref())?;
    let routed = conversation::route_inbound(&*s.store, inbound, now(), &UlidIds).await?;
    let status = if routed.new_conversation {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, routed))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    department_id: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

async fn list_conversations(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("open") => Some(ConversationStatus::Open),
        Some("resolved") => Some(ConversationStatus::Resolved),
        Some(other) => {
            return Err(DomainError::invalid(
                InvalidCode::InvalidValue,
                "status",
                format!("{other:?}: status is open or resolved"),
            )
            .into())
        }
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                DomainError::invalid(InvalidCode::InvalidValue, "limit", "limit is 1 to 100")
            })?,
    };
    let filter = ConversationFilter {
        status,
        department_id: q.department_id.filter(|d| !d.is_empty()).map(DepartmentId),
    };
    let page = conversation::list_conversations(
        &*s.store,
        &caller,
        filter,
        q.cursor.as_deref().filter(|c| !c.is_empty()),
        limit,
    )
    .await?;
    Ok(json_response(StatusCode::OK, page))
}

async fn start_conversation(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Body(body): Body,
) -> ApiResult<Response> {
    let input: StartInput = parse_json(&body)?;
    let conversation =
        conversation::staff_start(&*s.store, &caller, input, now(), &UlidIds).await?;
    Ok(json_response(StatusCode::CREATED, conversation))
}

async fn conversation_detail(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let detail = conversation::conversation_detail(&*s.store, &caller, &ConversationId(id)).await?;
    Ok(json_response(StatusCode::OK, detail))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplyBody {
    body: String,
}

async fn reply(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let ReplyBody { body } = parse_json(&body)?;
    let message = conversation::staff_reply(
        &*s.store,
        &caller,
        &ConversationId(id),
        &body,
        now(),
        &UlidIds,
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, message))
}

async fn end_conversation(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let conversation =
        conversation::end_conversation(&*s.store, &caller, &ConversationId(id), now()).await?;
    Ok(json_response(StatusCode::OK, conversation))
}
