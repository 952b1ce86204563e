//! WhatsApp through AWS End User Messaging Social: what the WhatsApp Business account's event destination
//! (an SNS topic) publishes, read into what this service does with it.
//!
//! Each SNS message is AWS's event header around Meta's webhook entry, as AWS documents it
//! ("Message and event format in AWS End User Messaging Social"):
//! `{"context": {"MetaWabaIds": [...], "MetaPhoneNumberIds": [{"metaPhoneNumberId", "arn"}]},
//! "whatsAppWebhookEntry": "<Meta's entry, as a JSON string>", "aws_account_id", "message_timestamp",
//! "messageId"}`. Meta's entry is `{"id", "changes": [{"field": "messages", "value": {"metadata":
//! {"phone_number_id", "display_phone_number"}, "messages": [...], "statuses": [...]}}]}`.
//!
//! - A message (`messages[]`: `from` is the client's number in digits, without `+`; `id` Meta's `wamid.…`;
//!   `timestamp` seconds) is routed as `POST /inbound` with channel `whatsapp`, `to` the practice's phone
//!   number id, deduplicated on its id. A text's body is `text.body`; a button or list answer its title;
//!   media, a location or contacts are stored as a placeholder naming what came (staff see that something
//!   arrived and read it on the phone); a reaction or an unsupported or system message is skipped.
//! - A status (`statuses[]`: `sent`, `delivered`, `read`, `failed` with `errors[]`) names Meta's message id
//!   (`wamid.…`, not the `messageId` `SendWhatsAppMessage` answers, which is AWS's own) and echoes the
//!   `biz_opaque_callback_data` the send carried: there the sender puts the reply's address and attempt
//!   ([`callback_data`]), as an SMS send carries its `Context`, so a status finds its reply with no read
//!   and no lookup record, even when it overtakes the send's own answer.
//!
//! The phone number id: Meta's webhook names the number by Meta's id (`metadata.phone_number_id`, digits);
//! AWS's id (`phone-number-id-<32 hex>`, what `SendWhatsAppMessage` takes as `originationPhoneNumberId` and
//! what a practice lists in `whatsapp_numbers`) is the last part of the ARN the header's
//! `MetaPhoneNumberIds` gives for that Meta id (`…:phone-number-id/<32 hex>`). [`PhoneNumberIds`] keeps
//! both, so a practice that listed Meta's id is found too.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::conversation::{ConversationId, DeliveryEvent, DeliveryStatus, FailureReason};
use crate::identity::PracticeId;
use crate::store::TextRef;
use crate::texting::OutboundText;

/// The phone number an event is about, by AWS's id (when the header names it) and by Meta's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumberIds {
    /// `phone-number-id-…`, from the header's ARN.
    pub aws: Option<String>,
    /// Meta's `metadata.phone_number_id`.
    pub meta: String,
}

impl PhoneNumberIds {
    /// The ids to look the practice up by, AWS's first.
    pub fn candidates(&self) -> Vec<&str> {
        self.aws
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.meta.as_str()))
            .collect()
    }
}

/// A message the client wrote on WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatsAppMessage {
    pub phone_number: PhoneNumberIds,
    /// The client's number, E.164.
    pub from: String,
    /// Meta's message id (`wamid.…`): what a redelivery is recognised by.
    pub id: String,
    pub at: Option<DateTime<Utc>>,
    pub body: String,
}

/// One thing a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhatsAppEvent {
    Message(WhatsAppMessage),
    /// A status of one of our replies: where it is stored and the delivery event.
    Status {
        text: TextRef,
        event: DeliveryEvent,
        /// Meta's id of the message it is about (what the logs name).
        message_id: String,
    },
    /// Something this service does not act on, and why (logged).
    Skipped(String),
}

#[derive(Debug, Deserialize)]
struct Header {
    #[serde(default)]
    context: HeaderContext,
    #[serde(rename = "whatsAppWebhookEntry")]
    entry: String,
}

#[derive(Debug, Default, Deserialize)]
struct HeaderContext {
    #[serde(rename = "MetaPhoneNumberIds", default)]
    phone_numbers: Vec<HeaderPhoneNumber>,
}

#[derive(Debug, Deserialize)]
struct HeaderPhoneNumber {
    #[serde(rename = "metaPhoneNumberId")]
    meta_id: String,
    arn: String,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    field: Option<String>,
    value: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    phone_number_id: String,
}

#[derive(Debug, Deserialize)]
struct MetaMessage {
    from: String,
    id: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(flatten)]
    content: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct MetaStatus {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<String>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    errors: Vec<MetaError>,
}

