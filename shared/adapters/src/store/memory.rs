//! The embedded store: plain maps behind one lock. It enforces the same rules as the DynamoDB store, in the
//! same order, so the contract suite can hold both to the same answers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::alert::{AlertRecord, AlertStatus, DeliveryOutcome, PendingAlert};
use domain::conversation::{
    AlertId, Conversation, ConversationId, ConversationStatus, Message, Transfer,
};
use domain::department::{name_key, Department};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::reminder::DueReminder;
use domain::store::{
    sort_departments, AlertOutbox, ConversationDetail, ConversationFilter, ConversationHistory,
    ConversationIntake, ConversationPage, ConversationStore, NewConversation, OpenConversation,
    PendingAlerts, PracticeConfig, ReminderClaim, ReminderStore, RoutingContext, SettingsLookup,
    SettingsStore, StoreError, StoreResult, TransferStore,
};

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

#[derive(Debug, Clone)]
struct ConversationRecord {
    conversation: Conversation,
    messages: Vec<Message>,
    transfers: Vec<Transfer>,
}

/// Newest activity first, ties by id (the same order as DynamoDB's GSI1 sort key).
fn activity_key(c: &Conversation) -> (DateTime<Utc>, ConversationId) {
    (c.last_message_at, c.id.clone())
}

fn new_alert_record(alert: &PendingAlert) -> AlertRecord {
    AlertRecord {
        alert: alert.clone(),
        status: AlertStatus::Pending,
        outcomes: Default::default(),
    }
}

