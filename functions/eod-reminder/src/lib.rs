//! The eod-reminder function: one run per EventBridge scheduled event. The run is for the event's `time`,
//! not the wall clock, so runs can be replayed and tested.

use chrono::{DateTime, Utc};
use serde_json::Value;

use domain::alert::AlertSender;
use domain::reminder::{run_reminders, RunSummary};
use domain::store::ReminderRunStore;
use domain::DomainError;

/// Why an event could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error("the scheduled event has no RFC 3339 `time`: {0}")]
    BadEvent(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// The instant a scheduled event is for.
pub fn event_time(event: &Value) -> Result<DateTime<Utc>, ReminderError> {
    let raw = event["time"]
        .as_str()
        .ok_or_else(|| ReminderError::BadEvent(event.to_string()))?;
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ReminderError::BadEvent(format!("{raw:?}: {e}")))
}

/// Runs the reminders for the event's instant and logs the summary.
pub async fn handle_event(
    store: &dyn ReminderRunStore,
    sender: &dyn AlertSender,
    event: &Value,
    dashboard_url: &str,
) -> Result<RunSummary, ReminderError> {
    let run_at = event_time(event)?;
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
