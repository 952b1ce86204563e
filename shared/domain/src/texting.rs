//! Sending a text reply once: the protocol every sender runs (the stream-triggered `text-sender` on AWS, the
//! local server's worker), whatever carries the text (End User Messaging, or the local recorder).
//!
//! The reply's message item is the outbox entry, written with the conversation change. [`send_text`]
//! claims it (`queued` → `sending`, conditional: a replayed stream record, a retried Lambda or a second
//! worker finds it taken and sends nothing), calls the provider once, and records what came of it
//! (conditional, by the delivery rule, so a status event that overtook the answer stays). A call that timed
//! out after the provider may have taken it is `unconfirmed`, never sent again without a staff retry. A
//! provider error is recorded as `failed` with its reason, never shown as sent (Rocket.Chat #9921). The
//! provider's "opted out" refusal also records the number's opt-out of the practice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conversation::{
    Channel, ConversationId, DeliveryEvent, DeliveryStatus, FailureReason, MessageId,
};
use crate::error::DomainResult;
use crate::identity::DepartmentId;
use crate::store::{StoredText, TextOutbox, TextRef, TextSenderStore};

/// One text as a sender hands it to the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundText {
    /// Where it is stored, and the attempt: what the send's context carries back in status events.
    pub text: TextRef,
    pub attempt: u32,
    pub channel: Channel,
    /// The client's number.
    pub to: String,
    /// The practice's number (SMS) or WhatsApp phone number id.
    pub from: String,
    pub body: String,
    pub message_id: MessageId,
    pub conversation_id: ConversationId,
    pub department_id: DepartmentId,
}

/// What one provider call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Taken; the provider's id for it, when it gave one (WhatsApp statuses are found by it).
    Sent { provider_id: Option<String> },
    /// Refused or impossible, for good: recorded as `failed` with the reason.
    Refused(FailureReason),
    /// The call timed out or broke after the provider may have taken it.
    Unconfirmed,
}

/// A provider of texts. Implementations call the provider once (their SDK's retries off for that call) and
/// never return before they know which [`SendOutcome`] it is.
#[async_trait]
pub trait TextSender: Send + Sync {
    async fn send(&self, text: &OutboundText) -> SendOutcome;
}

/// What [`send_text`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendReport {
    /// Not a queued text (already claimed, sent, or gone): nothing sent.
    NothingToSend,
    /// Sent once; the delivery now stands at `status` (an overtaking status event may have moved it
    /// further than the send's own answer).
    Sent(DeliveryStatus),
    Failed(FailureReason),
    Unconfirmed,
}

/// The practice has no number to send from: the text fails visibly (staff can retry once one is set).
const NO_NUMBER: FailureReason = FailureReason::ProviderError;

/// Sends the text at `text` once, if it is still queued. `now` is read before the claim and after the
/// provider's answer. `Err` only when the store is unavailable (the caller's retry finds it claimed or
/// queued, never sends twice).
pub async fn send_text(
    store: &dyn TextSenderStore,
    sender: &dyn TextSender,
    text: &TextRef,
    now: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
) -> DomainResult<SendReport> {
    let Some(stored) = store.get_text(text).await? else {
        return Ok(SendReport::NothingToSend);
    };
    let Some(delivery) = stored.message.delivery.as_ref() else {
        return Ok(SendReport::NothingToSend);
    };
    if delivery.status != DeliveryStatus::Queued {
        return Ok(SendReport::NothingToSend);
    }
    let attempt = delivery.attempt;
    let claim = DeliveryEvent::new(DeliveryStatus::Sending, now(), Some(attempt));
    if store.apply_delivery_event(text, &claim).await?.is_none() {
        // Another sender claimed it first.
        return Ok(SendReport::NothingToSend);
    }
    let message = &stored.message;
    // From the number the client wrote to; a conversation that does not say (stored before it was
    // recorded) replies from the practice's first number on the channel.
    let from = match &stored.reply_from {
        Some(from) => Some(from.clone()),
        None => {
            let (practice, _) = store
                .practice_and_department(&text.practice_id, &message.department_id)
                .await?;
            practice.and_then(|p| p.default_reply_number(message.channel).map(str::to_owned))
        }
    };
    let outcome = match from {
        Some(from) => {
            let outbound = OutboundText {
                text: text.clone(),
                attempt,
                channel: message.channel,
                to: stored.client_id.clone(),
                from,
                body: message.body.clone(),
                message_id: message.id.clone(),
                conversation_id: message.conversation_id.clone(),
                department_id: message.department_id.clone(),
            };
            sender.send(&outbound).await
        }
        None => SendOutcome::Refused(NO_NUMBER),
    };
    let at = now();
    if outcome == SendOutcome::Refused(FailureReason::OptedOut) && message.channel == Channel::Sms {
        // The provider's own opt-out list refused it (episphere/connect #1104: STOP never ingested,
        // texting went on): the practice records the opt-out too. Before the outcome, so a crash between
        // the two loses neither (a replay finds the text claimed and sends nothing; the record keeps its
        // first instant).
        store
            .record_refused_opt_out(text, &stored.client_id, at)
            .await?;
    }
    let (event, report) = match outcome {
        SendOutcome::Sent { .. } => (
            DeliveryEvent::new(DeliveryStatus::Sent, at, Some(attempt)),
            None,
        ),
        SendOutcome::Refused(reason) => (
            DeliveryEvent::failed(reason, at, Some(attempt)),
            Some(SendReport::Failed(reason)),
        ),
        SendOutcome::Unconfirmed => (
            DeliveryEvent::new(DeliveryStatus::Unconfirmed, at, Some(attempt)),
            Some(SendReport::Unconfirmed),
        ),
    };
    let recorded = store.apply_delivery_event(text, &event).await?;
    Ok(match report {
        Some(report) => report,
        None => {
            // An event may have overtaken the answer (delivered already): say where it stands.
            let status = match recorded {
                Some(t) => t.message.delivery.map(|d| d.status),
                None => store
                    .get_text(text)
                    .await?
                    .and_then(|t| t.message.delivery.map(|d| d.status)),
            };
            SendReport::Sent(status.unwrap_or(DeliveryStatus::Sent))
        }
    })
}

