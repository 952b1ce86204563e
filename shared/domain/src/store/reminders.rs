//! The end-of-day reminder's side of the store: the departments due, their open conversations, and the
//! conditional advance that claims a department's reminder.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::alert::PendingAlert;
use crate::conversation::Conversation;
use crate::identity::{DepartmentId, PracticeId};
use crate::reminder::{DueReminder, DueShards};

/// What `advance_reminder` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReminderClaim {
    /// The due instant was advanced (and the reminder's outbox record written) by this call.
    Claimed,
    /// Another run advanced it first, or the department is gone.
    Lost,
    /// The reminder for that department and date was already written once.
    AlreadySent,
}

/// A reminder run's reads and writes (eod-reminder).
#[async_trait]
pub trait ReminderStore: Send + Sync {
    /// Departments of the due-index shards `shards` whose `next_reminder_at` is at or before `until`,
    /// earliest first, at most `limit`. Reads only the due ones of those shards (a sparse index on DynamoDB,
    /// one Query per shard), never the whole table.
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        shards: DueShards,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>>;

    /// The open conversations of one department (what its reminder lists). A read of the conversation
    /// aggregate, kept here so the reminder holds nothing else of it.
    async fn open_conversations_in(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<Conversation>>;

    /// Moves a department's `next_reminder_at` from `from` to `to` if it is still `from`, atomically with
    /// writing `alert` (the reminder's outbox record, whose id names the department and date) if given.
    async fn advance_reminder(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        alert: Option<&PendingAlert>,
    ) -> StoreResult<ReminderClaim>;
}
