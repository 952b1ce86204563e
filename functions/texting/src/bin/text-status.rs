//! Lambda entry of the delivery status of SMS replies: the SMS configuration set's SNS event destination
//! hands it `TEXT_SENT`, `TEXT_DELIVERED`, `TEXT_BLOCKED`, … events, each applied to its text's
//! `delivery` by the forward-only rule in one conditional write (`texting::apply_status_batch`).

use adapters::lambda::{serve_events, ColdStart, Error};
use aws_lambda_events::event::sns::SnsEvent;
use domain::store::TextOutbox;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    let store: std::sync::Arc<dyn TextOutbox> = start.store();
    serve_events(store, |store, batch: SnsEvent| async move {
        let applied = texting::apply_status_batch(&**store, &batch).await?;
        Ok::<_, Error>(serde_json::json!({ "applied": applied }))
    })
    .await
}
