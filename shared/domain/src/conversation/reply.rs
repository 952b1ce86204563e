//! Staff reply (`POST /conversations/{id}/messages`): a message from the dashboard to an open conversation.

use chrono::{DateTime, Utc};

use super::common::{known_conversation, message_body, messages_for, resolved};
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
    let conversation = store
        .get_conversation(&caller.practice_id, id)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    if conversation.status == ConversationStatus::Resolved {
        return Err(resolved());
    }
    let open = OpenConversation {
        conversation_id: conversation.id.clone(),
        department_id: conversation.department_id.clone(),
    };
    let messages = messages_for(
        &conversation.id,
        Author::Staff {
            id: caller.sub.clone(),
        },
        conversation.channel,
        body,
        &[],
        now,
        ids,
    );
    match store
        .append_messages(&caller.practice_id, &open, &messages, None)
        .await
    {
        Ok(()) => Ok(messages.into_iter().next().expect("one message")),
        // Ended between the read and the write.
        Err(StoreError::NotFound) => Err(resolved()),
        Err(e) => Err(e.into()),
    }
}
