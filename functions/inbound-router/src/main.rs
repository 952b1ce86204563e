//! Lambda entry of the inbound-router function (API Gateway HTTP API, payload 2.0).

use adapters::config::Config;
use adapters::http::AppState;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    let sdk = adapters::aws::sdk_config().await;
    let store = adapters::aws::dynamo_store(&sdk, &config).await?;
    lambda_http::run(inbound_router::router(AppState::new(store))).await
}