#[derive(Debug, Deserialize)]
struct MetaError {
    code: i64,
}

/// Every message and status of one SNS message, in order. `Err` when it is not an End User Messaging
/// Social event at all (nothing in it can be read). One unreadable message or status is a
/// [`WhatsAppEvent::Skipped`] beside the others, never the loss of them.
pub fn notification_events(sns_message: &str) -> Result<Vec<WhatsAppEvent>, String> {
    let header: Header = serde_json::from_str(sns_message)
        .map_err(|e| format!("not an End User Messaging Social event: {e}"))?;
    let entry: Entry = serde_json::from_str(&header.entry)
        .map_err(|e| format!("whatsAppWebhookEntry is not Meta's webhook entry: {e}"))?;
    let mut events = Vec::new();
    for change in entry.changes {
        if change.field.as_deref().is_some_and(|f| f != "messages") {
            events.push(WhatsAppEvent::Skipped(format!(
                "a {:?} change",
                change.field.unwrap_or_default()
            )));
            continue;
        }
        let metadata = change
            .value
            .get("metadata")
            .cloned()
            .and_then(|m| serde_json::from_value::<Metadata>(m).ok());
        let list = |name: &str| {
            change
                .value
                .get(name)
                .and_then(serde_json::Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        for raw in list("messages") {
            let event = match (&metadata, serde_json::from_value::<MetaMessage>(raw)) {
                (Some(metadata), Ok(m)) => message_event(&header.context, metadata, m),
                (None, _) => WhatsAppEvent::Skipped("a message without metadata".into()),
                (_, Err(e)) => WhatsAppEvent::Skipped(format!("an unreadable message: {e}")),
            };
            events.push(event);
        }
        for raw in list("statuses") {
            let event = match serde_json::from_value::<MetaStatus>(raw) {
                Ok(s) => status_event(s),
                Err(e) => WhatsAppEvent::Skipped(format!("an unreadable status: {e}")),
            };
            events.push(event);
        }
    }
    Ok(events)
}

/// AWS's id of the number Meta names `meta_id`, from the header's ARN (`…:phone-number-id/<id>`).
fn aws_phone_number_id(context: &HeaderContext, meta_id: &str) -> Option<String> {
    let entry = context
        .phone_numbers
        .iter()
        .find(|p| p.meta_id == meta_id)?;
    let (_, id) = entry.arn.rsplit_once(":phone-number-id/")?;
    (!id.is_empty() && !id.contains('/')).then(|| format!("phone-number-id-{id}"))
}

fn seconds(raw: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(raw?.trim().parse().ok()?, 0)
}

fn message_event(context: &HeaderContext, metadata: &Metadata, m: MetaMessage) -> WhatsAppEvent {
    let Some(body) = message_body(&m) else {
        return WhatsAppEvent::Skipped(format!("a {:?} message", m.kind));
    };
    let digits = m.from.trim().trim_start_matches('+');
    WhatsAppEvent::Message(WhatsAppMessage {
        phone_number: PhoneNumberIds {
            aws: aws_phone_number_id(context, &metadata.phone_number_id),
            meta: metadata.phone_number_id.clone(),
        },
        from: format!("+{digits}"),
        id: m.id,
        at: seconds(m.timestamp.as_deref()),
        body,
    })
}

/// What a message says, as staff read it; `None` for what is not a message of the client's to answer (a
/// reaction, an unsupported or system message).
fn message_body(m: &MetaMessage) -> Option<String> {
    let field = |path: &str| {
        m.content
            .get(&m.kind)
            .and_then(|v| v.pointer(path))
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    match m.kind.as_str() {
        "text" => field("/body"),
        "button" => field("/text"),
        "interactive" => field("/button_reply/title").or_else(|| field("/list_reply/title")),
        "image" | "video" | "audio" | "document" | "sticker" | "location" | "contacts" => {
            let placeholder = format!(
                "[WhatsApp {}: not shown here, see it on the practice's WhatsApp]",
                m.kind
            );
            Some(match field("/caption") {
                Some(caption) => format!("{placeholder} {caption}"),
                None => placeholder,
            })
        }
        _ => None,
    }
}

fn status_event(s: MetaStatus) -> WhatsAppEvent {
    let Some((status, reason)) = crate::conversation::delivery::whatsapp_event_status(&s.status)
    else {
        return WhatsAppEvent::Skipped(format!("a {:?} status of {}", s.status, s.id));
    };
    let Some((text, attempt)) = s
        .biz_opaque_callback_data
        .as_deref()
        .and_then(text_of_callback)
    else {
        return WhatsAppEvent::Skipped(format!("a status of {}, not a reply of ours", s.id));
    };
    let Some(at) = seconds(s.timestamp.as_deref()) else {
        return WhatsAppEvent::Skipped(format!("a status of {} without its time", s.id));
    };
    let reason = match status {
        DeliveryStatus::Failed => Some(
            s.errors
                .first()
                .map_or(FailureReason::ProviderError, |e| failure_reason(e.code)),
        ),
        _ => reason,
    };
    WhatsAppEvent::Status {
        text,
        event: DeliveryEvent {
            status,
            reason,
            at,
            attempt: Some(attempt),
        },
        message_id: s.id,
    }
}

/// What a failed status's first error (Meta's Cloud API error codes) means for staff:
///
/// | Meta's code | reason |
/// |---|---|
/// | 131047 (more than 24 hours since the customer last replied) | `window_closed` |
/// | 131026 (undeliverable: not on WhatsApp, old app, terms not accepted), 131021 (recipient is the sender) | `invalid_number` |
/// | 131050 (the user stopped the business's messages) | `opted_out` |
/// | 130429 (rate limit), 131056 (too many messages to this number), 131048 (spam rate limit) | `throttled_too_long` |
/// | 131049 (not delivered to keep engagement healthy), 130472 (the user is in an experiment), 368 (the account is restricted for a policy), 131031 (the account is locked) | `blocked` |
/// | anything else | `provider_error` |
pub fn failure_reason(code: i64) -> FailureReason {
    match code {
        131047 => FailureReason::WindowClosed,
        131026 | 131021 => FailureReason::InvalidNumber,
        131050 => FailureReason::OptedOut,
        130429 | 131056 | 131048 => FailureReason::ThrottledTooLong,
        131049 | 130472 | 368 | 131031 => FailureReason::Blocked,
        _ => FailureReason::ProviderError,
    }
}

/// The reply's address and attempt, as a send carries them in `biz_opaque_callback_data` (at most 512
/// characters; ids are at most 128 bytes each, so it fits).
#[derive(Debug, Serialize, Deserialize)]
struct Callback {
    #[serde(rename = "vetchat")]
    version: u8,
    practice_id: String,
    conversation_id: String,
    seq: u64,
    attempt: u32,
}

/// The `biz_opaque_callback_data` of a WhatsApp send: Meta echoes it into every status of the message.
pub fn callback_data(text: &OutboundText) -> String {
    serde_json::to_string(&Callback {
        version: 1,
        practice_id: text.text.practice_id.as_str().to_owned(),
        conversation_id: text.text.conversation_id.0.clone(),
        seq: text.text.seq,
        attempt: text.attempt,
    })
    .expect("a callback serialises")
}

fn text_of_callback(raw: &str) -> Option<(TextRef, u32)> {
    let c: Callback = serde_json::from_str(raw).ok()?;
    if c.version != 1 {
        return None;
    }
    Some((
        TextRef {
            practice_id: PracticeId::parse(&c.practice_id)?,
            conversation_id: ConversationId(c.conversation_id),
            seq: c.seq,
        },
        c.attempt,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{Channel, MessageId};
    use crate::identity::DepartmentId;

    fn notification(entry: serde_json::Value) -> String {
        serde_json::json!({
            "context": {
                "MetaWabaIds": [{"wabaId": "1234567890abcde", "arn": "arn:aws:social-messaging:us-east-1:123456789012:waba/fb2594b8a7974770b128a409e2example"}],
                "MetaPhoneNumberIds": [{"metaPhoneNumberId": "321010217760100", "arn": "arn:aws:social-messaging:us-east-1:123456789012:phone-number-id/976c72a700aac43eaf573ae050example"}]
            },
            "whatsAppWebhookEntry": entry.to_string(),
            "aws_account_id": "123456789012",
            "message_timestamp": "2026-12-02T09:00:00.000Z",
            "messageId": "6d69f07a-c317-4278-9d5c-6a84078419ec"
        })
        .to_string()
    }

    fn outbound() -> OutboundText {
        OutboundText {
            text: TextRef {
                practice_id: PracticeId::parse("prc_demo").unwrap(),
                conversation_id: ConversationId("cnv_1".into()),
                seq: 4,
            },
            attempt: 2,
            channel: Channel::Whatsapp,
            to: "+12015550111".into(),
            from: "phone-number-id-976c72a700aac43eaf573ae050example".into(),
            body: "Hi".into(),
            message_id: MessageId("msg_1".into()),
            conversation_id: ConversationId("cnv_1".into()),
            department_id: DepartmentId("dep_1".into()),
        }
    }

    #[test]
    fn a_text_message_names_the_number_by_both_ids_and_the_client_in_e164() {
        let raw = notification(
            serde_json::json!({"id": "365731266123456", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "12065550100", "phone_number_id": "321010217760100"},
            "contacts": [{"profile": {"name": "Diego"}, "wa_id": "14255550150"}],
            "messages": [
                {"from": "14255550150", "id": "wamid.A", "timestamp": "1795446300", "type": "text", "text": {"body": " Is Rex ok? "}},
                {"from": "14255550150", "id": "wamid.B", "timestamp": "1795446301", "type": "image", "image": {"caption": "his paw", "id": "m1"}},
                {"from": "14255550150", "id": "wamid.C", "timestamp": "1795446302", "type": "reaction", "reaction": {"emoji": "x", "message_id": "wamid.Z"}}
            ]}}]}),
        );
        let events = notification_events(&raw).expect("readable");
        let WhatsAppEvent::Message(m) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(
            m.phone_number.aws.as_deref(),
            Some("phone-number-id-976c72a700aac43eaf573ae050example")
        );
        assert_eq!(m.phone_number.meta, "321010217760100");
        assert_eq!(m.from, "+14255550150");
        assert_eq!(m.id, "wamid.A");
        assert_eq!(m.body, "Is Rex ok?");
        assert_eq!(m.at.map(|t| t.timestamp()), Some(1795446300));
        let WhatsAppEvent::Message(image) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(image.body.starts_with("[WhatsApp image"), "{}", image.body);
        assert!(image.body.ends_with("his paw"), "{}", image.body);
        assert!(matches!(events[2], WhatsAppEvent::Skipped(_)), "{events:?}");
    }

    #[test]
    fn a_status_finds_its_reply_by_the_callback_the_send_carried() {
        let callback = callback_data(&outbound());
        assert!(callback.len() <= 512);
        let raw = notification(
            serde_json::json!({"id": "1", "changes": [{"field": "messages", "value": {
            "metadata": {"phone_number_id": "321010217760100"},
            "statuses": [
                {"id": "wamid.R", "status": "failed", "timestamp": "1795446400", "recipient_id": "12015550111",
                 "biz_opaque_callback_data": callback, "errors": [{"code": 131047, "title": "Re-engagement message"}]},
                {"id": "wamid.S", "status": "delivered", "timestamp": "1795446401", "recipient_id": "12015550111",
                 "biz_opaque_callback_data": callback},
                {"id": "wamid.T", "status": "read", "timestamp": "1795446402"},
                {"id": "wamid.U", "status": "deleted", "timestamp": "1795446403", "biz_opaque_callback_data": callback},
                {"status": "sent"}
            ]}}]}),
        );
        let events = notification_events(&raw).expect("readable");
        let WhatsAppEvent::Status {
            text,
            event,
            message_id,
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(text, &outbound().text);
        assert_eq!(message_id, "wamid.R");
        assert_eq!(event.status, DeliveryStatus::Failed);
        assert_eq!(event.reason, Some(FailureReason::WindowClosed));
        assert_eq!(event.attempt, Some(2));
        assert_eq!(event.at.timestamp(), 1795446400);
        assert!(
            matches!(&events[1], WhatsAppEvent::Status { event, .. } if event.status == DeliveryStatus::Delivered && event.reason.is_none())
        );
        // Not ours (no callback), a status that says nothing of delivery, an unreadable one: skipped,
        // each beside the others.
        assert_eq!(events.len(), 5);
        assert!(events[2..]
            .iter()
            .all(|e| matches!(e, WhatsAppEvent::Skipped(_))));
    }

    #[test]
    fn not_an_event_is_an_error_and_a_foreign_callback_is_not_ours() {
        assert!(notification_events("nope").is_err());
        assert!(notification_events(r#"{"whatsAppWebhookEntry": "{"}"#).is_err());
        assert!(text_of_callback("campaign-42").is_none());
        assert!(text_of_callback(
            r#"{"vetchat":2,"practice_id":"prc_a","conversation_id":"c","seq":1,"attempt":1}"#
        )
        .is_none());
    }

    #[test]
    fn failed_statuses_map_to_reasons_staff_can_act_on() {
        assert_eq!(failure_reason(131047), FailureReason::WindowClosed);
        assert_eq!(failure_reason(131026), FailureReason::InvalidNumber);
        assert_eq!(failure_reason(131050), FailureReason::OptedOut);
        assert_eq!(failure_reason(130429), FailureReason::ThrottledTooLong);
        assert_eq!(failure_reason(131049), FailureReason::Blocked);
        assert_eq!(failure_reason(1), FailureReason::ProviderError);
    }
}
