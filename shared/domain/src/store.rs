//! The storage port. Two adapters implement it (DynamoDB and the embedded in-memory store, in `adapters`)
//! and one contract test suite holds both to the same answers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::alert::{AlertRecord, DeliveryOutcome, PendingAlert};
use crate::conversation::{
    AlertId, Conversation, ConversationId, ConversationStatus, Message, Transfer,
};
use crate::department::Department;
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A create found the record already there.
    #[error("the record already exists")]
    AlreadyExists,
    /// The record to change is not there (or was deleted meanwhile).
    #[error("the record does not exist")]
    NotFound,
    /// The record changed since it was read (optimistic concurrency).
    #[error("the record was changed concurrently")]
    VersionMismatch,
    /// Another department of the practice has this name (case-insensitive).
    #[error("a department with this name exists")]
    DuplicateName,
    /// A texting number already belongs to another practice.
    #[error("texting number {0} belongs to another practice")]
    SmsNumberTaken(String),
    /// The department still has open conversations.
    #[error("the department has open conversations")]
    HasOpenConversations,
    /// The client already has an open conversation in the practice.
    #[error("the client already has an open conversation")]
    ClientHasOpenConversation,
    /// This inbound message (gateway message id) was stored before, in the conversation named.
    #[error("inbound message already stored in conversation {0}")]
    DuplicateInbound(ConversationId),
    /// A list cursor that this store did not hand out.
    #[error("bad cursor")]
    BadCursor,
    /// The backing service failed or throttled after its retries.
    #[error("{0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A practice with all its departments, read together (one query on DynamoDB).
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeConfig {
    pub practice: Practice,
    /// Default department first, then by name (case-insensitive).
    pub departments: Vec<Department>,
}

/// Orders departments as every list answers them: default first, then by name.
pub fn sort_departments(departments: &mut [Department]) {
    departments.sort_by(|a, b| {
        b.is_default
            .cmp(&a.is_default)
            .then_with(|| {
                a.settings
                    .name
                    .to_lowercase()
                    .cmp(&b.settings.name.to_lowercase())
            })
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// A client's open conversation, as the practice-wide uniqueness record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConversation {
    pub conversation_id: ConversationId,
    pub department_id: DepartmentId,
}

/// What routing an inbound message needs, read in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingContext {
    pub practice: Option<Practice>,
    /// The department asked for (the default one when none was named).
    pub department: Option<Department>,
    pub open_conversation: Option<OpenConversation>,
}

/// A conversation to start, with everything written in the same atomic write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    pub conversation: Conversation,
    /// The first message and any auto-replies.
    pub messages: Vec<Message>,
    /// The department's new-conversation alert (transactional outbox), if one is due.
    pub alert: Option<PendingAlert>,
    /// The gateway's inbound message id, so a redelivery is not stored twice.
    pub dedup_key: Option<String>,
}

