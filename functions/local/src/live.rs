//! Live updates on the local server: `ws://127.0.0.1:3000/ws?ticket=…` (what the WebSocket API is on AWS)
//! and the fanout fed by the store's change feed (what the table's stream is on AWS). The same domain code
//! decides who gets which frame (`domain::realtime`); here frames go to this process's own sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use domain::realtime::{self, Change, ConnectionId, ConnectionPoster, PostOutcome};
use domain::store::Store;
use domain::texting::{texts_to_send, TextSender};
use serde::Deserialize;
use tokio::sync::mpsc;

use adapters::http::ApiError;

/// The local server's open sockets, by connection id: where its fanout posts.
#[derive(Clone, Default)]
pub struct LocalSockets {
    open: Arc<Mutex<HashMap<ConnectionId, mpsc::UnboundedSender<String>>>>,
}

impl LocalSockets {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, mpsc::UnboundedSender<String>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How many sockets are open (tests, benchmarks).
    pub fn open_count(&self) -> usize {
        self.lock().len()
    }
}

#[async_trait]
impl ConnectionPoster for LocalSockets {
    async fn post(&self, connection: &ConnectionId, frame: &str) -> PostOutcome {
        let sent = self
            .lock()
            .get(connection)
            .map(|tx| tx.send(frame.to_owned()).is_ok());
        match sent {
            Some(true) => PostOutcome::Delivered,
            // Not this process's socket (any more): what API Gateway answers with 410.
            _ => PostOutcome::Gone,
        }
    }
}

#[derive(Deserialize)]
pub struct ConnectQuery {
    ticket: Option<String>,
}

/// `GET /ws?ticket=…`: the ticket is taken (once) before the upgrade; without a valid, unused one the
/// handshake is answered 401 and no socket opens.
pub async fn connect(
    State((store, sockets)): State<(Arc<dyn Store>, LocalSockets)>,
    Query(query): Query<ConnectQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let id = ConnectionId(adapters::new_id("conn"));
    match realtime::connect(
        &*store,
        query.ticket.as_deref(),
        id.clone(),
        adapters::now(),
    )
    .await
    {
        Ok(Some(_)) => {}
        Ok(None) => {
            return ApiError::Unauthenticated(
                "a live-updates connection needs a valid, unused ticket (POST /realtime/tickets)"
                    .into(),
            )
            .into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    }
    let (tx, rx) = mpsc::unbounded_channel();
    sockets.lock().insert(id.clone(), tx);
    upgrade.on_upgrade(move |socket| serve(socket, rx, id, store, sockets))
}

/// Frames out until either side closes; then the connection is forgotten, as `$disconnect` does.
async fn serve(
    mut socket: WebSocket,
    mut frames: mpsc::UnboundedReceiver<String>,
    id: ConnectionId,
    store: Arc<dyn Store>,
    sockets: LocalSockets,
) {
    loop {
        tokio::select! {
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if socket.send(Message::Text(frame.into())).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
            incoming = socket.recv() => match incoming {
                // What a client sends (a keep-alive) is ignored, as `$default` does on AWS.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    sockets.lock().remove(&id);
    if let Err(e) = realtime::disconnect(&*store, &id).await {
        tracing::warn!(connection = %id, error = %e, "the connection record stays until it expires");
    }
}

/// The local fanout: every batch of changes the store commits, told to the connections concerned; and the
/// text replies it holds, handed to `text_sender` (on AWS the table's stream feeds both).
pub fn spawn_fanout(
    store: Arc<dyn Store>,
    sockets: LocalSockets,
    text_sender: Arc<dyn TextSender>,
    mut changes: mpsc::UnboundedReceiver<Vec<Change>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(batch) = changes.recv().await {
            if !texts_to_send(&batch).is_empty() {
                let (store, sender, batch) = (store.clone(), text_sender.clone(), batch.clone());
                // Its own task: a slow provider never holds up live updates.
                tokio::spawn(async move { crate::send_texts(&*store, &*sender, &batch).await });
            }
            let report = realtime::fanout(&*store, &sockets, &batch, adapters::now()).await;
            if report.failed > 0 || report.lookups_failed > 0 {
                tracing::warn!(?report, "some frames were not posted");
            }
        }
    })
}
