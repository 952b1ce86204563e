//! Staff retry a text reply (`POST /conversations/{id}/messages/{message_id}/retry`): a failed or
//! unconfirmed text queued again as a new attempt, which the sender then sends exactly once (Chatwoot
//! #14120: their Retry never re-sent).

use chrono::{DateTime, Utc};

use super::common::{known_conversation, refused_by_opt_out};
use super::{ConversationId, Message, MessageId};
use crate::error::{ConflictCode, DomainError, DomainResult};
use crate::identity::{Caller, DASHBOARD};
use crate::store::{ConversationHistory, MessageRange, StoreError, TextOutbox, TextRef};

/// One read (the conversation's messages, for the text's `seq` and delivery), then one conditional write
/// from the delivery read: a second retry at once finds it queued and is 409 `not_retryable`. A number that
/// opted out is 409 `sms_opted_out`, nothing queued.
pub async fn retry_text<S>(
    store: &S,
    caller: &Caller,
    id: &ConversationId,
    message_id: &MessageId,
    now: DateTime<Utc>,
) -> DomainResult<Message>
where
    S: ConversationHistory + TextOutbox + ?Sized,
{
    caller.require(DASHBOARD)?;
    known_conversation(id)?;
    let detail = store
        .conversation_detail(&caller.practice_id, id, MessageRange::ALL)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    let conversation = &detail.conversation;
    refused_by_opt_out(conversation.channel, conversation.sms_opted_out_at)?;
    // A resend is a free-form message too: not outside WhatsApp's window.
    detail.conversation.reply_window_open(now)?;
    let message = detail
        .messages
        .into_iter()
        .find(|m| &m.id == message_id)
        .ok_or(DomainError::NotFound("message"))?;
    let Some(delivery) = message.delivery.as_ref() else {
        return Err(DomainError::conflict(
            ConflictCode::NotRetryable,
            "only a reply sent as a text can be retried",
        ));
    };
    let again = delivery.retry(now)?;
    let text = TextRef::of(&caller.practice_id, &message);
    match store.replace_delivery(&text, delivery, &again).await {
        Ok(stored) => Ok(stored.message),
        Err(StoreError::VersionMismatch) => Err(DomainError::conflict(
            ConflictCode::NotRetryable,
            "the text changed meanwhile (another retry, or a status came in)",
        )),
        Err(StoreError::NotFound) => Err(DomainError::NotFound("message")),
        Err(e) => Err(e.into()),
    }
}
