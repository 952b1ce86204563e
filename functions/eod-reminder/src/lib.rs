//! The reminder runs: one run per EventBridge scheduled event (the `eod-reminder` entry), for the event's
//! `time`, not the wall clock, so runs can be replayed and tested. The run itself is
//! `domain::reminder::run_reminders`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde_json::Value;

use domain::alert::AlertSender;
use domain::reminder::{run_reminders, RunSummary};
use domain::store::ReminderRunStore;
use domain::DomainError;

/// Why an event could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error("not an EventBridge scheduled event with an RFC 3339 `time`: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// The instant a scheduled event is for: its `time`. Anything else is refused, so a wrong trigger runs
/// nothing (EventBridge's retry gets the same answer).
pub fn scheduled_time(event: Value) -> Result<DateTime<Utc>, ReminderError> {
    let event: EventBridgeEvent =
        serde_json::from_value(event).map_err(|e| ReminderError::BadEvent(e.to_string()))?;
    event
        .time
        .ok_or_else(|| ReminderError::BadEvent("the event has no `time`".into()))
}

/// Runs the reminders due at `run_at` and logs the summary.
pub async fn run(
    store: &dyn ReminderRunStore,
    sender: &dyn AlertSender,
    run_at: DateTime<Utc>,
    dashboard_url: &str,
) -> Result<RunSummary, DomainError> {
    let summary = run_reminders(store, sender, run_at, dashboard_url).await?;
    tracing::info!(
        run_at = %summary.run_at,
        due = summary.due,
        departments_reminded = summary.departments_reminded,
        reminders_sent = summary.reminders_sent,
        nothing_open = summary.nothing_open,
        already_handled = summary.already_handled,
        failures = summary.failures,
        "reminder run"
    );
    Ok(summary)
}
