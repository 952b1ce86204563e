//! The conversation aggregate: conversations with their messages and transfers, and each client's one open
//! conversation per practice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::alert::PendingAlert;
use crate::conversation::rate_limit::{ClientRate, RateUpdate};
use crate::conversation::{
    Channel, Conversation, ConversationId, ConversationStatus, Message, Transfer,
};
use crate::department::Department;
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;

/// A client's open conversation, as the practice-wide uniqueness record (the claim) holds it: enough to
/// append a message without reading the conversation. The claim and the conversation both hold `last_seq`,
/// and every write that appends changes both in one atomic write, so they are always equal; an append
/// names the `last_seq` it read and fails (`VersionMismatch`) if another append came first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConversation {
    pub conversation_id: ConversationId,
    pub department_id: DepartmentId,
    #[serde(default)]
    pub department_name: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default = "app_channel")]
    pub channel: Channel,
    #[serde(default)]
    pub last_seq: u64,
    /// The conversation's copy: when it last got the after-hours text (what the inbound path reads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours_replied_at: Option<DateTime<Utc>>,
    /// The practice number or WhatsApp phone number id replies go out from (texted conversations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_from: Option<String>,
}

fn app_channel() -> Channel {
    Channel::App
}

impl OpenConversation {
    /// The claim of an open conversation.
    pub fn of(c: &Conversation) -> OpenConversation {
        OpenConversation {
            conversation_id: c.id.clone(),
            department_id: c.department_id.clone(),
            department_name: c.department_name.clone(),
            client_id: c.client_id.clone(),
            channel: c.channel,
            last_seq: c.last_seq,
            after_hours_replied_at: c.after_hours_replied_at,
            reply_from: c.reply_from.clone(),
        }
    }
}

/// What routing an inbound message needs, read in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingContext {
    pub practice: Option<Practice>,
    /// The department asked for (the default one when none was named).
    pub department: Option<Department>,
    pub open_conversation: Option<OpenConversation>,
    /// The client's rate-limit counters in the practice, if it has any.
    pub client_rate: Option<ClientRate>,
    /// When the client (a number) opted out of the practice's texts, if it has: its opt-out record.
    pub sms_opted_out_at: Option<DateTime<Utc>>,
}

/// What an opt-out keyword (STOP, …, START, UNSTOP) writes, in one atomic write: the number's opt-out record
/// of the practice, and the keyword as a message of the client's open conversation if it has one.
#[derive(Debug, Clone, PartialEq)]
pub struct OptKeywordWrite {
    pub practice_id: PracticeId,
    /// The client's number.
    pub number: String,
    /// `Some`: opted out since then (STOP); `None`: opted back in (START), the record removed.
    pub opted_out_at: Option<DateTime<Utc>>,
    /// The record as the routing context read it: the write fails (`VersionMismatch`) if it changed.
    pub read: Option<DateTime<Utc>>,
    /// The client's open conversation as read and the keyword's message in it (its `sms_opted_out_at` set
    /// to `opted_out_at` when it is an `sms` conversation; appended as by `append_messages`). `None`: the
    /// client has no open conversation, and the write fails (`ClientHasOpenConversation`) if one started.
    pub joins: Option<(OpenConversation, Message)>,
    /// The gateway's inbound message id, recorded with the message (`DuplicateInbound` if seen; naming
    /// no conversation, an empty id, when the keyword joined none).
    pub dedup_key: Option<String>,
    /// When the keyword arrived.
    pub received_at: DateTime<Utc>,
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
    /// The client's rate-limit counters, written with it (`VersionMismatch` if no longer as read).
    pub rate: Option<RateUpdate>,
}

/// A conversation with a page of its messages (in `seq` order, after a `seq`) and its transfers (oldest
/// first).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: Conversation,
    pub messages: Vec<Message>,
    pub transfers: Vec<Transfer>,
    /// The `seq` to ask after for the next page, or null when this page reaches the last message.
    pub next_after: Option<u64>,
}

/// Which messages of a conversation to read: those after `after`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageRange {
    pub after: u64,
    pub limit: usize,
}

impl MessageRange {
    /// Every message (stores and tests reading a conversation whole).
    pub const ALL: MessageRange = MessageRange {
        after: 0,
        limit: usize::MAX,
    };

