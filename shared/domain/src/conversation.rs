//! Conversations: where an inbound message goes, and the conversation lifecycle.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::department::ChatSettings;
use crate::department::Department;
use crate::error::{ConflictCode, DomainError, DomainResult};
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;
use crate::schedule::{self, Availability, AvailabilityReason};

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);
        impl $name {
            pub fn as_str(&self) -> &str { &self.0 }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
        }
    };
}

string_id!(
    /// A conversation between a client and the practice.
    ConversationId
);
string_id!(
    /// A message of a conversation.
    MessageId
);
string_id!(
    /// A pending alert (the transactional outbox record).
    AlertId
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    App,
    Web,
    Sms,
    Whatsapp,
}

impl Channel {
    /// Texts cannot choose a department and are always taken, whatever the hours or the switch.
    pub fn is_text(self) -> bool {
        matches!(self, Channel::Sms | Channel::Whatsapp)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::App => "app",
            Channel::Web => "web",
            Channel::Sms => "sms",
            Channel::Whatsapp => "whatsapp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    Open,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    pub id: ConversationId,
    pub practice_id: PracticeId,
    pub department_id: DepartmentId,
    pub client_id: String,
    pub channel: Channel,
    pub status: ConversationStatus,
    pub started_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// The name of `department_id` when the conversation entered it (what the client's view shows).
    #[serde(default)]
    pub department_name: String,
    /// The `seq` of the conversation's last message (0 before the first).
    #[serde(default)]
    pub last_seq: u64,
}

/// Who wrote a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Author {
    Client {
        id: String,
    },
    Staff {
        id: String,
    },
    /// An automatic reply of the department (greeting, after-hours message).
    Auto {
        reply: AutoReplyKind,
    },
    /// The service's own notice in the conversation: a transfer to another department.
    System,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    /// 1, 2, 3, … within the conversation, in commit order: no gap, no repeat.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub author: Author,
    pub channel: Channel,
    pub body: String,
    /// The department the conversation was in when the message was stored, and its name then: a staff or
    /// automatic reply is shown to the client under this name.
    pub department_id: DepartmentId,
    pub department_name: String,
}

impl Message {
    /// Written by a person (the client or staff), not by the service: what an alert quotes.
    pub fn by_a_person(&self) -> bool {
        matches!(self.author, Author::Client { .. } | Author::Staff { .. })
    }
}

/// What the system message of a transfer says to the client.
pub fn transfer_notice(department_name: &str) -> String {
    format!("You are now chatting with {department_name}")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub from: DepartmentId,
    pub to: DepartmentId,
    pub by: String,
    pub at: DateTime<Utc>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoReplyKind {
    Greeting,
    AfterHours,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoReply {
    pub kind: AutoReplyKind,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The department is open: staff see it now.
    Delivered,
    /// The department is closed but takes messages after hours.
    AfterHoursMessageLeft,
}

/// How a new conversation is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub outcome: Outcome,
    pub auto_replies: Vec<AutoReply>,
}

/// What a NEW conversation on `channel` meets in a department whose availability is `a`: taken while open;
/// when closed, texts are always taken, and an app or web chat only when the department allows messages after
/// hours and is not switched offline; otherwise refused with `after_hours` or `offline`.
///
/// The one rule behind both [`admit`] (what `POST /inbound` does) and the public `accepts_messages_now` (what
/// the widget promises), so the two cannot disagree.
pub fn new_conversation_outcome(
    a: &Availability,
    chat: &ChatSettings,
    channel: Channel,
) -> Result<Outcome, ConflictCode> {
    if a.open {
        Ok(Outcome::Delivered)
    } else if channel.is_text() {
        Ok(Outcome::AfterHoursMessageLeft)
    } else if a.reason == AvailabilityReason::Offline {
        Err(ConflictCode::Offline)
    } else if chat.allow_messages_after_hours {
        Ok(Outcome::AfterHoursMessageLeft)
    } else {
        Err(ConflictCode::AfterHours)
    }
}

/// Whether a department takes a NEW conversation on `channel` at `at`, and with which auto-replies.
///
/// The rule is [`new_conversation_outcome`]. A refusal carries the after-hours message and `opens_at`. An
/// accepted app chat gets the department's greeting; an app or web chat taken while closed gets the
/// after-hours message.
pub fn admit(
    practice: &Practice,
    department: &Department,
    channel: Channel,
    at: DateTime<Utc>,
) -> DomainResult<Admission> {
    let s = &department.settings;
    let a = schedule::availability(&s.hours, &s.date_overrides, s.online, practice.timezone, at);
    let outcome = match new_conversation_outcome(&a, &s.chat, channel) {
        Ok(outcome) => outcome,
        Err(code) => {
            let what = match code {
                ConflictCode::Offline => "is offline and takes no new chats right now",
                _ => "is closed and takes no messages after hours",
            };
            return Err(DomainError::Conflict {
                code,
                message: format!("{} {what}", s.name),
                details: Some(json!({
                    "after_hours_message": s.chat.after_hours_message,
                    "opens_at": a.opens_at,
                })),
            });
        }
    };
    let mut auto_replies = Vec::new();
    if channel == Channel::App {
        if let Some(greeting) = &s.chat.greeting {
            auto_replies.push(AutoReply {
                kind: AutoReplyKind::Greeting,
                text: greeting.clone(),
            });
        }
    }
    if outcome == Outcome::AfterHoursMessageLeft && !channel.is_text() {
        auto_replies.push(AutoReply {
            kind: AutoReplyKind::AfterHours,
            text: s.chat.after_hours_message.clone(),
        });
    }
    Ok(Admission {
        outcome,
        auto_replies,
    })
}
