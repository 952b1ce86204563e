//! Lambda entry for inbound texts: an SNS event carrying AWS End User Messaging two-way SMS notifications.
//! A `lambda_http` function cannot take an SNS payload, so this entry is its own `lambda_runtime` binary.

use std::sync::Arc;

use adapters::config::Config;
use adapters::{now, UlidIds};
use domain::store::TextIntakeStore;
use inbound_router::sms::{handle_text, TextOutcome};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = Config::from_env()?;
    adapters::telemetry::init(&config);
    let sdk = adapters::aws::sdk_config(&config).await?;
    // What this entry may touch (its IAM policy): the number's owner and the conversation intake.
    let store: Arc<dyn TextIntakeStore> = adapters::aws::dynamo_store(&sdk, &config).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let store = store.clone();
        async move { handle(store, event.payload).await }
    }))
    .await
}

/// Routes every record; fails the invocation (so SNS retries it) only when the store was unavailable —
/// records already stored are deduplicated on the retry.
async fn handle(store: Arc<dyn TextIntakeStore>, event: Value) -> Result<Value, Error> {
    let records = event["Records"].as_array().cloned().unwrap_or_default();
    let (mut routed, mut skipped) = (0, 0);
    for record in &records {
        let message = record["Sns"]["Message"].as_str().unwrap_or_default();
        match handle_text(&*store, message, now(), &UlidIds).await? {
            TextOutcome::Routed(r) => {
                routed += 1;
                tracing::info!(conversation_id = %r.conversation_id, new = r.new_conversation, "text routed");
            }
            TextOutcome::UnknownDestination(number) => {
                skipped += 1;
                tracing::warn!(%number, "inbound text to a number no practice owns; dropped");
            }
            TextOutcome::Unreadable(reason) => {
                skipped += 1;
                tracing::warn!(%reason, "inbound text not routable; dropped");
            }
        }
    }
    Ok(json!({"records": records.len(), "routed": routed, "skipped": skipped}))
}
