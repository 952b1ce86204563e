//! The reminder runs: one run per EventBridge scheduled event (the `eod-reminder` entry), for the event's
//! `time`, not the wall clock, so runs can be replayed and tested, over the due-index shards its `detail`
//! names (`{"shards": {"first": 0, "last": 7}}`; none: every shard). The schedule's rule has one target per
//! range of shards, so one tick is several invocations, each reading only its shards (template.yaml,
//! docs/architecture.md). The run itself is `domain::reminder::run_reminders`: it stores each reminder, and
//! the alert dispatcher sends it from the table's stream, as every alert.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use domain::reminder::{run_reminders_paged, DueShards, Paging, RunSummary, DUE_SHARDS};
use domain::store::ReminderRunStore;
use domain::DomainError;

/// Why an event could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    #[error("not an EventBridge scheduled event with an RFC 3339 `time`: {0}")]
    BadEvent(String),
    #[error("the event's `detail.shards` is not a range of the due index's shards (`{{\"first\": a, \"last\": b}}`, 0 <= a <= b < {DUE_SHARDS}): {0}")]
    BadShards(String),
    #[error(transparent)]
    Domain(#[from] DomainError),
}

/// What one scheduled event runs: the instant and the shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledRun {
    /// The event's `time`.
    pub run_at: DateTime<Utc>,
    /// The event's `detail.shards`, every shard without one.
    pub shards: DueShards,
}

/// The `detail` of a scheduled event: `{}` from a plain schedule, `{"shards": {...}}` from one of the rule's
/// targets (its input transformer).
#[derive(Deserialize, Default)]
#[serde(default)]
struct RunDetail {
    shards: Option<ShardRange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShardRange {
    first: u32,
    last: u32,
}

/// The instant a scheduled event is for (its `time`) and the shards it names. Anything else is refused, so a
/// wrong trigger runs nothing (EventBridge's retry gets the same answer).
pub fn scheduled_run(event: Value) -> Result<ScheduledRun, ReminderError> {
    let event: EventBridgeEvent =
        serde_json::from_value(event).map_err(|e| ReminderError::BadEvent(e.to_string()))?;
    let run_at = event
        .time
        .ok_or_else(|| ReminderError::BadEvent("the event has no `time`".into()))?;
    let detail: RunDetail = match event.detail {
        Value::Null => RunDetail::default(),
        detail => {
            serde_json::from_value(detail).map_err(|e| ReminderError::BadShards(e.to_string()))?
        }
    };
    let shards = match detail.shards {
        None => DueShards::ALL,
        Some(ShardRange { first, last }) => DueShards::new(first, last)
            .ok_or_else(|| ReminderError::BadShards(format!("{first}..={last}")))?,
    };
    Ok(ScheduledRun { run_at, shards })
}

/// How long a run on AWS goes on starting pages of due departments: its Timeout is 300 s (template.yaml),
/// and a page of `MAX_DUE_PER_RUN` (5,000) takes about 40 s at the pace measured on DynamoDB Local
/// (BENCHMARKS.md §6), so the last page started before 200 s ends well inside it.
pub const PAGES_FOR: std::time::Duration = std::time::Duration::from_secs(200);

/// Runs the reminders of `shards` due at `run_at`, page after page as `paging` allows, and logs the
/// summary.
pub async fn run(
    store: &dyn ReminderRunStore,
    ScheduledRun { run_at, shards }: ScheduledRun,
    paging: Paging<'_>,
) -> Result<RunSummary, DomainError> {
    let summary = run_reminders_paged(store, run_at, shards, paging).await?;
    tracing::info!(
        run_at = %summary.run_at,
        first_shard = shards.first(),
        last_shard = shards.last(),
        due = summary.due,
        departments_reminded = summary.departments_reminded,
        nothing_open = summary.nothing_open,
        already_handled = summary.already_handled,
        failures = summary.failures,
        "reminder run"
    );
    Ok(summary)
}
