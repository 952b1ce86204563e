//! Lambda entry of the config-api function (API Gateway HTTP API, payload 2.0).

use adapters::lambda::{ColdStart, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    start.serve_http(config_api::router(start.store())).await
}