/// Applies a provider's status event to its text: one conditional write by [`Delivery::apply`]'s rule
/// (`Some` with the text when it changed). An event that fails an SMS as `opted_out` (the carrier's or the
/// provider's opt-out list) records the opt-out as the sender's refusal does; that rare event alone reads
/// the text when it changed nothing (a redelivery after the record failed), so no opt-out is lost.
///
/// [`Delivery::apply`]: crate::conversation::Delivery::apply
pub async fn apply_status(
    store: &dyn TextOutbox,
    text: &TextRef,
    event: &DeliveryEvent,
) -> DomainResult<Option<StoredText>> {
    let changed = store.apply_delivery_event(text, event).await?;
    let opted_out =
        event.status == DeliveryStatus::Failed && event.reason == Some(FailureReason::OptedOut);
    if opted_out {
        let now = match &changed {
            Some(t) => Some(t.clone()),
            None => store.get_text(text).await?,
        };
        let failed_so = |t: &StoredText| {
            t.message.channel == Channel::Sms
                && t.message.delivery.as_ref().is_some_and(|d| {
                    d.status == DeliveryStatus::Failed && d.reason == Some(FailureReason::OptedOut)
                })
        };
        if let Some(t) = now.filter(failed_so) {
            store
                .record_refused_opt_out(text, &t.client_id, event.at)
                .await?;
        }
    }
    Ok(changed)
}

/// The texts a batch of committed changes leaves to send: replies stored queued, and texts a staff retry
/// queued again. What the stream-triggered sender and the local worker both run on.
pub fn texts_to_send(changes: &[crate::realtime::Change]) -> Vec<TextRef> {
    use crate::realtime::Change;
    changes
        .iter()
        .filter_map(|change| match change {
            Change::MessageCreated {
                practice_id,
                message,
                ..
            }
            | Change::DeliveryChanged {
                practice_id,
                message,
                ..
            } if message
                .delivery
                .as_ref()
                .is_some_and(|d| d.status == DeliveryStatus::Queued) =>
            {
                Some(TextRef::of(practice_id, message))
            }
            _ => None,
        })
        .collect()
}

/// How long a text may stand `queued` or `sending` before the sweep takes it over. Longer than a sender
/// holds a claim (one provider call of at most `SEND_TIMEOUT`, 5 s, inside a Lambda run of at most 60 s:
/// `template.yaml`, checked by a test) and than the stream takes to hand a new reply to the sender (about a
/// second), so the sweep never races a live sender; short enough that staff see a stuck text for what it is
/// within minutes.
pub const SWEEP_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// The most texts one sweep takes on; the next run (a minute later) takes the rest.
pub const SWEEP_BATCH: usize = 200;

/// What a sweep of stuck texts did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Texts in flight for longer than [`SWEEP_AFTER`].
    pub stuck: usize,
    /// Queued texts no sender ever claimed (their stream record was lost or parked on the dead-letter
    /// queue), sent now, once.
    pub sent: usize,
    /// Texts a sender claimed and never answered for (killed mid-send): now `unconfirmed`, for staff to
    /// retry if they judge it was not received. Never resent by the sweep: the provider may have taken it.
    pub unconfirmed: usize,
}

