//! Alerts: what an alert is (here), what it says and to whom ([`text`]), and how it is delivered, each
//! delivery once ([`dispatch`]).
//!
//! An alert is written as a pending record in the same atomic write as the change that causes it (the
//! transactional outbox): a conversation a client started, a transfer, a department's end-of-day reminder
//! claimed. The dispatcher delivers it later (the table's stream on AWS, an in-process worker locally).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conversation::{AlertId, Channel, Conversation, ConversationId, Transfer};
use crate::identity::{DepartmentId, Ids, PracticeId};

pub mod dispatch;
pub mod text;

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

/// One alert to a department's recipients, as the outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingAlert {
    pub id: AlertId,
    pub practice_id: PracticeId,
    /// The department whose recipients are alerted.
    pub department_id: DepartmentId,
    pub created_at: DateTime<Utc>,
    /// What the alert is about. Stored flat beside the fields above, its `kind` naming the variant.
    #[serde(flatten)]
    pub subject: AlertSubject,
}

/// What an alert is about: one conversation (a new one, or one transferred), or a department's open
/// conversations at the end of its day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertSubject {
    /// A client started a conversation in the department.
    NewConversation(ConversationAlert),
    /// A conversation was handed to the department.
    Transfer(TransferAlert),
    /// The end-of-day reminder: the department's conversations still open.
    UnresolvedReminder { reminder: ReminderDigest },
}

/// The conversation an alert is about, as the alert quotes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationAlert {
    pub conversation_id: ConversationId,
    pub client_id: String,
    pub channel: Channel,
    /// The first words of the message that caused it.
    pub preview: String,
}

/// A transfer's alert: the conversation and the transfer (who, from where, the note).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferAlert {
    #[serde(flatten)]
    pub conversation: ConversationAlert,
    pub transfer: Transfer,
}

/// What an unresolved-conversation reminder lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderDigest {
    /// The practice-local date the reminder is for.
    pub date: chrono::NaiveDate,
    /// Oldest first.
    pub conversations: Vec<Conversation>,
}

impl ConversationAlert {
    fn of(conversation: &Conversation, message: &str) -> Self {
        ConversationAlert {
            conversation_id: conversation.id.clone(),
            client_id: conversation.client_id.clone(),
            channel: conversation.channel,
            preview: preview(message),
        }
    }
}

impl AlertSubject {
    pub fn kind(&self) -> AlertKind {
        match self {
            AlertSubject::NewConversation(_) => AlertKind::NewConversation,
            AlertSubject::Transfer(_) => AlertKind::Transfer,
            AlertSubject::UnresolvedReminder { .. } => AlertKind::UnresolvedReminder,
        }
    }

    /// The conversation a new-conversation or transfer alert is about (`None` for a reminder).
    pub fn conversation(&self) -> Option<&ConversationAlert> {
        match self {
            AlertSubject::NewConversation(c) => Some(c),
            AlertSubject::Transfer(t) => Some(&t.conversation),
            AlertSubject::UnresolvedReminder { .. } => None,
        }
    }

    /// The conversations the alert names: the one it is about, or every one a reminder lists.
    pub fn conversation_ids(&self) -> Vec<ConversationId> {
        match self {
            AlertSubject::UnresolvedReminder { reminder } => reminder
                .conversations
                .iter()
                .map(|c| c.id.clone())
                .collect(),
            other => other
                .conversation()
                .map(|c| vec![c.conversation_id.clone()])
                .unwrap_or_default(),
        }
    }
}

impl PendingAlert {
    pub fn kind(&self) -> AlertKind {
        self.subject.kind()
    }

    /// The alert of a conversation a client started: its department's recipients, quoting `message`.
    pub fn new_conversation(
        ids: &dyn Ids,
        conversation: &Conversation,
        message: &str,
        now: DateTime<Utc>,
    ) -> Self {
        PendingAlert {
            id: AlertId(ids.next("alr")),
            practice_id: conversation.practice_id.clone(),
            department_id: conversation.department_id.clone(),
            created_at: now,
            subject: AlertSubject::NewConversation(ConversationAlert::of(conversation, message)),
        }
    }

