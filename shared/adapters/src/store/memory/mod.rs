//! The embedded store: plain maps behind one lock, one file per aggregate as in the DynamoDB store. It
//! enforces the same rules as the DynamoDB store, in the same order, so the contract suites hold both to the
//! same answers. Every write checks all its conditions before changing anything, under the one lock, so it
//! is all-or-nothing; reads hand out clones.

mod alerts;
mod conversations;
mod reminders;
mod settings;

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use domain::alert::AlertRecord;
use domain::conversation::ConversationId;
use domain::department::Department;
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::OpenConversation;

use conversations::ConversationRecord;

#[derive(Debug, Default)]
struct Tables {
    practices: HashMap<PracticeId, Practice>,
    departments: HashMap<(PracticeId, DepartmentId), Department>,
    /// (practice, `name_key`) → the department holding that name.
    department_names: HashMap<(PracticeId, String), DepartmentId>,
    /// E.164 → the practice that owns the texting number.
    sms_numbers: HashMap<String, PracticeId>,
    conversations: HashMap<(PracticeId, ConversationId), ConversationRecord>,
    /// (practice, client) → the client's open conversation.
    open_claims: HashMap<(PracticeId, String), OpenConversation>,
    /// (practice, gateway message id) → the conversation it was stored in.
    inbound: HashMap<(PracticeId, String), ConversationId>,
    /// Alerts in the order they were written, with their delivery claims (key → lease end).
    alerts: Vec<(AlertRecord, HashMap<String, DateTime<Utc>>)>,
}

/// The store traits of `domain::store` in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every alert written so far, oldest first, whatever its status (for the tests).
    #[cfg(feature = "test-support")]
    pub fn pending_alerts(&self) -> Vec<domain::alert::PendingAlert> {
        self.lock()
            .alerts
            .iter()
            .map(|(r, _)| r.alert.clone())
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // No write panics half-way (checks come first), so a poisoned lock still guards consistent maps.
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
