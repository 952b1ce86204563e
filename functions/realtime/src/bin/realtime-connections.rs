//! Lambda entry of the WebSocket API's routes (`$connect`, `$disconnect`, `$default`).

use std::sync::Arc;

use adapters::lambda::{serve_events, ColdStart, Error};
use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use domain::store::RealtimeStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What the routes may touch (their IAM policy): tickets (taken) and connections.
    let store: Arc<dyn RealtimeStore> = start.store();
    serve_events(
        store,
        |store, event: ApiGatewayWebsocketProxyRequest| async move {
            Ok::<_, Error>(realtime::websocket_event(&**store, &event, adapters::now()).await)
        },
    )
    .await
}
