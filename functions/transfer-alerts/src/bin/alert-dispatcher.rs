//! Lambda entry of the alert dispatcher: an alert is delivered, and a text reply is sent. The table's
//! DynamoDB stream hands this entry each inserted alert item, delivered through SES v2 and SNS by
//! `domain::alert::dispatch`, and each message item inserted or changed with a `queued` delivery, sent once
//! through End User Messaging by `texting::send_batch` (the stream's second reader is the fanout, and AWS
//! advises no more than two). Failures are reported per record (`ReportBatchItemFailures`), so the stream
//! retries only those and, past its retry limit, hands them to the on-failure destination instead of
//! dropping them.

use adapters::lambda::{serve_events, Alerting, ColdStart, Error};
use aws_lambda_events::event::dynamodb::Event as DynamodbEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use domain::alert::dispatch::{dispatch_alert, DispatchReport};
use domain::conversation::AlertId;
use domain::store::{DispatchStore, TextSenderStore};

/// The keys of a stream record's item; an alert's partition key is `ALERT#{alert_id}`.
#[derive(Deserialize)]
struct ItemKeys {
    #[serde(rename = "PK")]
    pk: String,
}

/// The alert ids a DynamoDB Streams batch carries: inserted `ALERT#` items. Returns (stream sequence
/// number, alert id) so failures can be reported per record.
fn alerts_in_stream_batch(event: &DynamodbEvent) -> Vec<(String, AlertId)> {
    event
        .records
        .iter()
        .filter(|record| record.event_name == "INSERT")
        .filter_map(|record| {
            let keys: ItemKeys = serde_dynamo::from_item(record.change.keys.clone()).ok()?;
            let id = keys.pk.strip_prefix("ALERT#")?;
            let sequence = record.change.sequence_number.clone().unwrap_or_default();
            Some((sequence, AlertId(id.to_owned())))
        })
        .collect()
}

/// Dispatches every alert of a batch; answers the records to retry (alerts left pending after the sender's
/// own retries, or a store that was unavailable).
async fn dispatch_batch(
    d: &Alerting<dyn DispatchStore>,
    event: &DynamodbEvent,
    now: DateTime<Utc>,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for (sequence, id) in alerts_in_stream_batch(event) {
        match dispatch_alert(&*d.store, &d.sender, &id, now, &d.dashboard_url).await {
            Ok(DispatchReport { done: true, .. }) => continue,
            Ok(report) => {
                tracing::warn!(alert_id = %id, ?report, "alert left pending; the stream will retry it");
            }
            Err(e) => {
                tracing::error!(alert_id = %id, error = %e, "alert dispatch failed");
            }
        }
        let mut failure = DynamoDbBatchItemFailure::default();
        failure.item_identifier = Some(sequence);
        response.batch_item_failures.push(failure);
    }
    response
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What the dispatcher may touch (its IAM policy): the outbox and the alert's practice and department.
    let dispatcher = start.alerting::<dyn DispatchStore>(start.store())?;
    // And what the text sender may touch: the text's item and its practice.
    let texts: std::sync::Arc<dyn TextSenderStore> = start.store();
    let text_sender = start.text_sender();
    serve_events(
        (dispatcher, texts, text_sender),
        |(d, texts, text_sender), batch: DynamodbEvent| async move {
            let mut response = dispatch_batch(d, &batch, adapters::now()).await;
            let sent = texting::send_batch(&**texts, text_sender, &batch).await;
            response
                .batch_item_failures
                .extend(sent.batch_item_failures);
            Ok::<_, Error>(response)
        },
    )
    .await
}
