//! Staff reply (`POST /conversations/{id}/messages`): a message from the dashboard to an open conversation.

use chrono::{DateTime, Utc};

use super::common::{known_conversation, message_body, message_in, resolved, retry_races, Attempt};
use super::delivery::fits_the_channel;
use super::{Author, ConversationId, ConversationStatus, Message};
use crate::error::{DomainError, DomainResult};
use crate::identity::{Caller, Ids, DASHBOARD};
use crate::store::{ConversationStore, OpenConversation, StoreError};

/// `POST /conversations/{id}/messages`: a staff reply to an open conversation (409
/// `conversation_resolved` once it has ended).
pub async fn staff_reply(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    body: &str,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Message> {
    caller.require(DASHBOARD)?;
    let body = message_body(body)?;
    known_conversation(id)?;
    let body = &body;
    retry_races(|| reply_once(store, caller, id, body, now, ids)).await
}

/// One read (the conversation, for its next `seq`), then one write.
async fn reply_once(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    body: &str,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Message>> {
    let conversation = store
        .get_conversation(&caller.practice_id, id)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    if conversation.status == ConversationStatus::Resolved {
        return Err(resolved());
    }
    fits_the_channel(conversation.channel, body)?;
    let open = OpenConversation::of(&conversation);
    let author = Author::Staff {
        id: caller.sub.clone(),
    };
    let message = message_in(&open, 0, author, body.to_owned(), now, ids);
    match store
        .append_messages(
            &caller.practice_id,
            &open,
            std::slice::from_ref(&message),
            None,
        )
        .await
    {
        Ok(()) => Ok(Attempt::Done(message)),
        // Ended between the read and the write.
        Err(StoreError::NotFound) => Err(resolved()),
        // Another message took the next seq: read again.
        Err(StoreError::VersionMismatch) => Ok(Attempt::LostRace),
        Err(e) => Err(e.into()),
    }
}
