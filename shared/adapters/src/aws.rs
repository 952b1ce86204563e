//! AWS SDK clients, built once per cold start. Endpoints for local emulators come from the SDK's own
//! `AWS_ENDPOINT_URL_<SERVICE>` variables, so there is no endpoint plumbing here.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use domain::store::Store;

use crate::config::{Config, ConfigError};
use crate::store::DynamoStore;

/// The shared SDK configuration (region, credentials, retry and timeout settings).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// The DynamoDB store on the configured table.
pub async fn dynamo_store(sdk: &SdkConfig, config: &Config) -> Result<Arc<dyn Store>, ConfigError> {
    let table = config.require_table()?;
    let client = aws_sdk_dynamodb::Client::new(sdk);
    Ok(Arc::new(DynamoStore::new(client, table)))
}
