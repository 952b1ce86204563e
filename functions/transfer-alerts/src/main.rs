//! Lambda entry of the transfer endpoint (API Gateway HTTP API, payload 2.0).

use adapters::config::Config;
use adapters::http::AppState;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    let sdk = adapters::aws::sdk_config().await;
    let store = adapters::aws::dynamo_store(&sdk, &config).await?;
    lambda_http::run(transfer_alerts::router(AppState::new(store))).await
}
