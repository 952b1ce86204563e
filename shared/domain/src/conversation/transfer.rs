//! Staff transfer a conversation (`POST /conversations/{id}/transfer`): an open conversation is handed to
//! another department or provider, visible in the app or not, and the target department is alerted in the
//! same write.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::common::{known_conversation, known_department, resolved, retry_races, Attempt};
use super::{Author, Conversation, ConversationId, ConversationStatus, Transfer};
use crate::alert::PendingAlert;
use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{Caller, DepartmentId, Ids, DASHBOARD};
use crate::store::{StoreError, TransferStore};
use crate::validate;

/// `POST /conversations/{id}/transfer` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferInput {
    pub department_id: DepartmentId,
    #[serde(default)]
    pub note: Option<String>,
}

/// `POST /conversations/{id}/transfer`: hands an open conversation to another department or provider,
/// visible or not, and alerts the target department.
pub async fn transfer_conversation(
    store: &dyn TransferStore,
    caller: &Caller,
    id: &ConversationId,
    input: TransferInput,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Conversation> {
    caller.require(DASHBOARD)?;
    let note = match input
        .note
        .as_deref()
        .map(|n| validate::text(n, "note"))
        .transpose()?
    {
        Some(n) if !n.is_empty() => Some(n),
        _ => None,
    };
    known_conversation(id)?;
    known_department(&input.department_id)?;
    let (to, note) = (&input.department_id, &note);
    retry_races(|| transfer_once(store, caller, id, to, note, now, ids)).await
}

/// One read (the conversation with its messages and transfers), then one transaction.
async fn transfer_once(
    store: &dyn TransferStore,
    caller: &Caller,
    id: &ConversationId,
    to: &DepartmentId,
    note: &Option<String>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Conversation>> {
    let detail = store
        .conversation_detail(&caller.practice_id, id)
        .await?
        .ok_or(DomainError::NotFound("conversation"))?;
    let conversation = detail.conversation;
    if conversation.status == ConversationStatus::Resolved {
        return Err(resolved());
    }
    if &conversation.department_id == to {
        return Err(DomainError::invalid(
            InvalidCode::SameDepartment,
            "department_id",
            "the conversation is already in this department",
        ));
    }
    // The history is ordered by `at`: a transfer that commits after another (the version check makes this
    // read the latest) is never dated before it, whatever the two requests' clocks said.
    let at = match detail.transfers.iter().map(|t| t.at).max() {
        Some(previous) if previous >= now => previous + Duration::milliseconds(1),
        _ => now,
    };
    let transfer = Transfer {
        from: conversation.department_id.clone(),
        to: to.clone(),
        by: caller.sub.clone(),
        at,
        note: note.clone(),
    };
    // The alert quotes the last message a person wrote.
    let last = detail
        .messages
        .iter()
        .rev()
        .find(|m| !matches!(m.author, Author::Auto { .. }));
    let alert = PendingAlert::transfer(
        ids,
        &conversation,
        transfer.clone(),
        last.map(|m| m.body.as_str()).unwrap_or_default(),
        now,
    );
    match store
        .transfer_conversation(&conversation, &transfer, &alert)
        .await
    {
        Ok(moved) => Ok(Attempt::Done(moved)),
        // Ended or moved meanwhile: look again.
        Err(StoreError::VersionMismatch) => Ok(Attempt::LostRace),
        Err(StoreError::NotFound) => Err(DomainError::NotFound("department")),
        Err(e) => Err(e.into()),
    }
}
