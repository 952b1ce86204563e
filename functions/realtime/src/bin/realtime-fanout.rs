//! Lambda entry of the fanout: the table's DynamoDB stream (message and conversation items), each change
//! posted to the connections it concerns through the WebSocket API's `@connections`.

use std::sync::Arc;

use adapters::config::Config;
use adapters::realtime::ApiGatewayPoster;
use aws_lambda_events::event::dynamodb::Event;
use domain::store::ConnectionStore;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    // Clients are built once per cold start.
    let sdk = adapters::aws::sdk_config(&config).await?;
    // What the fanout may touch (its IAM policy): the connections (read by practice, deleted when gone).
    let store: Arc<dyn ConnectionStore> = adapters::aws::dynamo_store(&sdk, &config).await?;
    let poster = Arc::new(ApiGatewayPoster::new(
        &sdk,
        config.websocket_callback_url.as_deref(),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let (store, poster) = (store.clone(), poster.clone());
        async move {
            let report =
                realtime::fanout_stream_batch(&*store, &*poster, &event.payload, adapters::now())
                    .await;
            tracing::info!(
                posted = report.posted,
                gone = report.gone,
                failed = report.failed,
                "fanout"
            );
            // Frames are nudges: no record is ever reported failed (a retry would repeat the batch's frames).
            Ok::<_, Error>(json!({"batchItemFailures": []}))
        }
    }))
    .await
}
