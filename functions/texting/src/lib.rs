//! Text replies on AWS: the send of a stream batch's queued texts (run by the alert dispatcher), the
//! status entry (`text-status`) and the sweep of stuck texts (`text-sweep`), each a thin shell over
//! `domain::texting` (the local server runs the same code in-process).
//!
//! The texts are sent by the alert dispatcher's Lambda, not a stream reader of their own: AWS advises at
//! most two readers per stream shard (the dispatcher and the fanout are the two), and the dispatcher is
//! already the reader for deliveries (bounded retries, per-record failures, an on-failure queue), which a
//! text is; the fanout's frames are nudges whose failures are dropped.

use aws_lambda_events::event::dynamodb::Event as DynamodbEvent;
use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use domain::store::{TextOutbox, TextSenderStore};
use domain::texting::{
    send_text, sms_status_event, sweep_texts, texts_to_send, SweepReport, TextSender,
};

/// Sends the texts a stream batch leaves queued, once each. Answers the records to retry: only those whose
/// store was unavailable (a send that happened is recorded, or it is `sending` and never sent twice).
pub async fn send_batch(
    store: &dyn TextSenderStore,
    sender: &dyn TextSender,
    event: &DynamodbEvent,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for record in &event.records {
        let Some(change) = adapters::store::change_of_record(record) else {
            continue;
        };
        for text in texts_to_send(std::slice::from_ref(&change)) {
            match send_text(store, sender, &text, &adapters::now).await {
                Ok(report) => tracing::info!(?text, ?report, "text reply"),
                Err(e) => {
                    tracing::error!(?text, error = %e, "text reply not sent; the stream will retry");
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = record.change.sequence_number.clone();
                    response.batch_item_failures.push(failure);
                }
            }
        }
    }
    response
}

/// Applies each SMS delivery event of an SNS batch (one conditional write each). `Err` when the store was
/// unavailable: the invocation fails and SNS retries it (applying an event twice changes nothing).
pub async fn apply_status_batch(store: &dyn TextOutbox, event: &SnsEvent) -> Result<usize, String> {
    let mut applied = 0;
    for record in &event.records {
        let Some((text, status)) = sms_status_event(&record.sns.message) else {
            tracing::debug!("an SMS event of no text of ours");
            continue;
        };
        match store.apply_delivery_event(&text, &status).await {
            Ok(Some(_)) => applied += 1,
            Ok(None) => tracing::info!(?text, ?status, "late or repeated status, nothing changed"),
            Err(e) => return Err(format!("status of {text:?} not recorded: {e}")),
        }
    }
    Ok(applied)
}

/// One sweep of the texts stuck in flight (every minute). `Err` when the store was unavailable: the run
/// fails, and the next one, a minute later, takes over what this one left.
pub async fn sweep(
    store: &dyn TextSenderStore,
    sender: &dyn TextSender,
) -> Result<SweepReport, String> {
    let report = sweep_texts(store, sender, &adapters::now)
        .await
        .map_err(|e| format!("sweep of stuck texts stopped: {e}"))?;
    if report.stuck > 0 {
        tracing::warn!(?report, "stuck texts taken over");
    }
    Ok(report)
}
