//! What the conversation flows share, written once: the rule of a message's body, a texting client's
//! number, the messages one write stores, the answers every flow gives the same way, and the retry of a
//! write that lost a race.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};

use super::delivery::{sms_segments, Delivery};
use super::{Author, AutoReply, Channel, ConversationId, Message, MessageId};
use crate::error::{ConflictCode, DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, DepartmentId, Ids};
use crate::store::OpenConversation;
use crate::validate;

/// The longest message, in characters (`/inbound`, staff start and reply; longer texts are cut to it).
pub const MAX_MESSAGE_CHARS: usize = 4000;

/// How often a write that lost a race (the client's conversation started, moved or ended meanwhile, or
/// another message took the next `seq`) is planned again from a fresh read. Every lost race is another
/// writer's commit, so 32 writers to one conversation at once each lose at most 31 times.
const RACE_RETRIES: usize = 64;

/// A message's body: trimmed, not empty, at most [`MAX_MESSAGE_CHARS`].
pub(super) fn message_body(raw: &str) -> DomainResult<String> {
    let body = raw.trim();
    if body.is_empty() {
        return Err(DomainError::invalid(
            InvalidCode::InvalidValue,
            "body",
            "a message needs a body",
        ));
    }
    if body.chars().count() > MAX_MESSAGE_CHARS {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            "body",
            format!("a message is at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    Ok(body.to_owned())
}

/// A texting client's number as a gateway hands it over (`from`, E.164), checked by its shape and country
/// code ([`validate::gateway_number`]: no phone-number metadata on the path of every text).
pub fn text_sender(raw: Option<&str>) -> DomainResult<String> {
    let raw = raw.ok_or_else(|| {
        DomainError::invalid(
            InvalidCode::InvalidPhone,
            "from",
            "a text needs the sender's number",
        )
    })?;
    validate::gateway_number(raw, "from")
}

/// A message of the conversation `to`, taking the `seq` after `to.last_seq + index`.
pub(super) fn message_in(
    to: &OpenConversation,
    index: usize,
    author: Author,
    body: String,
    at: DateTime<Utc>,
    ids: &dyn Ids,
) -> Message {
    let delivery = text_delivery(to.channel, &author, &body, at);
    Message {
        id: MessageId(ids.next("msg")),
        conversation_id: to.conversation_id.clone(),
        seq: to.last_seq + 1 + index as u64,
        at,
        author,
        channel: to.channel,
        body,
        department_id: to.department_id.clone(),
        department_name: to.department_name.clone(),
        delivery,
    }
}

/// The `delivery` a message starts with: queued when it is a reply that goes out as a text (staff and
/// automatic replies on `sms` and `whatsapp` conversations), none otherwise.
pub(super) fn text_delivery(
    channel: Channel,
    author: &Author,
    body: &str,
    at: DateTime<Utc>,
) -> Option<Delivery> {
    let goes_out = matches!(author, Author::Staff { .. } | Author::Auto { .. });
    match channel {
        Channel::Sms if goes_out => Some(Delivery::queued(Some(sms_segments(body)), at)),
        Channel::Whatsapp if goes_out => Some(Delivery::queued(None, at)),
        _ => None,
    }
}

/// Messages of one write into `to`: the author's, then the auto-replies just after it (the `seq`s after
/// `to.last_seq`, in this order; the instants a microsecond apart, so they sort after it by time too).
pub(super) fn messages_for(
    to: &OpenConversation,
    author: Author,
    body: String,
    auto_replies: &[AutoReply],
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> Vec<Message> {
    let mut out = vec![message_in(to, 0, author, body, now, ids)];
    for (i, reply) in auto_replies.iter().enumerate() {
        let at = now + Duration::microseconds(i as i64 + 1);
        let author = Author::Auto { reply: reply.kind };
        out.push(message_in(to, i + 1, author, reply.text.clone(), at, ids));
    }
    out
}

/// 404 for an id that cannot name a conversation, before any read.
pub(super) fn known_conversation(id: &ConversationId) -> DomainResult<()> {
    if plausible_id(&id.0) {
        Ok(())
    } else {
        Err(DomainError::NotFound("conversation"))
    }
}

/// 404 for an id that cannot name a department, before any read.
pub(super) fn known_department(id: &DepartmentId) -> DomainResult<()> {
    if plausible_id(id.as_str()) {
        Ok(())
    } else {
        Err(DomainError::NotFound("department"))
    }
}

pub(super) fn resolved() -> DomainError {
    DomainError::conflict(
        ConflictCode::ConversationResolved,
        "the conversation has ended",
    )
}

/// 409 `sms_opted_out`: the client's number opted out of the practice's texts at `at` (the body carries
/// `opted_out_at`), so nothing is stored or sent to it.
pub fn sms_opted_out(at: DateTime<Utc>) -> DomainError {
    DomainError::Conflict {
        code: ConflictCode::SmsOptedOut,
        message:
            "the client's number opted out of the practice's texts (STOP); they can text START \
                  to take texts again"
                .into(),
        details: Some(serde_json::json!({ "opted_out_at": at })),
    }
}

/// The opt-out that refuses a text to `channel`: only SMS is opted out (app, web and WhatsApp are not).
pub(super) fn refused_by_opt_out(
    channel: Channel,
    opted_out_at: Option<DateTime<Utc>>,
) -> DomainResult<()> {
    match opted_out_at {
        Some(at) if channel == Channel::Sms => Err(sms_opted_out(at)),
        _ => Ok(()),
    }
}

pub(super) fn not_set_up() -> DomainError {
    DomainError::conflict(
        ConflictCode::PracticeNotSetUp,
        "the practice is not set up yet",
    )
}

/// What one attempt of a flow's read-then-write came to.
pub(super) enum Attempt<T> {
    Done(T),
    /// The write found the conversation changed since the read (started, moved, ended, another message
    /// took the next `seq`): read again.
    LostRace,
}

/// Runs `attempt` until it is done, at most [`RACE_RETRIES`] times; then the caller is told to try again
/// (503 `unavailable`), since a conversation that keeps changing under every attempt is not an error of
/// the request.
pub(super) async fn retry_races<T, F, Fut>(mut attempt: F) -> DomainResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = DomainResult<Attempt<T>>>,
{
    for _ in 0..RACE_RETRIES {
        if let Attempt::Done(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(DomainError::Unavailable(
        "the conversation kept changing concurrently; try again".into(),
    ))
}
