//! Lambda entry of the eod-reminder function (EventBridge scheduled event).

use std::sync::Arc;

use adapters::config::Config;
use adapters::senders::AwsSender;
use domain::store::ReminderRunStore;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    let sdk = adapters::aws::sdk_config(&config).await?;
    // What a run may touch (its IAM policy): the due index, the outbox, the due departments' settings.
    let store: Arc<dyn ReminderRunStore> = adapters::aws::dynamo_store(&sdk, &config).await?;
    let sender_email = config
        .sender_email
        .clone()
        .ok_or("SENDER_EMAIL is not set")?;
    let sender = Arc::new(AwsSender::new(&sdk, sender_email));
    let dashboard_url = Arc::new(config.dashboard_url.clone());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (store, sender, dashboard_url) = (store.clone(), sender.clone(), dashboard_url.clone());
        async move {
            let summary =
                eod_reminder::handle_event(&*store, &*sender, &event.payload, &dashboard_url)
                    .await?;
            Ok::<Value, Error>(serde_json::to_value(summary)?)
        }
    }))
    .await
}