impl Tables {
    fn alert_mut(
        &mut self,
        id: &AlertId,
    ) -> StoreResult<&mut (AlertRecord, HashMap<String, DateTime<Utc>>)> {
        self.alerts
            .iter_mut()
            .find(|(r, _)| &r.alert.id == id)
            .ok_or(StoreError::NotFound)
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    practice_id: PracticeId,
    last_message_at: DateTime<Utc>,
    id: ConversationId,
}

/// In-memory [`Store`]. Every write checks all its conditions before changing anything, under one lock, so
/// it is all-or-nothing; reads hand out clones.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every pending alert written so far, oldest first (tests and the local dispatcher read them).
    pub fn pending_alerts(&self) -> Vec<PendingAlert> {
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

/// Each number once, in the order given (the order conflicts are reported in).
fn distinct(numbers: &[String]) -> Vec<&String> {
    let mut seen = BTreeSet::new();
    numbers.iter().filter(|n| seen.insert(n.as_str())).collect()
}

impl Tables {
    fn department_key(department: &Department) -> (PracticeId, DepartmentId) {
        (department.practice_id.clone(), department.id.clone())
    }

    fn check_number_free(&self, number: &str, owner: &PracticeId) -> StoreResult<()> {
        match self.sms_numbers.get(number) {
            Some(current) if current != owner => Err(StoreError::SmsNumberTaken(number.to_owned())),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl SettingsLookup for MemoryStore {
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)> {
        let tables = self.lock();
        let practice = tables.practices.get(practice_id).cloned();
        let department = tables
            .departments
            .get(&(practice_id.clone(), department_id.clone()))
            .cloned();
        Ok((practice, department))
    }

    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        Ok(self.lock().sms_numbers.get(e164).cloned())
    }
}

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>> {
        let tables = self.lock();
        let Some(practice) = tables.practices.get(practice_id) else {
            return Ok(None);
        };
        let mut departments: Vec<Department> = tables
            .departments
            .values()
            .filter(|d| &d.practice_id == practice_id)
            .cloned()
            .collect();
        sort_departments(&mut departments);
        Ok(Some(PracticeConfig {
            practice: practice.clone(),
            departments,
        }))
    }

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>> {
        Ok(self.lock().practices.get(practice_id).cloned())
    }

    async fn create_practice(
        &self,
        practice: &Practice,
        default_department: &Department,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        if tables.practices.contains_key(&practice.id) {
            return Err(StoreError::AlreadyExists);
        }
        let numbers = distinct(&practice.sms_numbers);
        for number in &numbers {
            tables.check_number_free(number, &practice.id)?;
        }
        let dept_key = Tables::department_key(default_department);
        if tables.departments.contains_key(&dept_key) {
            return Err(StoreError::AlreadyExists);
        }
        let name = (
            default_department.practice_id.clone(),
            name_key(&default_department.settings.name),
        );
        if tables.department_names.contains_key(&name) {
            return Err(StoreError::DuplicateName);
        }

        tables
            .practices
            .insert(practice.id.clone(), practice.clone());
        for number in numbers {
            tables
                .sms_numbers
                .insert(number.clone(), practice.id.clone());
        }
        tables
            .department_names
            .insert(name, default_department.id.clone());
        tables
            .departments
            .insert(dept_key, default_department.clone());
        Ok(())
    }

    async fn update_practice(&self, practice: &Practice, previous: &Practice) -> StoreResult<()> {
        let mut tables = self.lock();
        let Some(current) = tables.practices.get(&practice.id) else {
            return Err(StoreError::NotFound);
        };
        if current.version != previous.version {
            return Err(StoreError::VersionMismatch);
        }
        let before = distinct(&previous.sms_numbers);
        let after = distinct(&practice.sms_numbers);
        let added: Vec<&String> = after
            .iter()
            .copied()
            .filter(|n| !before.contains(n))
            .collect();
        let removed: Vec<&String> = before
            .iter()
            .copied()
            .filter(|n| !after.contains(n))
            .collect();
        for number in &added {
            tables.check_number_free(number, &practice.id)?;
        }
        // A number being released must not belong to someone else (it cannot, unless the data is corrupt).
        for number in &removed {
            tables
                .check_number_free(number, &practice.id)
                .map_err(|_| {
                    StoreError::Unavailable("texting number record is inconsistent".into())
                })?;
        }

        for number in removed {
            tables.sms_numbers.remove(number.as_str());
        }
        for number in added {
            tables
                .sms_numbers
                .insert(number.clone(), practice.id.clone());
        }
        tables
            .practices
            .insert(practice.id.clone(), practice.clone());
        Ok(())
    }

    async fn create_department(&self, department: &Department) -> StoreResult<()> {
        let mut tables = self.lock();
        if !tables.practices.contains_key(&department.practice_id) {
            return Err(StoreError::NotFound);
        }
        let dept_key = Tables::department_key(department);
        if tables.departments.contains_key(&dept_key) {
            return Err(StoreError::AlreadyExists);
        }
        let name = (
            department.practice_id.clone(),
            name_key(&department.settings.name),
        );
        if tables.department_names.contains_key(&name) {
            return Err(StoreError::DuplicateName);
        }

        tables.department_names.insert(name, department.id.clone());
        tables.departments.insert(dept_key, department.clone());
        Ok(())
    }

    async fn update_department(
        &self,
        department: &Department,
        previous: &Department,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        let dept_key = Tables::department_key(department);
        let Some(current) = tables.departments.get(&dept_key) else {
            return Err(StoreError::NotFound);
        };
        if current.version != previous.version {
            return Err(StoreError::VersionMismatch);
        }
        let old_name = (
            department.practice_id.clone(),
            name_key(&current.settings.name),
        );
        let new_name = (
            department.practice_id.clone(),
            name_key(&department.settings.name),
        );
        let renamed = old_name != new_name;
        if renamed && tables.department_names.contains_key(&new_name) {
            return Err(StoreError::DuplicateName);
        }

        if renamed {
            // Release the old name only if it is this department's (it always is, unless data is corrupt).
            if tables.department_names.get(&old_name) == Some(&department.id) {
                tables.department_names.remove(&old_name);
            }
            tables
                .department_names
                .insert(new_name, department.id.clone());
        }
        // Only what a settings write owns: never `open_conversations`, `is_default` or `created_at`.
        let Some(stored) = tables.departments.get_mut(&dept_key) else {
            return Err(StoreError::NotFound);
        };
        stored.settings = department.settings.clone();
        stored.next_reminder_at = department.next_reminder_at;
        stored.version = department.version;
        stored.updated_at = department.updated_at;
        Ok(())
    }

    async fn delete_department(&self, department: &Department) -> StoreResult<()> {
        let mut tables = self.lock();
        let dept_key = Tables::department_key(department);
        let Some(current) = tables.departments.get(&dept_key) else {
            return Err(StoreError::NotFound);
        };
        if current.open_conversations > 0 {
            return Err(StoreError::HasOpenConversations);
        }
        // The stored name, not the caller's copy: it may have been renamed since the caller read it.
        let name = (
            department.practice_id.clone(),
            name_key(&current.settings.name),
        );
        if tables.department_names.get(&name) == Some(&department.id) {
            tables.department_names.remove(&name);
        }
        tables.departments.remove(&dept_key);
        Ok(())
    }
}

#[async_trait]
impl ConversationIntake for MemoryStore {
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        let tables = self.lock();
        Ok(RoutingContext {
            practice: tables.practices.get(practice_id).cloned(),
            department: tables
                .departments
                .get(&(practice_id.clone(), department_id.clone()))
                .cloned(),
            open_conversation: tables
                .open_claims
                .get(&(practice_id.clone(), client_id.to_owned()))
                .cloned(),
        })
    }

    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()> {
        let mut tables = self.lock();
        let c = &new.conversation;
        let claim_key = (c.practice_id.clone(), c.client_id.clone());
        // Same order of checks as the DynamoDB transaction's cancellation reasons.
        if tables.open_claims.contains_key(&claim_key) {
            return Err(StoreError::ClientHasOpenConversation);
        }
        let dept_key = (c.practice_id.clone(), c.department_id.clone());
        if !tables.departments.contains_key(&dept_key) {
            return Err(StoreError::NotFound);
        }
        let dedup = new
            .dedup_key
            .as_ref()
            .map(|k| (c.practice_id.clone(), k.clone()));
        if let Some(existing) = dedup.as_ref().and_then(|k| tables.inbound.get(k)) {
            return Err(StoreError::DuplicateInbound(existing.clone()));
        }
        tables.open_claims.insert(
            claim_key,
            OpenConversation {
                conversation_id: c.id.clone(),
                department_id: c.department_id.clone(),
            },
        );
        if let Some(d) = tables.departments.get_mut(&dept_key) {
            d.open_conversations += 1;
        }
        if let Some(k) = dedup {
            tables.inbound.insert(k, c.id.clone());
        }
        if let Some(alert) = &new.alert {
            tables
                .alerts
                .push((new_alert_record(alert), HashMap::new()));
        }
        tables.conversations.insert(
            (c.practice_id.clone(), c.id.clone()),
            ConversationRecord {
                conversation: c.clone(),
                messages: new.messages.clone(),
                transfers: Vec::new(),
            },
        );
        Ok(())
    }

    async fn append_messages(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        let key = (practice_id.clone(), open.conversation_id.clone());
        match tables.conversations.get(&key) {
            Some(r) if r.conversation.status == ConversationStatus::Open => {}
            _ => return Err(StoreError::NotFound),
        }
        let dedup = dedup_key.map(|k| (practice_id.clone(), k.to_owned()));
        if let Some(existing) = dedup.as_ref().and_then(|k| tables.inbound.get(k)) {
            return Err(StoreError::DuplicateInbound(existing.clone()));
        }
        if let Some(k) = dedup {
            tables.inbound.insert(k, open.conversation_id.clone());
        }
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::NotFound)?;
        if let Some(last) = messages.iter().map(|m| m.at).max() {
            record.conversation.last_message_at = last;
        }
        record.messages.extend(messages.iter().cloned());
        record
            .messages
            .sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(())
    }
}

