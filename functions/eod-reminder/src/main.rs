//! Lambda entry of the eod-reminder function (EventBridge scheduled event).

use std::sync::Arc;

use adapters::lambda::{serve_events, ColdStart, Error};
use domain::store::ReminderRunStore;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What a run may touch (its IAM policy): the due index, the due departments' settings, the reminder's
    // claim with its alert. It sends nothing: the alert dispatcher delivers the alerts it stores.
    let store: Arc<dyn ReminderRunStore> = start.store();
    // The event is read here rather than by the runtime, so that anything but a scheduled event is refused
    // with a message saying what was expected.
    serve_events(store, |store, event: Value| async move {
        let run = eod_reminder::scheduled_run(event)?;
        let started = std::time::Instant::now();
        let paging = domain::reminder::Paging {
            page: domain::reminder::MAX_DUE_PER_RUN,
            time_for_another: &move || started.elapsed() < eod_reminder::PAGES_FOR,
        };
        let summary = eod_reminder::run(&**store, run, paging).await?;
        Ok::<_, Error>(summary)
    })
    .await
}
