//! Lambda entry of the inbound-router function (API Gateway HTTP API, payload 2.0).

use adapters::config::Config;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    let sdk = adapters::aws::sdk_config(&config).await?;
    let store = adapters::aws::dynamo_store(&sdk, &config).await?;
    let router = inbound_router::router(store, &config.websocket_url);
    lambda_http::run(adapters::auth::lambda_router(router, &config)).await
}
