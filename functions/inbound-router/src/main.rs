//! Lambda entry of the inbound-router function (API Gateway HTTP API, payload 2.0).

use adapters::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    start
        .serve_http(inbound_router::router(
            start.store(),
            &start.config.websocket_url,
            start.config.client_rate_limits,
        ))
        .await
}
