//! The conversation aggregate: conversations with their messages and transfers, and each client's one open
//! conversation per practice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::alert::PendingAlert;
use crate::conversation::{Conversation, ConversationId, ConversationStatus, Message, Transfer};
use crate::department::Department;
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;

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

/// Where messages come in: a message arrives (the app, the widget, a text), staff start a chat or reply.
/// Everything the inbound-text entry may touch of conversations.
#[async_trait]
pub trait ConversationIntake: Send + Sync {
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
}

/// One conversation read whole: what staff open, and what a transfer reads before it moves one.
#[async_trait]
pub trait ConversationHistory: Send + Sync {
    /// The conversation with its messages and transfers (one query on DynamoDB).
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationDetail>>;
}

/// Conversations as staff work them from the dashboard (inbound-router), beside the intake.
#[async_trait]
pub trait ConversationStore: ConversationIntake + ConversationHistory {
    async fn get_conversation(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>>;

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
}

/// Handing a conversation to another department (transfer-alerts).
#[async_trait]
pub trait TransferStore: ConversationHistory {
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
}