#[async_trait]
impl ConversationHistory for MemoryStore {
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationDetail>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .get(&(practice_id.clone(), id.clone()))
            .map(|r| ConversationDetail {
                conversation: r.conversation.clone(),
                messages: r.messages.clone(),
                transfers: r.transfers.clone(),
            }))
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn get_conversation(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .get(&(practice_id.clone(), id.clone()))
            .map(|r| r.conversation.clone()))
    }

    async fn end_conversation(
        &self,
        conversation: &Conversation,
        at: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        let mut tables = self.lock();
        let key = (conversation.practice_id.clone(), conversation.id.clone());
        let current = tables
            .conversations
            .get(&key)
            .ok_or(StoreError::VersionMismatch)?;
        if current.conversation.status != ConversationStatus::Open
            || current.conversation.department_id != conversation.department_id
        {
            return Err(StoreError::VersionMismatch);
        }
        let claim_key = (
            conversation.practice_id.clone(),
            conversation.client_id.clone(),
        );
        if tables
            .open_claims
            .get(&claim_key)
            .map(|o| &o.conversation_id)
            != Some(&conversation.id)
        {
            return Err(StoreError::VersionMismatch);
        }
        tables.open_claims.remove(&claim_key);
        let dept_key = (
            conversation.practice_id.clone(),
            conversation.department_id.clone(),
        );
        if let Some(d) = tables.departments.get_mut(&dept_key) {
            d.open_conversations = d.open_conversations.saturating_sub(1);
        }
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::VersionMismatch)?;
        record.conversation.status = ConversationStatus::Resolved;
        record.conversation.resolved_at = Some(at);
        Ok(record.conversation.clone())
    }

    async fn list_conversations(
        &self,
        practice_id: &PracticeId,
        filter: &ConversationFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        let after = match cursor {
            None => None,
            Some(raw) => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(raw)
                    .map_err(|_| StoreError::BadCursor)?;
                let c: Cursor =
                    serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
                if &c.practice_id != practice_id {
                    return Err(StoreError::BadCursor);
                }
                Some((c.last_message_at, c.id))
            }
        };
        let tables = self.lock();
        let mut matching: Vec<&Conversation> = tables
            .conversations
            .iter()
            .filter(|((p, _), _)| p == practice_id)
            .map(|(_, r)| &r.conversation)
            .filter(|c| filter.status.is_none_or(|s| c.status == s))
            .filter(|c| {
                filter
                    .department_id
                    .as_ref()
                    .is_none_or(|d| &c.department_id == d)
            })
            .filter(|c| after.as_ref().is_none_or(|a| &activity_key(c) < a))
            .collect();
        matching.sort_by_key(|c| std::cmp::Reverse(activity_key(c)));
        let more = matching.len() > limit;
        let conversations: Vec<Conversation> = matching.into_iter().take(limit).cloned().collect();
        let next_cursor = match conversations.last() {
            Some(last) if more => {
                let c = Cursor {
                    practice_id: practice_id.clone(),
                    last_message_at: last.last_message_at,
                    id: last.id.clone(),
                };
                Some(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(serde_json::to_vec(&c).expect("cursor serializes")),
                )
            }
            _ => None,
        };
        Ok(ConversationPage {
            conversations,
            next_cursor,
        })
    }
}

