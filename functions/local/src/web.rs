//! The staff pages of `web/` (plain HTML, CSS and ES modules), compiled into the local server so that
//! `cargo run` serves them from any directory. This is the router's fallback: the API's routes are matched
//! first, a GET or HEAD naming a file of `web/` gets the file, and anything else is the contract's JSON 404.
//! On AWS the same files are served by CloudFront from S3 (template.yaml, scripts/deploy-web).

use axum::response::{IntoResponse, Response};
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS,
};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};

use adapters::http::no_route;

#[derive(rust_embed::Embed)]
#[folder = "../../web/"]
struct Pages;

/// Scripts, styles and API calls from this origin only; no frames, no plugins. The same policy as the
/// CloudFront response headers in template.yaml, with the API and the sign-in on this same origin.
const CONTENT_SECURITY: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The file a path names: `/` and `/dir/` are their `index.html`.
fn file_name(path: &str) -> String {
    let name = path.trim_start_matches('/');
    if name.is_empty() || name.ends_with('/') {
        format!("{name}index.html")
    } else {
        name.to_owned()
    }
}

/// The fallback of the local server's router.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let file = match method {
        Method::GET | Method::HEAD => Pages::get(&file_name(uri.path())),
        _ => None,
    };
    let Some(file) = file else {
        return no_route(uri).await.into_response();
    };
    // The files carry no version in their names: the browser revalidates each with its hash (304).
    let hash = file.metadata.sha256_hash();
    let etag = format!(
        "\"{}\"",
        hash[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = file.data.into_owned().into_response();
        if let Ok(kind) = HeaderValue::from_str(file.metadata.mimetype()) {
            r.headers_mut().insert(CONTENT_TYPE, kind);
        }
        r
    };
    let h = response.headers_mut();
    if let Ok(tag) = HeaderValue::from_str(&etag) {
        h.insert(ETAG, tag);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // The OAuth sign-in returns with `?code=` in the address: never hand it on to another site.
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn directories_are_their_index() {
        assert_eq!(file_name("/"), "index.html");
        assert_eq!(file_name("/settings/"), "settings/index.html");
        assert_eq!(file_name("/js/api.js"), "js/api.js");
    }
}
