//! The end-of-day reminder on redb: the due departments from the DUE index (only those due are read), and
//! the conditional advance that claims a department's reminder with its outbox record, in one transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::conversation::Conversation;
use domain::identity::{DepartmentId, PracticeId};
use domain::reminder::{DueReminder, DueShards};
use domain::store::{ReminderClaim, ReminderStore, StoreError, StoreResult};
use redb::ReadableTable;

use super::alerts::insert_alert;
use super::conversations::open_in;
use super::settings::{store_department, stored_department, DUE_REMINDERS};
use super::{engine, EmbeddedStore};
use crate::store::{parse_sortable, sortable};

#[async_trait]
impl ReminderStore for EmbeddedStore {
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        shards: DueShards,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>> {
        // One table, not sharded: a range keeps the departments whose shard it holds (the same hash as on
        // DynamoDB), so runs over ranges split the departments exactly as they do there; the whole range
        // reads just what is due.
        let until = sortable(until);
        self.read(|tx| {
            let due = tx.open_table(DUE_REMINDERS).map_err(engine)?;
            let mut out = Vec::new();
            for row in due.iter().map_err(engine)? {
                let (key, _) = row.map_err(engine)?;
                let (at, department, practice) = key.value();
                if at > until.as_str() || out.len() == limit {
                    break;
                }
                let (practice_id, department_id) = (
                    PracticeId(practice.to_owned()),
                    DepartmentId(department.to_owned()),
                );
                if shards != DueShards::ALL && !shards.holds(&practice_id, &department_id) {
                    continue;
                }
                out.push(DueReminder {
                    practice_id,
                    department_id,
                    due_at: parse_sortable(at).ok_or_else(|| {
                        StoreError::Unavailable("embedded store: unreadable due instant".into())
                    })?,
                });
            }
            Ok(out)
        })
    }

    async fn open_conversations_in(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<Conversation>> {
        self.read(|tx| open_in(tx, practice_id, department_id))
    }

    async fn advance_reminder(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        alert: Option<&PendingAlert>,
    ) -> StoreResult<ReminderClaim> {
        let (practice_id, department_id) = (practice_id.clone(), department_id.clone());
        let alert = alert.cloned();
        self.write(move |tx| {
            let current = match stored_department(tx, &practice_id, &department_id)? {
                Some(d) if d.next_reminder_at == Some(from) => d,
                _ => return Ok(ReminderClaim::Lost),
            };
            if let Some(alert) = &alert {
                if !insert_alert(tx, alert)? {
                    return Ok(ReminderClaim::AlreadySent);
                }
            }
            let mut next = current.clone();
            next.next_reminder_at = to;
            store_department(tx, Some(&current), Some(&next))?;
            Ok(ReminderClaim::Claimed)
        })
        .await
    }
}
