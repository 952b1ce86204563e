//! WhatsApp arrives: the WhatsApp Business account's event destination in AWS End User Messaging Social is
//! an SNS topic, delivered to the `inbound-whatsapp` entry. One topic carries both what clients write and
//! the statuses of our replies (`domain::whatsapp` reads them):
//!
//! - a message is routed exactly like `POST /inbound` with channel `whatsapp` and `to` the practice's phone
//!   number id (the practice is the one whose `whatsapp_numbers` hold it), deduplicated on Meta's message
//!   id: SNS delivers at least once, and a replayed notification makes no second message or alert;
//! - a status updates its reply's `delivery` by the one delivery rule, in one conditional write.
//!
//! This entry sits beside `inbound-sms` in the inbound-router function because most of what it does is the
//! intake; the status half is the same domain call the `text-status` entry makes. A topic cannot be split
//! by kind upstream (the webhook entry is a JSON string inside the message, out of reach of SNS filter
//! policies), so one entry takes both.
//!
//! A notification may carry several messages and statuses. Each is handled on its own: one that cannot be
//! used (unreadable, to a number no practice owns, a status of no reply of ours) is logged and skipped, and
//! the others go on. When the store is unavailable for one, the rest are still tried and the invocation
//! then fails so SNS delivers the notification again; everything already done is deduplicated (messages)
//! or changes nothing the second time (statuses), so the retry only completes what failed. (SNS has no
//! partial batch answer: this is how a failure of one part stays the failure of that part only.)

use aws_lambda_events::event::sns::SnsEvent;
use chrono::{DateTime, Utc};
use serde::Serialize;

use domain::conversation::{self, Channel, Inbound};
use domain::identity::{Ids, PracticeId};
use domain::store::WhatsAppEventStore;
use domain::whatsapp::{notification_events, WhatsAppEvent, WhatsAppMessage};
use domain::DomainError;

use crate::sms::{route_text, TextOutcome};

/// What became of one SNS event's notifications: the invocation's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WhatsAppBatch {
    pub records: usize,
    /// Client messages stored (or found already stored: a redelivery).
    pub routed: usize,
    /// Statuses that moved a reply's delivery.
    pub statuses_applied: usize,
    /// Statuses that changed nothing (late, repeated, of an older attempt).
    pub statuses_unchanged: usize,
    /// What was dropped: unreadable, to a number no practice owns, a status of no reply of ours, kinds of
    /// messages this service does not take (reactions).
    pub skipped: usize,
}

/// The practice owning the number a message was written to, and the id replies go out from.
async fn owner(
    store: &dyn WhatsAppEventStore,
    message: &WhatsAppMessage,
) -> Result<Option<(PracticeId, String)>, DomainError> {
    for id in message.phone_number.candidates() {
        if let Some(practice_id) = store.practice_by_whatsapp_id(id).await? {
            return Ok(Some((practice_id, id.to_owned())));
        }
    }
    Ok(None)
}

/// Routes one WhatsApp message. `Err` only when the store is unavailable.
async fn handle_message(
    store: &dyn WhatsAppEventStore,
    message: WhatsAppMessage,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Result<TextOutcome, DomainError> {
    let Some((practice_id, to)) = owner(store, &message).await? else {
        return Ok(TextOutcome::UnknownDestination(message.phone_number.meta));
    };
    let client_id = match conversation::text_sender(Some(&message.from)) {
        Ok(n) => n,
        Err(e) => return Ok(TextOutcome::Unreadable(e.to_string())),
    };
    let inbound = Inbound {
        practice_id,
        channel: Channel::Whatsapp,
        client_id,
        department_id: None,
        to: Some(to),
        // Longer messages are cut rather than lost.
        body: message
            .body
            .chars()
            .take(conversation::MAX_MESSAGE_CHARS)
            .collect(),
        dedup_key: Some(format!("whatsapp:{}", message.id)),
        // Texts are never refused for their rate.
        rate_limits: None,
    };
    route_text(store, inbound, now, ids).await
}

/// Handles every message and status of an SNS event. `Err` (so SNS delivers the event again) when the store
/// was unavailable for any of them, after all the others were handled.
pub async fn handle_notifications(
    store: &dyn WhatsAppEventStore,
    event: &SnsEvent,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Result<WhatsAppBatch, DomainError> {
    let mut batch = WhatsAppBatch {
        records: event.records.len(),
        ..WhatsAppBatch::default()
    };
    let mut unavailable: Option<DomainError> = None;
    for record in &event.records {
        let events = match notification_events(&record.sns.message) {
            Ok(events) => events,
            Err(reason) => {
                batch.skipped += 1;
                tracing::warn!(%reason, "WhatsApp notification not readable; dropped");
                continue;
            }
        };
        for event in events {
            match event {
                WhatsAppEvent::Message(message) => {
                    let id = message.id.clone();
                    match handle_message(store, message, now, ids).await {
                        Ok(TextOutcome::Routed(r)) => {
                            batch.routed += 1;
                            tracing::info!(conversation_id = ?r.conversation_id, new = r.new_conversation, %id, "WhatsApp message routed");
                        }
                        Ok(TextOutcome::UnknownDestination(number)) => {
                            batch.skipped += 1;
                            tracing::warn!(phone_number_id = %number, %id, "WhatsApp message to a number no practice owns; dropped");
                        }
                        Ok(TextOutcome::Unreadable(reason)) => {
                            batch.skipped += 1;
                            tracing::warn!(%reason, %id, "WhatsApp message not routable; dropped");
                        }
                        Err(e) => {
                            tracing::error!(error = %e, %id, "WhatsApp message not stored; the notification will be retried");
                            unavailable.get_or_insert(e);
                        }
                    }
                }
                WhatsAppEvent::Status {
                    text,
                    event,
                    message_id,
                } => match store.apply_delivery_event(&text, &event).await {
                    Ok(Some(_)) => batch.statuses_applied += 1,
                    Ok(None) => {
                        batch.statuses_unchanged += 1;
                        tracing::info!(?text, ?event, %message_id, "late or repeated WhatsApp status, nothing changed");
                    }
                    Err(e) => {
                        tracing::error!(error = %e, ?text, %message_id, "WhatsApp status not recorded; the notification will be retried");
                        unavailable.get_or_insert(e.into());
                    }
                },
                WhatsAppEvent::Skipped(reason) => {
                    batch.skipped += 1;
                    tracing::info!(%reason, "WhatsApp event skipped");
                }
            }
        }
    }
    match unavailable {
        Some(e) => Err(e),
        None => Ok(batch),
    }
}
