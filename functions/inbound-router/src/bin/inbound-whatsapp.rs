//! Lambda entry for WhatsApp: an SNS event carrying AWS End User Messaging Social notifications (client
//! messages and the statuses of replies; handled in `inbound_router::whatsapp`). Its own binary, as
//! `inbound-sms`: a `lambda_http` function cannot take an SNS payload.

use std::sync::Arc;

use adapters::lambda::{serve_events, ColdStart, Error};
use adapters::UlidIds;
use aws_lambda_events::event::sns::SnsEvent;
use domain::store::WhatsAppEventStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What this entry may touch (its IAM policy): the phone number id's owner, the conversation intake and
    // the replies' deliveries.
    let store: Arc<dyn WhatsAppEventStore> = start.store();
    serve_events(store, |store, event: SnsEvent| async move {
        let batch = inbound_router::whatsapp::handle_notifications(
            &**store,
            &event,
            adapters::now(),
            &UlidIds,
        )
        .await?;
        Ok::<_, Error>(batch)
    })
    .await
}
