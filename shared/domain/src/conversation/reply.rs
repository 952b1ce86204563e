//! Staff reply (`POST /conversations/{id}/messages`): a message from the dashboard to an open conversation.

use chrono::{DateTime, Utc};

use super::common::{
    known_conversation, message_body, message_in, refused_by_opt_out, resolved, retry_races,
    Attempt,
};
use super::delivery::fits_the_channel;
use super::inbound::caller_dedup_key;
use super::{Author, ConversationId, ConversationStatus, Message, MessageId};
use crate::error::{DomainError, DomainResult};
use crate::identity::{Caller, Ids, DASHBOARD};
use crate::store::{ConversationStore, MessageRange, OpenConversation, StoreError};

/// `POST /conversations/{id}/messages`: a staff reply to an open conversation (409
/// `conversation_resolved` once it has ended; 409 `sms_opted_out` to a number that opted out of the
/// practice's texts, before anything is stored).
pub async fn staff_reply(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    body: &str,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Message> {
    staff_reply_with_key(store, caller, id, body, None, now, ids)
        .await
        .map(|(message, _)| message)
}

/// [`staff_reply`] with the request's `Idempotency-Key`: a retry with the same key (or two calls with one
/// key at once) stores one message and sends one text; the retry gets the first message and `true`
/// (answered 200, not 201). Chatwoot #9314: a reply sent twice on a weak connection.
pub async fn staff_reply_with_key(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    body: &str,
    idempotency_key: Option<&str>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<(Message, bool)> {
    caller.require(DASHBOARD)?;
    let body = message_body(body)?;
    known_conversation(id)?;
    let keyed = idempotency_key
        .map(|key| {
            caller_dedup_key(caller, key).map(|dedup| {
                // The message's id follows from the key, so the retry finds the first message.
                let message_id = MessageId(format!("msg_k{}", key_digest(&[&id.0, &dedup])));
                (format!("reply:{dedup}"), message_id)
            })
        })
        .transpose()?;
    let (body, keyed) = (&body, keyed.as_ref());
    retry_races(|| reply_once(store, caller, id, body, keyed, now, ids)).await
}

/// 128 bits of FNV-1a over `parts` (two passes, different offsets), as hex: an id derived from a key.
fn key_digest(parts: &[&str]) -> String {
    let fnv = |offset: u64| {
        parts.iter().fold(offset, |h, part| {
            part.bytes().chain(std::iter::once(0xff)).fold(h, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
            })
        })
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// One read (the conversation, for its next `seq`), then one write.
async fn reply_once(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    body: &str,
    keyed: Option<&(String, MessageId)>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<(Message, bool)>> {
    let conversation = store
        .get_conversation(&caller.practice_id, id)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    if conversation.status == ConversationStatus::Resolved {
        return Err(resolved());
    }
    // The conversation item keeps the opt-out (the keyword's own write sets it), so this costs no read.
    refused_by_opt_out(conversation.channel, conversation.sms_opted_out_at)?;
    fits_the_channel(conversation.channel, body)?;
    // Refused before anything is stored or sent (a keyed retry of a reply that went out inside the window
    // is refused too once it has closed: nothing is sent either way).
    conversation.reply_window_open(now)?;
    let open = OpenConversation::of(&conversation);
    let author = Author::Staff {
        id: caller.sub.clone(),
    };
    let mut message = message_in(&open, 0, author, body.to_owned(), now, ids);
    if let Some((_, keyed_id)) = keyed {
        message.id = keyed_id.clone();
    }
    match store
        .append_messages(
            &caller.practice_id,
            &open,
            std::slice::from_ref(&message),
            keyed.map(|(dedup, _)| dedup.as_str()),
        )
        .await
    {
        Ok(()) => Ok(Attempt::Done((message, false))),
        Err(StoreError::DuplicateInbound(_)) => {
            let keyed_id = &keyed.expect("only a keyed reply is a duplicate").1;
            let first = store
                .conversation_detail(&caller.practice_id, id, MessageRange::ALL)
                .await?
                .and_then(|d| d.messages.into_iter().find(|m| &m.id == keyed_id))
                .ok_or(DomainError::Unavailable(
                    "the first reply with this Idempotency-Key is not readable yet".into(),
                ))?;
            Ok(Attempt::Done((first, true)))
        }
        // Ended between the read and the write.
        Err(StoreError::NotFound) => Err(resolved()),
        // Another message took the next seq: read again.
        Err(StoreError::VersionMismatch) => Ok(Attempt::LostRace),
        Err(e) => Err(e.into()),
    }
}
