//! Lambda entry of the WebSocket API's routes (`$connect`, `$disconnect`, `$default`).

use std::sync::Arc;

use adapters::config::Config;
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use domain::store::RealtimeStore;
use lambda_runtime::{service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    let sdk = adapters::aws::sdk_config(&config).await?;
    // What the routes may touch (their IAM policy): tickets (taken) and connections.
    let store: Arc<dyn RealtimeStore> = adapters::aws::dynamo_store(&sdk, &config).await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| {
            let store = store.clone();
            async move {
                Ok::<_, Error>(
                    realtime::websocket_event(&*store, &event.payload, adapters::now()).await,
                )
            }
        },
    ))
    .await
}
