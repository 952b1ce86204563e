//! Text replies on their way out: the message item is the outbox entry (written with the conversation change
//! that made it), and its `delivery` the record of the send.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::StoreResult;
use crate::conversation::{ConversationId, Delivery, DeliveryEvent, Message};
use crate::identity::PracticeId;

/// Where a text reply is stored: what the send's context carries, so a status event finds its item with no
/// read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TextRef {
    pub practice_id: PracticeId,
    pub conversation_id: ConversationId,
    pub seq: u64,
}

impl TextRef {
    pub fn of(practice_id: &PracticeId, message: &Message) -> TextRef {
        TextRef {
            practice_id: practice_id.clone(),
            conversation_id: message.conversation_id.clone(),
            seq: message.seq,
        }
    }
}

/// A text reply as the sender needs it: the message, its conversation's client (the number texted) and the
/// practice number or WhatsApp phone number id it goes out from (the conversation's `reply_from`; `None`
/// for conversations stored before it was recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredText {
    pub message: Message,
    pub client_id: String,
    pub reply_from: Option<String>,
}

#[async_trait]
pub trait TextOutbox: Send + Sync {
    /// The text at `text`, if it is one (a message with a `delivery`).
    async fn get_text(&self, text: &TextRef) -> StoreResult<Option<StoredText>>;

    /// Applies `event` to the text's delivery by [`Delivery::apply`]'s rule, in one conditional write:
    /// `Some` with the text after it when it changed, `None` when the event changed nothing (or there is no
    /// such text). Two events applied at once never both win over the same status.
    async fn apply_delivery_event(
        &self,
        text: &TextRef,
        event: &DeliveryEvent,
    ) -> StoreResult<Option<StoredText>>;

    /// The provider refused the text because its number opted out: records the opt-out of the practice
    /// (the record, and the text's conversation's `sms_opted_out_at`), keeping an earlier instant if the
    /// number was opted out already (so a replay changes nothing). Returns the instant recorded.
    async fn record_refused_opt_out(
        &self,
        text: &TextRef,
        number: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<DateTime<Utc>>;

    /// Replaces the delivery only if it is still `expected` (status and attempt): a staff retry.
    /// `VersionMismatch` when it moved meanwhile.
    async fn replace_delivery(
        &self,
        text: &TextRef,
        expected: &Delivery,
        new: &Delivery,
    ) -> StoreResult<StoredText>;

    /// Up to `limit` texts still in flight (`queued` or `sending`) that were queued before `queued_before`,
    /// oldest first, with their delivery: what the sweep of stuck texts reads. Cheap whatever the history:
    /// only texts in flight are listed (normally a handful, each for a second).
    async fn texts_in_flight(
        &self,
        queued_before: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<(TextRef, Delivery)>>;
}

/// Whether a message is a text in flight, by its delivery: the one rule both stores index by.
pub fn is_text_in_flight(message: &Message) -> bool {
    message
        .delivery
        .as_ref()
        .is_some_and(|d| d.status.in_flight())
}
