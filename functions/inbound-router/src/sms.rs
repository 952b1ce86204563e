//! Inbound texts from AWS End User Messaging two-way SMS, delivered through an SNS topic.
//! The practice is the one whose texting numbers hold `destinationNumber`; the text is then routed exactly
//! like `POST /inbound` with channel `sms`. SNS delivers at least once: `inboundMessageId` deduplicates.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use domain::conversation::{self, Channel, Inbound, Routed};
use domain::identity::Ids;
use domain::store::TextIntakeStore;
use domain::DomainError;

/// The notification End User Messaging publishes for an inbound text (the SNS message body).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundText {
    pub origination_number: String,
    pub destination_number: String,
    pub message_body: String,
    pub inbound_message_id: String,
}

/// What became of one text.
#[derive(Debug)]
pub enum TextOutcome {
    Routed(Routed),
    /// No practice texts from that number: nothing to do, and retrying would not help.
    UnknownDestination(String),
    /// The notification is not an inbound text this service understands.
    Unreadable(String),
}

/// Routes one SNS message. `Err` only for failures worth a retry (the store is unavailable).
pub async fn handle_text(
    store: &dyn TextIntakeStore,
    sns_message: &str,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Result<TextOutcome, DomainError> {
    let text: InboundText = match serde_json::from_str(sns_message) {
        Ok(t) => t,
        Err(e) => return Ok(TextOutcome::Unreadable(e.to_string())),
    };
    let destination = match conversation::text_sender(Some(&text.destination_number)) {
        Ok(n) => n,
        Err(_) => return Ok(TextOutcome::UnknownDestination(text.destination_number)),
    };
    let Some(practice_id) = store.practice_by_sms_number(&destination).await? else {
        return Ok(TextOutcome::UnknownDestination(destination));
    };
    let client_id = match conversation::text_sender(Some(&text.origination_number)) {
        Ok(n) => n,
        Err(e) => return Ok(TextOutcome::Unreadable(e.to_string())),
    };
    let body = text.message_body.trim();
    if body.is_empty() {
        return Ok(TextOutcome::Unreadable("empty message body".into()));
    }
    let inbound = Inbound {
        practice_id,
        channel: Channel::Sms,
        client_id,
        department_id: None,
        // Longer texts are cut rather than lost.
        body: body.chars().take(conversation::MAX_MESSAGE_CHARS).collect(),
        dedup_key: Some(format!("sms:{}", text.inbound_message_id)),
    };
    match conversation::route_inbound(store, inbound, now, ids).await {
        Ok(routed) => Ok(TextOutcome::Routed(routed)),
        Err(e @ DomainError::Unavailable(_)) => Err(e),
        // A rule refused it (e.g. the practice is not fully set up): retrying would not change that.
        Err(e) => Ok(TextOutcome::Unreadable(e.to_string())),
    }
}
