//! Staff end a conversation (`POST /conversations/{id}/end`): the client's next message starts a new one.

use chrono::{DateTime, Utc};

use super::common::{known_conversation, retry_races, Attempt};
use super::{Conversation, ConversationId, ConversationStatus};
use crate::error::{DomainError, DomainResult};
use crate::identity::{Caller, DASHBOARD};
use crate::store::{ConversationStore, StoreError};

/// `POST /conversations/{id}/end`. Ending twice is not an error.
pub async fn end_conversation(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    now: DateTime<Utc>,
) -> DomainResult<Conversation> {
    caller.require(DASHBOARD)?;
    known_conversation(id)?;
    retry_races(|| end_once(store, caller, id, now)).await
}

async fn end_once(
    store: &dyn ConversationStore,
    caller: &Caller,
    id: &ConversationId,
    now: DateTime<Utc>,
) -> DomainResult<Attempt<Conversation>> {
    let conversation = store
        .get_conversation(&caller.practice_id, id)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    if conversation.status == ConversationStatus::Resolved {
        return Ok(Attempt::Done(conversation));
    }
    match store.end_conversation(&conversation, now).await {
        Ok(ended) => Ok(Attempt::Done(ended)),
        // Changed meanwhile (a transfer, another end): look again.
        Err(StoreError::VersionMismatch) | Err(StoreError::NotFound) => Ok(Attempt::LostRace),
        Err(e) => Err(e.into()),
    }
}
