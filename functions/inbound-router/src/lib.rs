//! The inbound-router function: inbound messages, the conversation lifecycle, the client's own view of its
//! conversations, and the tickets for live updates. `router` is mounted by this function's Lambda entry and
//! by the local server; `sms` handles texts arriving through SNS.

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
use adapters::{new_ticket_secret, now, UlidIds};
use domain::client_view::{self, message_range};
use domain::conversation::rate_limit::ClientRateLimits;
use domain::conversation::{
    self, ConversationId, ConversationStatus, InboundInput, MessageId, StartInput,
};
use domain::identity::DepartmentId;
use domain::realtime::{self, TicketInput};
use domain::store::{ConversationFilter, InboundRouterStore, MessageRange};
use domain::{DomainError, InvalidCode};

pub mod sms;
pub mod whatsapp;

/// The inbound-router function's state: the conversation store, as its IAM policy allows.
type AppState = adapters::http::AppState<dyn InboundRouterStore>;

/// `websocket_url`: where the connections of the tickets this router sells go (the WebSocket API's URL on
/// AWS, `ws://…/ws` locally); `limits`: what a client's chat may send (`Config::client_rate_limits`).
pub fn router(
    store: Arc<dyn InboundRouterStore>,
    websocket_url: &str,
    limits: ClientRateLimits,
) -> Router {
    let inbound_route = Router::new()
        .route("/inbound", post(inbound))
        .with_state((AppState::new(store.clone()), limits));
    let tickets = Router::new()
        .route("/realtime/tickets", post(buy_ticket))
        .with_state((
            AppState::new(store.clone()),
            Arc::<str>::from(websocket_url),
        ));
    Router::new()
        .route(
            "/conversations",
            get(list_conversations).post(start_conversation),
        )
        .route("/conversations/{id}", get(conversation_detail))
        .route("/conversations/{id}/messages", post(reply))
        .route(
            "/conversations/{id}/messages/{message_id}/retry",
            post(retry_text),
        )
        .route("/conversations/{id}/end", post(end_conversation))
        .route("/client/conversations", get(client_conversations))
        .route("/client/conversations/{id}/messages", get(client_messages))
        .with_state(AppState::new(store))
        .merge(inbound_route)
        .merge(tickets)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn inbound(
    State((s, limits)): State<(AppState, ClientRateLimits)>,
    Authenticated(caller): Authenticated,
    headers: http::HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let input: InboundInput = parse_json(&body)?;
    let idempotency_key = idempotency_key(&headers);
    let inbound =
        conversation::inbound_from_caller(&caller, input, idempotency_key.as_deref(), &limits)?;
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

/// `?after=<seq>&limit=<n>` of a message page.
#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

impl PageQuery {
    fn range(query: Result<Query<PageQuery>, QueryRejection>) -> ApiResult<MessageRange> {
        let Query(q) = query?;
        Ok(message_range(q.after.as_deref(), q.limit.as_deref())?)
    }
}

async fn conversation_detail(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let range = PageQuery::range(query)?;
    let detail =
        conversation::conversation_detail(&*s.store, &caller, &ConversationId(id), range).await?;
    Ok(json_response(StatusCode::OK, detail))
}

async fn client_conversations(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    let list = client_view::list_client_conversations(&*s.store, &caller).await?;
    Ok(json_response(StatusCode::OK, list))
}

async fn client_messages(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let range = PageQuery::range(query)?;
    let page = client_view::client_messages(&*s.store, &caller, &ConversationId(id), range).await?;
    Ok(json_response(StatusCode::OK, page))
}

/// `POST /realtime/tickets`, the body optional (`{"department_id"}` for staff).
async fn buy_ticket(
    State((s, websocket_url)): State<(AppState, Arc<str>)>,
    Authenticated(caller): Authenticated,
    Body(body): Body,
) -> ApiResult<Response> {
    let input: TicketInput = if body.iter().all(u8::is_ascii_whitespace) {
        TicketInput::default()
    } else {
        parse_json(&body)?
    };
    let issued = realtime::buy_ticket(
        &*s.store,
        &*s.store,
        &caller,
        input,
        new_ticket_secret(),
        &websocket_url,
        now(),
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, issued))
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
    headers: http::HeaderMap,
    Body(body): Body,
) -> ApiResult<Response> {
    let ReplyBody { body } = parse_json(&body)?;
    let idempotency_key = idempotency_key(&headers);
    let (message, replayed) = conversation::staff_reply_with_key(
        &*s.store,
        &caller,
        &ConversationId(id),
        &body,
        idempotency_key.as_deref(),
        now(),
        &UlidIds,
    )
    .await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(json_response(status, message))
}

/// The `Idempotency-Key` header as text; checked by the domain (visible ASCII), so a header that is not
/// text fails it there.
fn idempotency_key(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// `POST /conversations/{id}/messages/{message_id}/retry`: 200 with the message queued again.
async fn retry_text(
    State(s): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let message = conversation::retry_text(
        &*s.store,
        &caller,
        &ConversationId(id),
        &MessageId(message_id),
        now(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, message))
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
