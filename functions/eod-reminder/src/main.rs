//! Lambda entry of the eod-reminder function (EventBridge scheduled event).

use std::sync::Arc;

use adapters::lambda::{serve_events, ColdStart, Error};
use adapters::senders::AwsSender;
use domain::store::ReminderRunStore;
use serde_json::Value;

/// What a run holds: the due index, the outbox and the due departments' settings (its IAM policy), the
/// sender, and the dashboard's address for the links in reminders.
struct Reminders {
    store: Arc<dyn ReminderRunStore>,
    sender: AwsSender,
    dashboard_url: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    let reminders = Reminders {
        store: start.store(),
        sender: start.alert_sender()?,
        dashboard_url: start.config.dashboard_url.clone(),
    };
    // The event is read here rather than by the runtime, so that anything but a scheduled event is refused
    // with a message saying what was expected.
    serve_events(reminders, |r, event: Value| async move {
        let run_at = eod_reminder::scheduled_time(event)?;
        let summary = eod_reminder::run(&*r.store, &r.sender, run_at, &r.dashboard_url).await?;
        Ok::<_, Error>(summary)
    })
    .await
}
