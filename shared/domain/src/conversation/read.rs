//! Staff list and open conversations (`GET /conversations`, `GET /conversations/{id}`).

use super::common::known_conversation;
use super::ConversationId;
use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{plausible_id, Caller, DASHBOARD};
use crate::store::{
    ConversationDetail, ConversationFilter, ConversationHistory, ConversationPage,
    ConversationStore, MessageRange, StoreError,
};

/// `GET /conversations/{id}`: the conversation with the messages of `range` and its transfers.
pub async fn conversation_detail(
    store: &dyn ConversationHistory,
    caller: &Caller,
    id: &ConversationId,
    range: MessageRange,
) -> DomainResult<ConversationDetail> {
    caller.require(DASHBOARD)?;
    known_conversation(id)?;
    store
        .conversation_detail(&caller.practice_id, id, range)
        .await?
        .ok_or(DomainError::NotFound("conversation"))
}

/// `GET /conversations`: newest activity first.
pub async fn list_conversations(
    store: &dyn ConversationStore,
    caller: &Caller,
    filter: ConversationFilter,
    cursor: Option<&str>,
    limit: usize,
) -> DomainResult<ConversationPage> {
    caller.require(DASHBOARD)?;
    if filter
        .department_id
        .as_ref()
        .is_some_and(|d| !plausible_id(d.as_str()))
    {
        // No department has such an id: none of its conversations exist.
        return Ok(ConversationPage {
            conversations: Vec::new(),
            next_cursor: None,
        });
    }
    store
        .list_conversations(&caller.practice_id, &filter, cursor, limit.clamp(1, 100))
        .await
        .map_err(|e| match e {
            StoreError::BadCursor => DomainError::invalid(
                InvalidCode::InvalidValue,
                "cursor",
                "the cursor is not one this API gave",
            ),
            other => other.into(),
        })
}
