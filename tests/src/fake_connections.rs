//! A small fake of API Gateway's `@connections` endpoint (the WebSocket API's management API), speaking its
//! wire protocol (restJson1: `POST /@connections/{connectionId}` with the frame as the body): 200 for a
//! connection it knows, 410 `GoneException` for any other (moto never answers 410), and on demand a 500 or a
//! stall for chosen ids. It records every post it got. Reached through the SDK's own
//! `AWS_ENDPOINT_URL_APIGATEWAYMANAGEMENTAPI` (or the callback URL the fanout is given).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

/// What the fake does with posts to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// 200.
    Alive,
    /// 500 InternalServerErrorException.
    Fail,
    /// Answers only after a long while (longer than any client waits).
    Stall,
}

#[derive(Default)]
struct Inner {
    connections: HashMap<String, Behaviour>,
    /// Every post received: (connection id, frame), in order.
    posts: Vec<(String, String)>,
    /// Requests that were not signed (no SigV4 `Authorization`).
    unsigned: usize,
}

#[derive(Clone)]
pub struct FakeConnections {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeConnections {
    pub async fn start() -> FakeConnections {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/@connections/{id}", post(post_to_connection))
            .with_state(inner.clone());
        let url = crate::serve_on_loopback(app).await;
        FakeConnections { url, inner }
    }

    /// `id` answers as `behaviour` from now on (unknown ids answer 410).
    pub fn set(&self, id: &str, behaviour: Behaviour) {
        self.inner
            .lock()
            .unwrap()
            .connections
            .insert(id.to_owned(), behaviour);
    }

    /// Every post so far, in order: (connection id, frame).
    pub fn posts(&self) -> Vec<(String, String)> {
        self.inner.lock().unwrap().posts.clone()
    }

    /// The connections posted to.
    pub fn posted_to(&self) -> BTreeSet<String> {
        self.posts().into_iter().map(|(id, _)| id).collect()
    }

    pub fn unsigned(&self) -> usize {
        self.inner.lock().unwrap().unsigned
    }
}

async fn post_to_connection(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let behaviour = {
        let mut inner = inner.lock().unwrap();
        if !headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256"))
        {
            inner.unsigned += 1;
        }
        inner
            .posts
            .push((id.clone(), String::from_utf8_lossy(&body).into_owned()));
        inner.connections.get(&id).copied()
    };
    let error = |status: StatusCode, kind: &str, message: &str| {
        (
            status,
            [
                ("x-amzn-errortype", kind),
                ("content-type", "application/json"),
            ],
            format!("{{\"message\": \"{message}\"}}"),
        )
            .into_response()
    };
    match behaviour {
        Some(Behaviour::Alive) => StatusCode::OK.into_response(),
        Some(Behaviour::Fail) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerErrorException",
            "try again",
        ),
        Some(Behaviour::Stall) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK.into_response()
        }
        None => error(StatusCode::GONE, "GoneException", "connection gone"),
    }
}
