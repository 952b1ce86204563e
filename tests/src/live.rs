//! The local server for real, on a loopback port: its `/ws` live updates fed by the store's change feed, as
//! `cargo run` serves them; HTTP calls go through the in-process [`Api`] on the same store. A WebSocket
//! client (tokio-tungstenite) connects with tickets the API sells.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use adapters::store::ChangeFeed;
use domain::identity::Role;
use domain::store::Store;
use futures_util::{SinkExt, StreamExt};
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::api::{Api, DASHBOARD, SECRET};
use crate::TestStore;

/// How long a test waits for a frame before it fails (a guard against hanging, not a timing assertion).
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

pub struct LiveServer {
    pub addr: SocketAddr,
    pub api: Api,
    pub store: Arc<dyn Store>,
    pub sockets: local::live::LocalSockets,
}

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

impl LiveServer {
    /// A server on `t`'s store (its embedded database, in memory or on its file, or its DynamoDB Local
    /// table), with its change feed driving the local fanout. `t` must outlive the server (a file store's
    /// directory goes with it).
    pub async fn start(t: &TestStore) -> LiveServer {
        LiveServer::start_sending_with(t, None).await
    }

    /// As [`LiveServer::start`], replies to texting clients going through `text_sender` (e.g. the End
    /// User Messaging SDK clients against the fake) instead of the recorder.
    pub async fn start_sending_with(
        t: &TestStore,
        text_sender: Option<Arc<dyn domain::texting::TextSender>>,
    ) -> LiveServer {
        let (feed, changes) = ChangeFeed::channel();
        let store: Arc<dyn Store> = match t {
            TestStore::Embedded(s, _) => Arc::new((**s).clone().with_change_feed(feed)),
            TestStore::Dynamo(s) => Arc::new((**s).clone().with_change_feed(feed)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut services = local::LocalServices::recording(DASHBOARD, &format!("ws://{addr}/ws"));
        if let Some(sender) = text_sender {
            services.text_sender = sender;
        }
        let sockets = services.sockets.clone();
        local::live::spawn_fanout(
            store.clone(),
            sockets.clone(),
            services.text_sender.clone(),
            changes,
        );
        let app = local::app(store.clone(), SECRET, services.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        LiveServer {
            addr,
            api: Api::with_services(store.clone(), services),
            store,
            sockets,
        }
    }

    /// `POST /realtime/tickets` as `sub` (`department_id` for staff): the ticket's URL.
    pub async fn ticket(
        &self,
        practice: &str,
        role: Role,
        sub: &str,
        body: Option<Value>,
    ) -> String {
        let r = self
            .api
            .call_as(practice, role, sub, Method::POST, "/realtime/tickets", body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let url = r.body["url"].as_str().expect("url").to_owned();
        assert!(
            url.starts_with(&format!("ws://{}/ws?ticket=", self.addr)),
            "{url}"
        );
        url
    }

    /// A connection opened with a fresh ticket of `sub`.
    pub async fn connect(
        &self,
        practice: &str,
        role: Role,
        sub: &str,
        body: Option<Value>,
    ) -> Socket {
        let url = self.ticket(practice, role, sub, body).await;
        open(&url).await.expect("the ticket opens a connection")
    }
}

/// Opens `url`; the handshake's HTTP status when it is refused.
pub async fn open(url: &str) -> Result<Socket, StatusCode> {
    match tokio_tungstenite::connect_async(url).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(StatusCode::from_u16(response.status().as_u16()).expect("a status"))
        }
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

/// The next text frame, as JSON; fails after [`FRAME_WAIT`].
pub async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(FRAME_WAIT, socket.next())
            .await
            .expect("a frame within the wait")
            .expect("the connection is open")
            .expect("a frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("a JSON frame");
        }
    }
}

/// Frames until one satisfies `until` (returned last).
pub async fn frames_until(socket: &mut Socket, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = next_frame(socket).await;
        let done = until(&frame);
        frames.push(frame);
        if done {
            return frames;
        }
    }
}

/// Closes the connection as a browser does.
pub async fn close(mut socket: Socket) {
    let _ = socket.send(Message::Close(None)).await;
    while let Some(Ok(_)) = socket.next().await {}
}
