//! Lambda entry of the eod-reminder function (EventBridge scheduled event).

use adapters::lambda::{serve_events, ColdStart, Error};
use domain::store::ReminderRunStore;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let start = ColdStart::new().await?;
    // What a run may touch (its IAM policy): the due index, the outbox, the due departments' settings.
    let reminders = start.alerting::<dyn ReminderRunStore>(start.store())?;
    // The event is read here rather than by the runtime, so that anything but a scheduled event is refused
    // with a message saying what was expected.
    serve_events(reminders, |r, event: Value| async move {
        let run = eod_reminder::scheduled_run(event)?;
        let started = std::time::Instant::now();
        let paging = domain::reminder::Paging {
            page: domain::reminder::MAX_DUE_PER_RUN,
            time_for_another: &move || started.elapsed() < eod_reminder::PAGES_FOR,
        };
        let summary =
            eod_reminder::run(&*r.store, &r.sender, run, &r.dashboard_url, paging).await?;
        Ok::<_, Error>(summary)
    })
    .await
}
