//! Lambda entry of the fanout: the table's DynamoDB stream (message and conversation items), each change
//! posted to the connections it concerns through the WebSocket API's `@connections`.

use std::sync::Arc;

use adapters::lambda::{serve_events, ColdStart, Error};
use adapters::realtime::ApiGatewayPoster;
use aws_lambda_events::event::dynamodb::Event;
use domain::store::ConnectionStore;
use serde_json::json;

/// What the fanout holds: the connections (read by practice, deleted when gone: its IAM policy) and the
/// `@connections` client.
struct Fanout {
    store: Arc<dyn ConnectionStore>,
    poster: ApiGatewayPoster,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    let fanout = Fanout {
        store: start.store(),
        poster: ApiGatewayPoster::new(&start.sdk, start.config.websocket_callback_url.as_deref()),
    };
    serve_events(fanout, |f, batch: Event| async move {
        let report =
            realtime::fanout_stream_batch(&*f.store, &f.poster, &batch, adapters::now()).await;
        tracing::info!(
            posted = report.posted,
            gone = report.gone,
            failed = report.failed,
            "fanout"
        );
        // Frames are nudges: no record is ever reported failed (a retry would repeat the batch's frames).
        Ok::<_, Error>(json!({"batchItemFailures": []}))
    })
    .await
}
