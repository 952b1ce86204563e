//! A text arrives: AWS End User Messaging two-way SMS notifications, delivered through an SNS topic to the
//! `inbound-sms` entry. The practice is the one whose texting numbers hold `destinationNumber`; the text is
//! then routed exactly like `POST /inbound` with channel `sms` (`domain::conversation::inbound`). SNS
//! delivers at least once: `inboundMessageId` deduplicates.

use aws_lambda_events::event::sns::SnsEvent;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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
        // Replies go out from the number the client texted.
        to: Some(destination),
        // Longer texts are cut rather than lost.
        body: body.chars().take(conversation::MAX_MESSAGE_CHARS).collect(),
        dedup_key: Some(format!("sms:{}", text.inbound_message_id)),
        // Texts are never refused for their rate.
        rate_limits: None,
    };
    route_text(store, inbound, now, ids).await
}

/// Routes a text a gateway handed over (SMS or WhatsApp). `Err` only when the store is unavailable.
pub(crate) async fn route_text(
    store: &dyn TextIntakeStore,
    inbound: Inbound,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Result<TextOutcome, DomainError> {
    match conversation::route_inbound(store, inbound, now, ids).await {
        Ok(routed) => Ok(TextOutcome::Routed(routed)),
        Err(e @ DomainError::Unavailable(_)) => Err(e),
        // A rule refused it (e.g. the practice is not fully set up): retrying would not change that.
        Err(e) => Ok(TextOutcome::Unreadable(e.to_string())),
    }
}

/// What became of one SNS event's texts: the invocation's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TextBatch {
    pub records: usize,
    pub routed: usize,
    /// Texts dropped: to a number no practice owns, or not a text this service can route.
    pub skipped: usize,
}

/// Routes every text of an SNS event. `Err` (so SNS delivers the event again) only when the store was
/// unavailable: the texts already stored are deduplicated on the retry.
pub async fn handle_notifications(
    store: &dyn TextIntakeStore,
    event: &SnsEvent,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Result<TextBatch, DomainError> {
    let mut batch = TextBatch {
        records: event.records.len(),
        ..TextBatch::default()
    };
    for record in &event.records {
        match handle_text(store, &record.sns.message, now, ids).await? {
            TextOutcome::Routed(r) => {
                batch.routed += 1;
                tracing::info!(conversation_id = ?r.conversation_id, new = r.new_conversation, outcome = ?r.outcome, "text routed");
            }
            TextOutcome::UnknownDestination(number) => {
                batch.skipped += 1;
                tracing::warn!(%number, "inbound text to a number no practice owns; dropped");
            }
            TextOutcome::Unreadable(reason) => {
                batch.skipped += 1;
                tracing::warn!(%reason, "inbound text not routable; dropped");
            }
        }
    }
    Ok(batch)
}
