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