#[async_trait]
impl TransferStore for MemoryStore {
    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        let mut tables = self.lock();
        let key = (conversation.practice_id.clone(), conversation.id.clone());
        match tables.conversations.get(&key) {
            Some(r)
                if r.conversation.status == ConversationStatus::Open
                    && r.conversation.department_id == transfer.from => {}
            _ => return Err(StoreError::VersionMismatch),
        }
        let to_key = (conversation.practice_id.clone(), transfer.to.clone());
        if !tables.departments.contains_key(&to_key) {
            return Err(StoreError::NotFound);
        }
        let from_key = (conversation.practice_id.clone(), transfer.from.clone());
        if let Some(d) = tables.departments.get_mut(&from_key) {
            d.open_conversations = d.open_conversations.saturating_sub(1);
        }
        if let Some(d) = tables.departments.get_mut(&to_key) {
            d.open_conversations += 1;
        }
        let claim_key = (
            conversation.practice_id.clone(),
            conversation.client_id.clone(),
        );
        if let Some(claim) = tables.open_claims.get_mut(&claim_key) {
            claim.department_id = transfer.to.clone();
        }
        tables
            .alerts
            .push((new_alert_record(alert), HashMap::new()));
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::VersionMismatch)?;
        record.conversation.department_id = transfer.to.clone();
        record.transfers.push(transfer.clone());
        Ok(record.conversation.clone())
    }
}

#[async_trait]
impl AlertOutbox for MemoryStore {
    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
        Ok(self
            .lock()
            .alerts
            .iter()
            .find(|(r, _)| &r.alert.id == id)
            .map(|(r, _)| r.clone()))
    }

    async fn claim_delivery(
        &self,
        id: &AlertId,
        key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tables = self.lock();
        let (record, claims) = tables.alert_mut(id)?;
        if record.outcomes.contains_key(key) || claims.get(key).is_some_and(|until| *until > now) {
            return Ok(false);
        }
        claims.insert(key.to_owned(), lease_until);
        Ok(true)
    }

    async fn release_delivery(&self, id: &AlertId, key: &str) -> StoreResult<()> {
        let mut tables = self.lock();
        tables.alert_mut(id)?.1.remove(key);
        Ok(())
    }

    async fn record_delivery(
        &self,
        id: &AlertId,
        key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        let (record, claims) = tables.alert_mut(id)?;
        record
            .outcomes
            .entry(key.to_owned())
            .or_insert_with(|| outcome.clone());
        claims.remove(key);
        Ok(())
    }

    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()> {
        let mut tables = self.lock();
        tables.alert_mut(id)?.0.status = AlertStatus::Done;
        Ok(())
    }
}

#[async_trait]
impl PendingAlerts for MemoryStore {
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>> {
        let tables = self.lock();
        Ok(tables
            .alerts
            .iter()
            .filter(|(r, _)| r.status == AlertStatus::Pending)
            .take(limit)
            .map(|(r, _)| r.alert.id.clone())
            .collect())
    }
}

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