    /// The page of `messages` (in `seq` order) this range selects, and the `next_after` to answer.
    pub fn page<'a>(
        &self,
        messages: impl IntoIterator<Item = &'a Message>,
    ) -> (Vec<Message>, Option<u64>) {
        let mut out: Vec<Message> = messages
            .into_iter()
            .filter(|m| m.seq > self.after)
            .take(self.limit.saturating_add(1))
            .cloned()
            .collect();
        let more = out.len() > self.limit;
        out.truncate(self.limit);
        let next_after = if more {
            out.last().map(|m| m.seq)
        } else {
            None
        };
        (out, next_after)
    }
}

/// A page of one conversation's messages, as its client reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub next_after: Option<u64>,
}

/// What a transfer reads before it moves a conversation, in one request.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferContext {
    pub conversation: Option<Conversation>,
    /// The department asked for, if it exists.
    pub target: Option<Department>,
    /// The body of the last message a person wrote (client or staff), which the alert quotes.
    pub preview: Option<String>,
    /// When the conversation was last transferred.
    pub last_transfer_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversationFilter {
    pub status: Option<ConversationStatus>,
    pub department_id: Option<DepartmentId>,
}

impl ConversationFilter {
    /// The statuses the list reads: the one asked for, else both (each a partition of the activity index).
    pub fn statuses(&self) -> Vec<ConversationStatus> {
        match self.status {
            Some(status) => vec![status],
            None => vec![ConversationStatus::Open, ConversationStatus::Resolved],
        }
    }
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
    /// The practice, the department `department_id`, the client's open conversation and its rate-limit
    /// counters: one read.
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext>;

    /// Starts a conversation atomically: the client's open-conversation claim (`ClientHasOpenConversation`
    /// if taken), the conversation and its messages, +1 on the department's `open_conversations` (`NotFound`
    /// if the department is gone), the pending alert, and the inbound dedup record (`DuplicateInbound`).
    /// An `sms` conversation's `sms_opted_out_at` is the number's opt-out record as read: `VersionMismatch`
    /// if the record no longer says so.
    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()>;

    /// An opt-out keyword's write ([`OptKeywordWrite`]), atomically: the opt-out record put (or removed)
    /// if still as read (`VersionMismatch`), and either the keyword appended to the open conversation (its
    /// rules as `append_messages`: `NotFound`, `VersionMismatch`, `DuplicateInbound`) or, with no
    /// conversation, the client still without an open one (`ClientHasOpenConversation`).
    async fn record_opt_keyword(&self, write: &OptKeywordWrite) -> StoreResult<()>;

    /// Appends messages (their `seq` following `open.last_seq`) to a conversation that is still open
    /// (`NotFound` otherwise) whose `last_seq` is still `open.last_seq` (`VersionMismatch` otherwise: read
    /// again), and moves its `last_message_at` to the last message's `at` and its `last_seq` (and the
    /// claim's) to the last message's; with `dedup_key`, `DuplicateInbound` if seen before.
    async fn append_messages(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
    ) -> StoreResult<()> {
        self.append_counted(practice_id, open, messages, dedup_key, None)
            .await
    }

    /// [`ConversationIntake::append_messages`], with the client's rate-limit counters written in the same
    /// atomic write (`VersionMismatch` if they are no longer as read).
    async fn append_counted(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
        rate: Option<&RateUpdate>,
    ) -> StoreResult<()>;
}

/// One conversation read whole: what staff open, and what a transfer reads before it moves one.
#[async_trait]
pub trait ConversationHistory: Send + Sync {
    /// The conversation with the messages of `range` and its transfers (on DynamoDB one query, and one
    /// read more when messages remain after the page).
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        range: MessageRange,
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
pub trait TransferStore: Send + Sync {
    /// The conversation, the target department and what the alert quotes: one read.
    async fn transfer_context(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        to: &DepartmentId,
    ) -> StoreResult<TransferContext>;

    /// Moves an open conversation from `transfer.from` to `transfer.to`, atomically: the conversation
    /// (`VersionMismatch` unless still open in `transfer.from` with `last_seq` as read), the transfer record,
    /// the system message `notice` (the next `seq`), −1/+1 on the two departments' `open_conversations`
    /// (`NotFound` if the target department is gone), the client's claim, and the target department's
    /// pending alert. Returns the moved conversation.
    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        notice: &Message,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation>;
}

/// The client's own view of its conversations (inbound-router's `/client/...` routes).
#[async_trait]
pub trait ClientConversations: Send + Sync {
    /// The client's app and web conversations in the practice, newest activity first (at most `limit`):
    /// one query.
    async fn client_conversations(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Conversation>>;

    /// The messages of `range` of the client's app or web conversation `id`: one query. `None` when the
    /// conversation is not this client's (another client's, a texted one, another practice's, none).
    async fn client_messages(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<MessagePage>>;
}