    /// The alert of a transfer: the target department's recipients, quoting the last message.
    pub fn transfer(
        ids: &dyn Ids,
        conversation: &Conversation,
        transfer: Transfer,
        last_message: &str,
        now: DateTime<Utc>,
    ) -> Self {
        PendingAlert {
            id: AlertId(ids.next("alr")),
            practice_id: conversation.practice_id.clone(),
            department_id: transfer.to.clone(),
            created_at: now,
            subject: AlertSubject::Transfer(TransferAlert {
                conversation: ConversationAlert::of(conversation, last_message),
                transfer,
            }),
        }
    }

    /// A department's end-of-day reminder, listing its open conversations. Its id is given: one per
    /// department and date ([`crate::reminder::reminder_alert_id`]).
    pub fn reminder(
        id: AlertId,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        digest: ReminderDigest,
        now: DateTime<Utc>,
    ) -> Self {
        PendingAlert {
            id,
            practice_id: practice_id.clone(),
            department_id: department_id.clone(),
            created_at: now,
            subject: AlertSubject::UnresolvedReminder { reminder: digest },
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn transfer_alert() -> Value {
        json!({
            "id": "alr_1", "practice_id": "prc_demo", "department_id": "dep_grooming_demo",
            "kind": "transfer", "conversation_id": "cnv_demo_bella", "client_id": "+12015550199",
            "channel": "sms", "created_at": "2026-11-23T15:05:00Z",
            "preview": "Can Bella's nails be trimmed on Saturday?",
            "transfer": {"from": "dep_team_prc_demo", "to": "dep_grooming_demo", "by": "usr_staff_demo",
                         "at": "2026-11-23T15:05:00Z", "note": "Nail trim question for Grooming"}
        })
    }

    /// Alerts are stored flat, as they were before the subject became an enum: the fields of the subject
    /// beside the alert's own, `kind` naming it.
    #[test]
    fn an_alert_is_stored_flat_with_its_kind() {
        let alert: PendingAlert =
            serde_json::from_value(transfer_alert()).expect("a transfer alert");
        let AlertSubject::Transfer(about) = &alert.subject else {
            panic!("{alert:?}");
        };
        assert_eq!(
            about.conversation.conversation_id.as_str(),
            "cnv_demo_bella"
        );
        assert_eq!(about.transfer.to, alert.department_id);
        assert_eq!(
            serde_json::to_value(&alert).expect("json"),
            transfer_alert()
        );
    }

    /// The shape written before (every alert with `conversation_id`, `client_id`, `channel`, `preview`,
    /// `transfer` and `reminder`, null where unused) still reads.
    #[test]
    fn alerts_of_the_earlier_shape_still_read() {
        let mut old = transfer_alert();
        old["reminder"] = Value::Null;
        let alert: PendingAlert = serde_json::from_value(old).expect("an old transfer alert");
        assert_eq!(alert.kind(), AlertKind::Transfer);

        let mut new_conversation = transfer_alert();
        new_conversation["kind"] = json!("new_conversation");
        new_conversation["transfer"] = Value::Null;
        new_conversation["reminder"] = Value::Null;
        let alert: PendingAlert =
            serde_json::from_value(new_conversation).expect("an old new-conversation alert");
        assert_eq!(
            alert.subject.conversation_ids(),
            vec![ConversationId("cnv_demo_bella".into())]
        );

        let mut reminder = transfer_alert();
        reminder["kind"] = json!("unresolved_reminder");
        reminder["channel"] = json!("app");
        reminder["transfer"] = Value::Null;
        reminder["reminder"] = json!({"date": "2026-11-23", "conversations": []});
        let alert: PendingAlert = serde_json::from_value(reminder).expect("an old reminder alert");
        assert_eq!(
            alert.subject,
            AlertSubject::UnresolvedReminder {
                reminder: ReminderDigest {
                    date: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).expect("a date"),
                    conversations: Vec::new(),
                }
            }
        );
        assert_eq!(alert.subject.conversation(), None);
    }

    #[test]
    fn an_alert_of_an_unknown_kind_does_not_read() {
        let mut pigeon = transfer_alert();
        pigeon["kind"] = json!("carrier_pigeon");
        assert!(serde_json::from_value::<PendingAlert>(pigeon).is_err());
        let mut no_transfer = transfer_alert();
        no_transfer["transfer"] = Value::Null;
        assert!(serde_json::from_value::<PendingAlert>(no_transfer).is_err());
    }
}
