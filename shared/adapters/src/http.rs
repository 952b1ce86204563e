//! The HTTP edge shared by every function: the one mapping from errors to the contract's status codes
//! and bodies, JSON body parsing, and helpers for handlers.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use domain::DomainError;
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// What an HTTP function's router is built with: the store traits that function's IAM policy lets it use
/// (config-api `AppState<dyn SettingsStore>`, inbound-router `AppState<dyn ConversationStore>`,
/// transfer-alerts `AppState<dyn TransferStore>`; see `domain::store`).
pub struct AppState<S: ?Sized> {
    pub store: Arc<S>,
}

impl<S: ?Sized> AppState<S> {
    pub fn new(store: Arc<S>) -> Self {
        AppState { store }
    }
}

// Not derived: a derive would ask `S: Clone`, which a trait object is not.
impl<S: ?Sized> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: self.store.clone(),
        }
    }
}

/// The HTTP layer's error: a domain error, or what only HTTP knows about.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No token, bad signature, expired, a claim missing (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// No such route (404).
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body is over [`MAX_BODY_BYTES`] (413); nothing was read further or stored.
    #[error("the request body is over {MAX_BODY_BYTES} bytes")]
    BodyTooLarge,
    /// The request body could not be read (400).
    #[error("the request body could not be read")]
    UnreadableBody,
}

impl ApiError {
    /// Status, contract code, field and extra members: the one mapping from errors to the contract.
    fn parts(&self) -> (StatusCode, &'static str, Option<String>, Option<Value>) {
        use DomainError as D;
        match self {
            ApiError::Unauthenticated(_) => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", None, None)
            }
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found", None, None),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                None,
                None,
            ),
            ApiError::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", None, None),
            ApiError::UnreadableBody => (StatusCode::BAD_REQUEST, "malformed_request", None, None),
            ApiError::Domain(e) => match e {
                D::Malformed { field, .. } => (
                    StatusCode::BAD_REQUEST,
                    "malformed_request",
                    field.clone(),
                    None,
                ),
                D::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None, None),
                D::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None, None),
                D::Conflict { code, details, .. } => {
                    (StatusCode::CONFLICT, code.as_str(), None, details.clone())
                }
                D::StaleEtag(_) => (StatusCode::PRECONDITION_FAILED, "stale_etag", None, None),
                D::Invalid { code, field, .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    code.as_str(),
                    Some(field.clone()),
                    None,
                ),
                D::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None, None),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, field, details) = self.parts();
        let message = match &self {
            // Internal reasons go to the log, not to the caller.
            ApiError::Domain(DomainError::Unavailable(reason)) => {
                tracing::error!(%reason, "backing service unavailable");
                "the service is briefly unavailable; nothing was changed, try again".to_owned()
            }
            other => other.to_string(),
        };
        let mut error = Map::new();
        error.insert("code".into(), code.into());
        error.insert("message".into(), message.into());
        if let Some(field) = field {
            error.insert("field".into(), field.into());
        }
        if let Some(Value::Object(extra)) = details {
            error.extend(extra);
        }
        let mut response = (status, Json(json!({ "error": error }))).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> Self {
        ApiError::Domain(DomainError::malformed(e.body_text(), None))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> Self {
        ApiError::Domain(DomainError::malformed(e.body_text(), None))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The largest request body any endpoint reads (256 KiB): the fullest department the rules allow (four
/// windows a day, 400 working overrides of four windows, the longest texts and most alert recipients) is
/// about 180 KB pretty-printed, which no longer fits in the 64 KiB of one-window days.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request body of at most [`MAX_BODY_BYTES`], read without buffering more than that; a longer one is
/// refused with 413 `body_too_large` in the contract's error shape (axum's own limit answers plain text).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let declared = request
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::BodyTooLarge);
        }
        match axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await {
            Ok(bytes) => Ok(Body(bytes)),
            Err(e) => {
                let first: &(dyn std::error::Error + 'static) = &e;
                let over_limit = std::iter::successors(Some(first), |s| s.source())
                    .any(|s| s.is::<http_body_util::LengthLimitError>());
                if over_limit {
                    Err(ApiError::BodyTooLarge)
                } else {
                    Err(ApiError::UnreadableBody)
                }
            }
        }
    }
}

/// Parses a JSON body into `T`; a body that is not JSON or has the wrong shape is 400 `malformed_request`
/// with the JSON path of the fault.
pub fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, DomainError> {
    if body.is_empty() {
        return Err(DomainError::malformed(
            "the request needs a JSON body",
            None,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        DomainError::malformed(e.inner().to_string(), (path != ".").then_some(path))
    })?;
    de.end()
        .map_err(|e| DomainError::malformed(e.to_string(), None))?;
    Ok(value)
}

/// A JSON response with a status.
pub fn json_response(status: StatusCode, body: impl serde::Serialize) -> Response {
    (status, Json(body)).into_response()
}

/// Fallback for unknown routes, in the contract's error shape.
pub async fn no_route(uri: http::Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

/// Fallback for a known route with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
