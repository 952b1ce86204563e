//! Lambda entry for inbound texts: an SNS event carrying AWS End User Messaging two-way SMS notifications
//! (handled in `inbound_router::sms`). A `lambda_http` function cannot take an SNS payload, so this entry is
//! its own binary.

use std::sync::Arc;

use adapters::lambda::{serve_events, ColdStart, Error};
use adapters::UlidIds;
use aws_lambda_events::event::sns::SnsEvent;
use domain::store::TextIntakeStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What this entry may touch (its IAM policy): the number's owner and the conversation intake.
    let store: Arc<dyn TextIntakeStore> = start.store();
    serve_events(store, |store, event: SnsEvent| async move {
        let texts =
            inbound_router::sms::handle_notifications(&**store, &event, adapters::now(), &UlidIds)
                .await?;
        Ok::<_, Error>(texts)
    })
    .await
}
