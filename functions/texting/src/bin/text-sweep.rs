//! Lambda entry of the sweep of stuck texts, run every minute by an EventBridge schedule: a text reply left
//! `queued` (its stream record lost or parked on the dead-letter queue) is sent once, and one left
//! `sending` by a sender that was killed mid-send becomes `unconfirmed`, for staff to retry
//! (`domain::texting::sweep_texts`). The schedule's event carries nothing the sweep needs.

use adapters::lambda::{serve_events, ColdStart, Error};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use domain::store::TextSenderStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What the sweep may touch (its IAM policy): the in-flight index, the texts' items and their practice.
    let store: std::sync::Arc<dyn TextSenderStore> = start.store();
    let sender = start.text_sender();
    serve_events(
        (store, sender),
        |(store, sender), _schedule: EventBridgeEvent<serde_json::Value>| async move {
            let report = texting::sweep(&**store, sender).await?;
            Ok::<_, Error>(report)
        },
    )
    .await
}
