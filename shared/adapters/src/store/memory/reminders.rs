//! The end-of-day reminder in memory: the due departments are those whose `next_reminder_at` has come.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::conversation::{Conversation, ConversationStatus};
use domain::identity::{DepartmentId, PracticeId};
use domain::reminder::DueReminder;
use domain::store::{ReminderClaim, ReminderStore, StoreResult};

use super::alerts::new_alert_record;
use super::MemoryStore;

#[async_trait]
impl ReminderStore for MemoryStore {
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>> {
        let tables = self.lock();
        let mut due: Vec<DueReminder> = tables
            .departments
            .values()
            .filter_map(|d| {
                let at = d.next_reminder_at.filter(|at| *at <= until)?;
                Some(DueReminder {
                    practice_id: d.practice_id.clone(),
                    department_id: d.id.clone(),
                    due_at: at,
                })
            })
            .collect();
        due.sort_by(|a, b| (a.due_at, &a.department_id).cmp(&(b.due_at, &b.department_id)));
        due.truncate(limit);
        Ok(due)
    }

    async fn open_conversations_in(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<Conversation>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .iter()
            .filter(|((p, _), r)| {
                p == practice_id
                    && &r.conversation.department_id == department_id
                    && r.conversation.status == ConversationStatus::Open
            })
            .map(|(_, r)| r.conversation.clone())
            .collect())
    }

    async fn advance_reminder(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        alert: Option<&PendingAlert>,
    ) -> StoreResult<ReminderClaim> {
        let mut tables = self.lock();
        let key = (practice_id.clone(), department_id.clone());
        match tables.departments.get(&key) {
            Some(d) if d.next_reminder_at == Some(from) => {}
            _ => return Ok(ReminderClaim::Lost),
        }
        if let Some(alert) = alert {
            if tables.alerts.iter().any(|(r, _)| r.alert.id == alert.id) {
                return Ok(ReminderClaim::AlreadySent);
            }
            tables
                .alerts
                .push((new_alert_record(alert), HashMap::new()));
        }
        if let Some(d) = tables.departments.get_mut(&key) {
            d.next_reminder_at = to;
        }
        Ok(ReminderClaim::Claimed)
    }
}