/// Takes over the texts stuck in flight: sends the queued ones no sender claimed, and marks `unconfirmed`
/// those a sender claimed and never recorded. Run every minute (the `text-sweep` entry; the local server's
/// worker). A text moved on meanwhile (a late sender, a status event) is left as it is: each step is the
/// same conditional write a sender makes.
pub async fn sweep_texts(
    store: &dyn TextSenderStore,
    sender: &dyn TextSender,
    now: &(dyn Fn() -> DateTime<Utc> + Send + Sync),
) -> DomainResult<SweepReport> {
    let stuck_before = now() - SWEEP_AFTER;
    let mut report = SweepReport::default();
    for (text, delivery) in store.texts_in_flight(stuck_before, SWEEP_BATCH).await? {
        // Queued long ago but claimed (or retried) lately: a sender has it.
        if delivery.updated_at > stuck_before {
            continue;
        }
        report.stuck += 1;
        if delivery.status == DeliveryStatus::Queued {
            let report_of_send = send_text(store, sender, &text, now).await?;
            report.sent += usize::from(report_of_send != SendReport::NothingToSend);
        } else {
            let gave_up =
                DeliveryEvent::new(DeliveryStatus::Unconfirmed, now(), Some(delivery.attempt));
            let changed = store.apply_delivery_event(&text, &gave_up).await?;
            report.unconfirmed += usize::from(changed.is_some());
        }
    }
    Ok(report)
}

/// The `Context` keys a send carries (the SMS event destination echoes them into each event).
pub mod context {
    pub const PRACTICE: &str = "practice_id";
    pub const CONVERSATION: &str = "conversation_id";
    pub const SEQ: &str = "seq";
    pub const ATTEMPT: &str = "attempt";
}

/// An End User Messaging SMS event, as its SNS event destination publishes it (the fields we read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SmsEvent {
    event_type: String,
    /// Milliseconds since the epoch.
    event_timestamp: i64,
    #[serde(default)]
    context: std::collections::HashMap<String, String>,
}

/// What an SMS configuration-set event says of one of our texts: where it is stored and the delivery
/// event, or `None` for events of no text of ours (no context) or that say nothing of where it stands.
pub fn sms_status_event(message: &str) -> Option<(TextRef, DeliveryEvent)> {
    let event: SmsEvent = serde_json::from_str(message).ok()?;
    let (status, reason) = crate::conversation::delivery::sms_event_status(&event.event_type)?;
    let text = TextRef {
        practice_id: crate::identity::PracticeId::parse(event.context.get(context::PRACTICE)?)?,
        conversation_id: ConversationId(event.context.get(context::CONVERSATION)?.clone()),
        seq: event.context.get(context::SEQ)?.parse().ok()?,
    };
    let attempt = event
        .context
        .get(context::ATTEMPT)
        .and_then(|a| a.parse().ok());
    let at = DateTime::from_timestamp_millis(event.event_timestamp)?;
    Some((
        text,
        DeliveryEvent {
            status,
            reason,
            at,
            attempt,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sms_delivery_event_names_its_text_and_attempt() {
        let message = r#"{"eventType":"TEXT_CARRIER_UNREACHABLE","eventVersion":"1.0","eventTimestamp":1795446300123,
            "isFinal":true,"originationPhoneNumber":"+12015550100","destinationPhoneNumber":"+12015550111",
            "messageId":"abc","context":{"practice_id":"prc_demo","conversation_id":"cnv_1","seq":"4","attempt":"2"}}"#;
        let (text, event) = sms_status_event(message).expect("ours");
        assert_eq!(text.practice_id.as_str(), "prc_demo");
        assert_eq!(text.conversation_id.0, "cnv_1");
        assert_eq!(text.seq, 4);
        assert_eq!(event.status, DeliveryStatus::Failed);
        assert_eq!(event.reason, Some(FailureReason::CarrierUnreachable));
        assert_eq!(event.attempt, Some(2));
        assert_eq!(event.at.timestamp_millis(), 1795446300123);
        // Not ours (no context), not JSON, or an event that says nothing: ignored.
        assert!(sms_status_event(r#"{"eventType":"TEXT_DELIVERED","eventTimestamp":1}"#).is_none());
        assert!(sms_status_event("nope").is_none());
        let queued = message.replace("TEXT_CARRIER_UNREACHABLE", "TEXT_QUEUED");
        assert!(sms_status_event(&queued).is_none());
    }
}
