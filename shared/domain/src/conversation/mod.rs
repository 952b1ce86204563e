//! The conversation aggregate: what a conversation is (here), and one file per flow that changes or reads it.
//!
//! | flow | file | use case |
//! |---|---|---|
//! | a message arrives (app, web widget, text) | [`inbound`] | [`route_inbound`] (and [`new_conversation_outcome`], the rule a new chat meets) |
//! | a text says STOP / START (opt-out keywords) | [`inbound`] | [`route_inbound`] (the keyword by [`opt_keyword`]) |
//! | a text arrives while closed (the after-hours text) | [`inbound`] | [`route_inbound`] ([`after_hours_text_due`]) |
//! | a client writes faster than a person chats | [`rate_limit`] | [`rate_limit::count_message`], called by [`route_inbound`] |
//! | staff start a conversation | [`staff_start`] | [`staff_start()`] |
//! | staff reply | [`reply`] | [`staff_reply`] |
//! | staff retry a text that failed | [`retry`] | [`retry_text`] |
//! | staff end a conversation | [`end`] | [`end_conversation`] |
//! | staff transfer a conversation | [`transfer`] | [`transfer_conversation`] |
//! | staff list and open conversations | [`read`] | [`list_conversations`], [`conversation_detail`] |
//!
//! What the flows share is written once in `common.rs`: the message body rule, the messages of one write
//! (a message and its auto-replies), the retry of a write that lost a race. The behaviour is the HTTP API's
//! "Inbound messages" and "Conversations" (docs/api.md); the stores they call are [`crate::store`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::department::Department;
use crate::identity::{id_type, DepartmentId, PracticeId};

mod common;
pub mod delivery;
pub mod end;
pub mod inbound;
pub mod rate_limit;
pub mod read;
pub mod reply;
pub mod retry;
pub mod staff_start;
pub mod transfer;

pub use common::{sms_opted_out, text_sender, MAX_MESSAGE_CHARS};
pub use delivery::{
    opt_keyword, Delivery, DeliveryEvent, DeliveryStatus, FailureReason, OptKeyword,
};
pub use end::end_conversation;
pub use inbound::{
    admit, after_hours_text_due, inbound_from_caller, new_conversation_outcome, route_inbound,
    Admission, Inbound, InboundInput, Routed, MAX_IDEMPOTENCY_KEY_CHARS,
};
pub use read::{conversation_detail, list_conversations};
pub use reply::{staff_reply, staff_reply_with_key};
pub use retry::retry_text;
pub use staff_start::{staff_start, StartInput};
pub use transfer::{transfer_conversation, TransferInput};

id_type!(
    /// A conversation between a client and the practice.
    ConversationId
);
id_type!(
    /// A message of a conversation.
    MessageId
);
id_type!(
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
    /// When the client's number opted out of this practice's texts (`sms` conversations only): a copy of
    /// the opt-out record, kept on the item a staff reply reads, so the refusal costs no read more.
    #[serde(default)]
    pub sms_opted_out_at: Option<DateTime<Utc>>,
    /// When the conversation last got the department's after-hours text (texted conversations): one per
    /// closed period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_hours_replied_at: Option<DateTime<Utc>>,
    /// Texted conversations: the practice number (SMS) or WhatsApp phone number id the client wrote to,
    /// which replies go out from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_from: Option<String>,
    /// WhatsApp: when the client last wrote on WhatsApp (free-form replies only within 24 hours of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_whatsapp_at: Option<DateTime<Utc>>,
}

/// How long after the client's last WhatsApp message a free-form reply may go out (Meta's customer service
/// window).
pub const WHATSAPP_WINDOW: chrono::Duration = chrono::Duration::hours(24);

impl Conversation {
    /// A conversation that starts now in `department`: open, its first message at `now`, no message yet.
    pub fn start(
        id: ConversationId,
        practice_id: PracticeId,
        department: &Department,
        client_id: String,
        channel: Channel,
        now: DateTime<Utc>,
    ) -> Self {
        Conversation {
            id,
            practice_id,
            department_id: department.id.clone(),
            client_id,
            channel,
            status: ConversationStatus::Open,
            started_at: now,
            last_message_at: now,
            resolved_at: None,
            department_name: department.settings.name.clone(),
            last_seq: 0,
            sms_opted_out_at: None,
            after_hours_replied_at: None,
            reply_from: None,
            last_whatsapp_at: None,
        }
    }

    /// 409 `whatsapp_window_closed` when a free-form reply may not go out now: a WhatsApp conversation whose
    /// client last wrote on WhatsApp more than [`WHATSAPP_WINDOW`] ago (or never, as far as it records).
    pub fn reply_window_open(&self, now: DateTime<Utc>) -> crate::DomainResult<()> {
        if self.channel != Channel::Whatsapp {
            return Ok(());
        }
        match self.last_whatsapp_at {
            Some(at) if now - at <= WHATSAPP_WINDOW => Ok(()),
            last => Err(crate::DomainError::Conflict {
                code: crate::ConflictCode::WhatsappWindowClosed,
                message:
                    "the client last wrote on WhatsApp more than 24 hours ago: a free-form reply \
                          cannot be sent until they write again"
                        .into(),
                details: Some(serde_json::json!({ "last_whatsapp_at": last })),
            }),
        }
    }

    /// Its first messages were written: its `last_seq` becomes theirs (and the after-hours text among them,
    /// if any, its `after_hours_replied_at`).
    pub(crate) fn opened_with(&mut self, messages: &[Message]) {
        self.last_seq = messages.last().map_or(0, |m| m.seq);
        self.after_hours_replied_at = after_hours_reply_at(messages);
    }
}

/// When the after-hours text among `messages` was written, if there is one: what a write that stores them
/// records as the conversation's `after_hours_replied_at` (both stores derive it with this).
pub fn after_hours_reply_at(messages: &[Message]) -> Option<DateTime<Utc>> {
    messages
        .iter()
        .filter(|m| {
            m.author
                == Author::Auto {
                    reply: AutoReplyKind::AfterHours,
                }
        })
        .map(|m| m.at)
        .max()
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
    /// What became of it as a text: set on every reply that goes out by SMS or WhatsApp, `None` otherwise.
    #[serde(default)]
    pub delivery: Option<Delivery>,
}

/// When the client last wrote on WhatsApp among `messages`: what an append moves the conversation's
/// `last_whatsapp_at` to (both stores run this one rule).
pub fn last_whatsapp_message_at(messages: &[Message]) -> Option<DateTime<Utc>> {
    messages
        .iter()
        .filter(|m| m.channel == Channel::Whatsapp && matches!(m.author, Author::Client { .. }))
        .map(|m| m.at)
        .max()
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
    /// An opt-out keyword (STOP, …): the number is opted out of the practice's texts.
    OptedOut,
    /// START / UNSTOP: the number takes the practice's texts again.
    OptedIn,
}
