//! The realtime function: the WebSocket API's routes (`$connect` takes the ticket in the query string,
//! `$disconnect` forgets the connection, `$default` ignores what a client sends) and the fanout that the
//! table's stream drives. The decisions are the domain's (`domain::realtime`); the local server runs the
//! same fanout on its own change feed and sockets.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use aws_lambda_events::event::dynamodb::Event as StreamBatch;
use chrono::{DateTime, Utc};
use domain::realtime::{self, ConnectionId, ConnectionPoster, FanoutReport};
use domain::store::{ConnectionStore, RealtimeStore};
use serde_json::{json, Value};

/// What a WebSocket route answers API Gateway: `{"statusCode"}`. On `$connect` anything but 2xx refuses
/// the connection (the client's handshake gets that status).
fn status(code: u16) -> Value {
    json!({"statusCode": code})
}

/// One WebSocket route event. A `$connect` without a valid, unused ticket is refused (401); a store failure
/// is 500 on `$connect` (the client may try again with a new ticket) and logged elsewhere.
pub async fn websocket_event(
    store: &dyn RealtimeStore,
    event: &ApiGatewayWebsocketProxyRequest,
    now: DateTime<Utc>,
) -> Value {
    let context = &event.request_context;
    let Some(id) = context.connection_id.clone().map(ConnectionId) else {
        tracing::warn!("a WebSocket event without a connection id");
        return status(400);
    };
    match context.route_key.as_deref() {
        Some("$connect") => {
            let ticket = event.query_string_parameters.first("ticket");
            match realtime::connect(store, ticket, id.clone(), now).await {
                Ok(Some(connection)) => {
                    tracing::info!(connection = %id, practice = %connection.subscriber.practice_id, role = connection.subscriber.role.as_str(), "connected");
                    status(200)
                }
                Ok(None) => status(401),
                Err(e) => {
                    tracing::warn!(connection = %id, error = %e, "connect failed");
                    status(500)
                }
            }
        }
        Some("$disconnect") => {
            if let Err(e) = realtime::disconnect(store, &id).await {
                // The record expires with its TTL, and a post to it answers 410 and deletes it.
                tracing::warn!(connection = %id, error = %e, "disconnect: the connection record stays until it expires");
            }
            status(200)
        }
        // Frames go one way (server to client); what a client sends (a keep-alive) is ignored.
        _ => status(200),
    }
}

/// One batch of the table's stream: the changes it carries, told to the connections concerned. Never fails:
/// frames are nudges, so a batch is never retried for them (a retry would repeat every frame).
pub async fn fanout_stream_batch(
    store: &dyn ConnectionStore,
    poster: &dyn ConnectionPoster,
    batch: &StreamBatch,
    now: DateTime<Utc>,
) -> FanoutReport {
    let changes: Vec<_> = batch
        .records
        .iter()
        .filter_map(adapters::store::change_of_record)
        .collect();
    let report = realtime::fanout(store, poster, &changes, now).await;
    if report.failed > 0 || report.lookups_failed > 0 {
        tracing::warn!(?report, "some frames were not posted");
    }
    report
}
