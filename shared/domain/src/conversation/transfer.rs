//! Staff transfer a conversation (`POST /conversations/{id}/transfer`): an open conversation is handed to
//! another department or provider, visible in the app or not, and the target department is alerted in the
//! same write.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::common::{
    known_conversation, known_department, message_in, resolved, retry_races, Attempt,
};
use super::{transfer_notice, Author, Conversation, ConversationId, ConversationStatus, Transfer};
use crate::alert::PendingAlert;
use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{Caller, DepartmentId, Ids, DASHBOARD};
use crate::store::{OpenConversation, StoreError, TransferStore};
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

/// One read (the conversation, the target department, what the alert quotes), then one transaction.
async fn transfer_once(
    store: &dyn TransferStore,
    caller: &Caller,
    id: &ConversationId,
    to: &DepartmentId,
    note: &Option<String>,
    now: DateTime<Utc>,
    ids: &dyn Ids,
) -> DomainResult<Attempt<Conversation>> {
    let ctx = store.transfer_context(&caller.practice_id, id, to).await?;
    let conversation = ctx
        .conversation
        .ok_or(DomainError::NotFound("conversation"))?;
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
    let target = ctx.target.ok_or(DomainError::NotFound("department"))?;
    // The history is ordered by `at`: a transfer that commits after another (the version check makes this
    // read the latest) is never dated before it, whatever the two requests' clocks said.
    let at = match ctx.last_transfer_at {
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
    let alert = PendingAlert::transfer(
        ids,
        &conversation,
        transfer.clone(),
        ctx.preview.as_deref().unwrap_or_default(),
        now,
    );
    // The client is told, in the conversation, under the new department's name.
    let into = OpenConversation {
        department_id: target.id.clone(),
        department_name: target.settings.name.clone(),
        ..OpenConversation::of(&conversation)
    };
    let notice = transfer_notice(&target.settings.name);
    let notice = message_in(&into, 0, Author::System, notice, at, ids);
    match store
        .transfer_conversation(&conversation, &transfer, &notice, &alert)
        .await
    {
        Ok(moved) => Ok(Attempt::Done(moved)),
        // Ended or moved meanwhile, or another message took the next seq: look again.
        Err(StoreError::VersionMismatch) => Ok(Attempt::LostRace),
        Err(StoreError::NotFound) => Err(DomainError::NotFound("department")),
        Err(e) => Err(e.into()),
    }
}
