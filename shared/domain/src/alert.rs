//! Alerts to send: written as pending records in the same atomic write as the change that causes them
//! (transactional outbox), delivered later by the dispatcher.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conversation::{AlertId, Channel, Conversation, ConversationId, Transfer};
use crate::identity::{DepartmentId, Ids, PracticeId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    NewConversation,
    Transfer,
    UnresolvedReminder,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::NewConversation => "new_conversation",
            AlertKind::Transfer => "transfer",
            AlertKind::UnresolvedReminder => "unresolved_reminder",
        }
    }
}

/// At most this many characters of the message are quoted in an alert.
pub const PREVIEW_CHARS: usize = 80;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAlert {
    pub id: AlertId,
    pub practice_id: PracticeId,
    /// The department whose recipients are alerted.
    pub department_id: DepartmentId,
    pub kind: AlertKind,
    pub conversation_id: ConversationId,
    pub client_id: String,
    pub channel: Channel,
    pub created_at: DateTime<Utc>,
    /// The first words of the message that caused it.
    pub preview: String,
    pub transfer: Option<Transfer>,
    /// For the unresolved-conversation reminder: the open conversations it lists.
    #[serde(default)]
    pub reminder: Option<ReminderDigest>,
}

/// What an unresolved-conversation reminder lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderDigest {
    /// The practice-local date the reminder is for.
    pub date: chrono::NaiveDate,
    /// Oldest first.
    pub conversations: Vec<Conversation>,
}

impl PendingAlert {
    pub fn new(
        ids: &dyn Ids,
        kind: AlertKind,
        conversation: &Conversation,
        department_id: &DepartmentId,
        transfer: Option<Transfer>,
        now: DateTime<Utc>,
    ) -> Self {
        PendingAlert {
            id: AlertId(ids.next("alr")),
            practice_id: conversation.practice_id.clone(),
            department_id: department_id.clone(),
            kind,
            conversation_id: conversation.id.clone(),
            client_id: conversation.client_id.clone(),
            channel: conversation.channel,
            created_at: now,
            preview: String::new(),
            transfer,
            reminder: None,
        }
    }

    pub fn with_preview(mut self, text: &str) -> Self {
        self.preview = preview(text);
        self
    }
}

/// The first words of a message, cut on a character boundary with an ellipsis.
pub fn preview(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= PREVIEW_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(PREVIEW_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// How one recipient is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryChannel {
    Email,
    Sms,
}

/// One message to one recipient, composed from an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub alert_id: AlertId,
    pub kind: AlertKind,
    pub channel: DeliveryChannel,
    /// An email address or an E.164 number.
    pub to: String,
    pub subject: String,
    /// Plain text (the whole SMS, or the email's text part).
    pub text: String,
    /// The email's HTML part (emails only).
    pub html: Option<String>,
    pub department_id: DepartmentId,
    pub conversation_ids: Vec<ConversationId>,
    /// The same for every attempt at this (alert, recipient): the sender passes it on so a receiver can
    /// recognise a repeat, and the store records the outcome under it.
    pub idempotency_key: String,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Throttling, a 5xx, a timeout: worth trying again later.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The provider refused this recipient or message for good (invalid address or number). Problems of our
    /// own account or configuration are transient: fixing them lets the alert go out.
    #[error("refused: {0}")]
    Permanent(String),
}

/// The port the dispatcher sends through: SES/SNS on AWS, a recording sender locally and in tests.
#[async_trait::async_trait]
pub trait AlertSender: Send + Sync {
    async fn send(&self, delivery: &Delivery) -> Result<(), SendError>;
}

/// The final outcome of one delivery, recorded once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum DeliveryOutcome {
    Sent { at: DateTime<Utc> },
    Failed { at: DateTime<Utc>, reason: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Some deliveries have no final outcome yet.
    Pending,
    /// Every delivery has its outcome.
    Done,
}

/// A pending alert as stored, with what became of each delivery so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub alert: PendingAlert,
    pub status: AlertStatus,
    /// idempotency key → outcome.
    pub outcomes: std::collections::BTreeMap<String, DeliveryOutcome>,
}