/// A conversation with its messages (oldest first) and transfers (oldest first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub messages: Vec<Message>,
    pub transfers: Vec<Transfer>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub department_id: Option<DepartmentId>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationPage {
    /// Newest activity (`last_message_at`) first.
    pub conversations: Vec<Conversation>,
    pub next_cursor: Option<String>,
}

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

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The practice and every department, in list order. `None` when the practice is not set up.
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>>;

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>>;

    /// The practice and one of its departments, read together.
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)>;

    /// Creates the practice with its default department, atomically: `AlreadyExists` if the practice is
    /// there, `SmsNumberTaken` if another practice owns one of its texting numbers.
    async fn create_practice(
        &self,
        practice: &Practice,
        default_department: &Department,
    ) -> StoreResult<()>;

    /// Replaces the practice if it is still at `previous.version` (`VersionMismatch` otherwise); texting
    /// numbers added are claimed (`SmsNumberTaken`), numbers removed are released. `practice.version` must
    /// be `previous.version + 1`.
    async fn update_practice(&self, practice: &Practice, previous: &Practice) -> StoreResult<()>;

    /// Adds a department to an existing practice: `DuplicateName` if the name is taken, `NotFound` if the
    /// practice does not exist.
    async fn create_department(&self, department: &Department) -> StoreResult<()>;

    /// Writes new settings if the department is still at `previous.version` (`VersionMismatch` otherwise,
    /// `NotFound` if deleted). Never touches `open_conversations`. A rename claims the new name
    /// (`DuplicateName`) and releases the old one. `department.version` must be `previous.version + 1`.
    async fn update_department(
        &self,
        department: &Department,
        previous: &Department,
    ) -> StoreResult<()>;

    /// Deletes a department that has no open conversations (`HasOpenConversations` otherwise, checked
    /// atomically with the delete); releases its name. `NotFound` if it is already gone.
    async fn delete_department(&self, department: &Department) -> StoreResult<()>;

    /// The practice that owns a texting number (E.164), if any.
    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>>;

    // --- Conversations ---

    /// The practice, the department `department_id` and the client's open conversation: one read.
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext>;

    /// Starts a conversation atomically: the client's open-conversation claim (`ClientHasOpenConversation`
    /// if taken), the conversation and its messages, +1 on the department's `open_conversations` (`NotFound`
    /// if the department is gone), the pending alert, and the inbound dedup record (`DuplicateInbound`).
    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()>;

    /// Appends messages to a conversation that is still open (`NotFound` otherwise) and moves its
    /// `last_message_at` to the last message's `at`; with `dedup_key`, `DuplicateInbound` if seen before.
    async fn append_messages(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
    ) -> StoreResult<()>;

    async fn get_conversation(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>>;

    /// The conversation with its messages and transfers (one query on DynamoDB).
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationDetail>>;

    /// Ends a conversation that is still open in `conversation.department_id` (`VersionMismatch` if it was
    /// moved or ended meanwhile): status resolved at `at`, the client's claim released, −1 on the department.
    /// Returns the ended conversation.
    async fn end_conversation(
        &self,
        conversation: &Conversation,
        at: DateTime<Utc>,
    ) -> StoreResult<Conversation>;

    /// A page of the practice's conversations, newest activity first. `BadCursor` for a foreign cursor.
    async fn list_conversations(
        &self,
        practice_id: &PracticeId,
        filter: &ConversationFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<ConversationPage>;

    /// Moves an open conversation from `transfer.from` to `transfer.to`, atomically: the conversation
    /// (`VersionMismatch` unless still open in `transfer.from`), the transfer record, −1/+1 on the two
    /// departments' `open_conversations` (`NotFound` if the target department is gone), the client's claim,
    /// and the target department's pending alert. Returns the moved conversation.
    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation>;

    // --- Alert delivery (the transactional outbox's other side) ---

    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>>;

    /// Takes the right to send delivery `key` of an alert until `lease_until`. `false` when its outcome is
    /// already recorded, or another dispatcher holds an unexpired lease (a duplicate stream record, a retry
    /// running beside the first attempt).
    async fn claim_delivery(
        &self,
        id: &AlertId,
        key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Gives up a claim after a temporary failure, so the next attempt may send at once.
    async fn release_delivery(&self, id: &AlertId, key: &str) -> StoreResult<()>;

    /// Records the final outcome of delivery `key`, once (a second record of the same key is ignored).
    async fn record_delivery(
        &self,
        id: &AlertId,
        key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()>;

    /// Marks the alert done: every delivery has its outcome.
    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()>;

    /// Up to `limit` alerts still pending, oldest first (for the local worker and for sweeps).
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>>;

    // --- End-of-day reminder ---

    /// Departments whose `next_reminder_at` is at or before `until`, earliest first, at most `limit`.
    /// Reads only the due ones (a sparse index on DynamoDB), never the whole table.
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<crate::reminder::DueReminder>>;

    /// The open conversations of one department.
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
