//! Lambda entry of the alert dispatcher: the table's DynamoDB stream, with partial batch responses
//! (`ReportBatchItemFailures`), delivering each pending alert through SES v2 and SNS.

use std::sync::Arc;

use adapters::config::Config;
use adapters::senders::AwsSender;
use domain::store::DispatchStore;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    // Clients are built once per cold start.
    let sdk = adapters::aws::sdk_config(&config).await?;
    // What the dispatcher may touch (its IAM policy): the outbox and the alert's practice and department.
    let store: Arc<dyn DispatchStore> = adapters::aws::dynamo_store(&sdk, &config).await?;
    let sender_email = config
        .sender_email
        .clone()
        .ok_or("SENDER_EMAIL is not set")?;
    let sender = Arc::new(AwsSender::new(&sdk, sender_email));
    let dashboard_url = Arc::new(config.dashboard_url.clone());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (store, sender, dashboard_url) = (store.clone(), sender.clone(), dashboard_url.clone());
        async move {
            let failures = transfer_alerts::dispatch_stream_batch(
                &*store,
                &*sender,
                &event.payload,
                adapters::now(),
                &dashboard_url,
            )
            .await;
            let items: Vec<Value> = failures
                .into_iter()
                .map(|s| json!({"itemIdentifier": s}))
                .collect();
            Ok::<Value, Error>(json!({"batchItemFailures": items}))
        }
    }))
    .await
}
