//! Lambda entry of the transfer endpoint (API Gateway HTTP API, payload 2.0).

use adapters::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    start
        .serve_http(transfer_alerts::router(start.store()))
        .await
}
