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
                D::RateLimited { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None, None)
                }
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
        if let ApiError::Domain(DomainError::RateLimited {
            retry_after_secs, ..
        }) = &self
        {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, (*retry_after_secs).into());
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

/// A weak `ETag` (`W/"…"`) of `content`: the first 128 bits of its SHA-256, base64url. Weak because the
/// answers it validates are equivalent rather than byte-identical (RFC 9110 §8.8.1): e.g. an availability
/// answer names the instant it was computed at, which `content` leaves out.
pub fn weak_etag(content: &[u8]) -> String {
    use base64::Engine as _;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, content);
    let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]);
    format!("W/\"{tag}\"")
}

/// Does the request's `If-None-Match` name `etag`? RFC 9110 §13.1.2: `*` matches any current answer, and the
/// list is compared weakly (`W/"x"` and `"x"` are the same tag); an entry that is not an entity tag is no match.
pub fn if_none_match(request: &http::HeaderMap, etag: &str) -> bool {
    let opaque = |tag: &str| {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then(|| tag.to_owned())
    };
    let Some(current) = opaque(etag) else {
        return false;
    };
    request
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|candidate| candidate.trim() == "*" || opaque(candidate).as_deref() == Some(&current))
}

/// A public JSON answer that browsers and shared caches (a CDN) may keep `max_age` seconds:
/// `Cache-Control: public, max-age=N` (`public, no-cache` at 0: keep it, but ask each time), a weak `ETag`
/// of `validator` (what the answer says), `Vary: Origin` (the CORS headers differ per origin); or, when the
/// request's `If-None-Match` names that ETag, 304 with the same headers and no body.
pub fn cacheable_json_response(
    request: &http::HeaderMap,
    status: StatusCode,
    body: impl serde::Serialize,
    validator: &[u8],
    max_age: u32,
) -> Response {
    let etag = weak_etag(validator);
    let mut response = if if_none_match(request, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        json_response(status, body)
    };
    let cache_control = if max_age == 0 {
        "public, no-cache".to_owned()
    } else {
        format!("public, max-age={max_age}")
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (http::header::CACHE_CONTROL, cache_control),
        (http::header::ETAG, etag),
        (http::header::VARY, "Origin".to_owned()),
    ] {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod caching_tests {
    use super::*;

    fn request(if_none_match: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::IF_NONE_MATCH, if_none_match.parse().unwrap());
        h
    }

    #[test]
    fn if_none_match_compares_weakly_takes_lists_and_star() {
        let tag = weak_etag(b"departments");
        let strong = tag.trim_start_matches("W/");
        assert!(tag.starts_with("W/\"") && tag.ends_with('"'), "{tag}");
        assert_eq!(
            tag,
            weak_etag(b"departments"),
            "the same content, the same tag"
        );
        assert_ne!(tag, weak_etag(b"departments!"));
        assert!(if_none_match(&request(&tag), &tag));
        assert!(
            if_none_match(&request(strong), &tag),
            "weak comparison: W/ does not matter"
        );
        assert!(if_none_match(&request(&format!("\"old\", {tag}")), &tag));
        assert!(if_none_match(&request("*"), &tag));
        assert!(!if_none_match(&request("\"old\", W/\"older\""), &tag));
        assert!(
            !if_none_match(&request(strong.trim_matches('"')), &tag),
            "an unquoted value is no entity tag"
        );
        assert!(!if_none_match(&http::HeaderMap::new(), &tag));
    }

    #[test]
    fn a_matching_request_gets_304_without_a_body_and_the_same_headers() {
        let tag = weak_etag(b"x");
        let full =
            cacheable_json_response(&http::HeaderMap::new(), StatusCode::OK, "body", b"x", 12);
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(full.headers()["cache-control"], "public, max-age=12");
        assert_eq!(full.headers()["etag"], tag.as_str());
        let not_modified = cacheable_json_response(&request(&tag), StatusCode::OK, "body", b"x", 0);
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(not_modified.headers()["cache-control"], "public, no-cache");
        assert_eq!(not_modified.headers()["etag"], tag.as_str());
        assert_eq!(not_modified.headers()["vary"], "Origin");
        assert!(not_modified.headers().get("content-type").is_none());
    }
}
