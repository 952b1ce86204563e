//! Conversations in memory: each with its messages and transfers, the clients' open-conversation claims,
//! and the inbound messages seen.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::conversation::{Conversation, ConversationId, ConversationStatus, Message, Transfer};
use domain::identity::{DepartmentId, PracticeId};
use domain::store::{
    ConversationDetail, ConversationFilter, ConversationHistory, ConversationIntake,
    ConversationPage, ConversationStore, NewConversation, OpenConversation, RoutingContext,
    StoreError, StoreResult, TransferStore,
};

use super::alerts::new_alert_record;
use super::MemoryStore;

#[derive(Debug, Clone)]
pub(super) struct ConversationRecord {
    pub(super) conversation: Conversation,
    messages: Vec<Message>,
    transfers: Vec<Transfer>,
}

/// Newest activity first, ties by id (the same order as DynamoDB's GSI1 sort key).
fn activity_key(c: &Conversation) -> (DateTime<Utc>, ConversationId) {
    (c.last_message_at, c.id.clone())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    practice_id: PracticeId,
    last_message_at: DateTime<Utc>,
    id: ConversationId,
}

#[async_trait]
impl ConversationIntake for MemoryStore {
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        let tables = self.lock();
        Ok(RoutingContext {
            practice: tables.practices.get(practice_id).cloned(),
            department: tables
                .departments
                .get(&(practice_id.clone(), department_id.clone()))
                .cloned(),
            open_conversation: tables
                .open_claims
                .get(&(practice_id.clone(), client_id.to_owned()))
                .cloned(),
        })
    }

    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()> {
        let mut tables = self.lock();
        let c = &new.conversation;
        let claim_key = (c.practice_id.clone(), c.client_id.clone());
        // Same order of checks as the DynamoDB transaction's cancellation reasons.
        if tables.open_claims.contains_key(&claim_key) {
            return Err(StoreError::ClientHasOpenConversation);
        }
        let dept_key = (c.practice_id.clone(), c.department_id.clone());
        if !tables.departments.contains_key(&dept_key) {
            return Err(StoreError::NotFound);
        }
        let dedup = new
            .dedup_key
            .as_ref()
            .map(|k| (c.practice_id.clone(), k.clone()));
        if let Some(existing) = dedup.as_ref().and_then(|k| tables.inbound.get(k)) {
            return Err(StoreError::DuplicateInbound(existing.clone()));
        }
        tables.open_claims.insert(
            claim_key,
            OpenConversation {
                conversation_id: c.id.clone(),
                department_id: c.department_id.clone(),
            },
        );
        if let Some(d) = tables.departments.get_mut(&dept_key) {
            d.open_conversations += 1;
        }
        if let Some(k) = dedup {
            tables.inbound.insert(k, c.id.clone());
        }
        if let Some(alert) = &new.alert {
            tables
                .alerts
                .push((new_alert_record(alert), HashMap::new()));
        }
        tables.conversations.insert(
            (c.practice_id.clone(), c.id.clone()),
            ConversationRecord {
                conversation: c.clone(),
                messages: new.messages.clone(),
                transfers: Vec::new(),
            },
        );
        Ok(())
    }

    async fn append_messages(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        let key = (practice_id.clone(), open.conversation_id.clone());
        match tables.conversations.get(&key) {
            Some(r) if r.conversation.status == ConversationStatus::Open => {}
            _ => return Err(StoreError::NotFound),
        }
        let dedup = dedup_key.map(|k| (practice_id.clone(), k.to_owned()));
        if let Some(existing) = dedup.as_ref().and_then(|k| tables.inbound.get(k)) {
            return Err(StoreError::DuplicateInbound(existing.clone()));
        }
        if let Some(k) = dedup {
            tables.inbound.insert(k, open.conversation_id.clone());
        }
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::NotFound)?;
        if let Some(last) = messages.iter().map(|m| m.at).max() {
            record.conversation.last_message_at = last;
        }
        record.messages.extend(messages.iter().cloned());
        record
            .messages
            .sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(())
    }
}

#[async_trait]
impl ConversationHistory for MemoryStore {
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationDetail>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .get(&(practice_id.clone(), id.clone()))
            .map(|r| ConversationDetail {
                conversation: r.conversation.clone(),
                messages: r.messages.clone(),
                transfers: r.transfers.clone(),
            }))
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn get_conversation(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .get(&(practice_id.clone(), id.clone()))
            .map(|r| r.conversation.clone()))
    }

    async fn end_conversation(
        &self,
        conversation: &Conversation,
        at: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        let mut tables = self.lock();
        let key = (conversation.practice_id.clone(), conversation.id.clone());
        let current = tables
            .conversations
            .get(&key)
            .ok_or(StoreError::VersionMismatch)?;
        if current.conversation.status != ConversationStatus::Open
            || current.conversation.department_id != conversation.department_id
        {
            return Err(StoreError::VersionMismatch);
        }
        let claim_key = (
            conversation.practice_id.clone(),
            conversation.client_id.clone(),
        );
        if tables
            .open_claims
            .get(&claim_key)
            .map(|o| &o.conversation_id)
            != Some(&conversation.id)
        {
            return Err(StoreError::VersionMismatch);
        }
        tables.open_claims.remove(&claim_key);
        let dept_key = (
            conversation.practice_id.clone(),
            conversation.department_id.clone(),
        );
        if let Some(d) = tables.departments.get_mut(&dept_key) {
            d.open_conversations = d.open_conversations.saturating_sub(1);
        }
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::VersionMismatch)?;
        record.conversation.status = ConversationStatus::Resolved;
        record.conversation.resolved_at = Some(at);
        Ok(record.conversation.clone())
    }

    async fn list_conversations(
        &self,
        practice_id: &PracticeId,
        filter: &ConversationFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        let after = match cursor {
            None => None,
            Some(raw) => {
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(raw)
                    .map_err(|_| StoreError::BadCursor)?;
                let c: Cursor =
                    serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
                if &c.practice_id != practice_id {
                    return Err(StoreError::BadCursor);
                }
                Some((c.last_message_at, c.id))
            }
        };
        let tables = self.lock();
        let mut matching: Vec<&Conversation> = tables
            .conversations
            .iter()
            .filter(|((p, _), _)| p == practice_id)
            .map(|(_, r)| &r.conversation)
            .filter(|c| filter.status.is_none_or(|s| c.status == s))
            .filter(|c| {
                filter
                    .department_id
                    .as_ref()
                    .is_none_or(|d| &c.department_id == d)
            })
            .filter(|c| after.as_ref().is_none_or(|a| &activity_key(c) < a))
            .collect();
        matching.sort_by_key(|c| std::cmp::Reverse(activity_key(c)));
        let more = matching.len() > limit;
        let conversations: Vec<Conversation> = matching.into_iter().take(limit).cloned().collect();
        let next_cursor = match conversations.last() {
            Some(last) if more => {
                let c = Cursor {
                    practice_id: practice_id.clone(),
                    last_message_at: last.last_message_at,
                    id: last.id.clone(),
                };
                Some(
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(serde_json::to_vec(&c).expect("cursor serializes")),
                )
            }
            _ => None,
        };
        Ok(ConversationPage {
            conversations,
            next_cursor,
        })
    }
}

#[async_trait]
impl TransferStore for MemoryStore {
    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        let mut tables = self.lock();
        let key = (conversation.practice_id.clone(), conversation.id.clone());
        match tables.conversations.get(&key) {
            Some(r)
                if r.conversation.status == ConversationStatus::Open
                    && r.conversation.department_id == transfer.from => {}
            _ => return Err(StoreError::VersionMismatch),
        }
        let to_key = (conversation.practice_id.clone(), transfer.to.clone());
        if !tables.departments.contains_key(&to_key) {
            return Err(StoreError::NotFound);
        }
        let from_key = (conversation.practice_id.clone(), transfer.from.clone());
        if let Some(d) = tables.departments.get_mut(&from_key) {
            d.open_conversations = d.open_conversations.saturating_sub(1);
        }
        if let Some(d) = tables.departments.get_mut(&to_key) {
            d.open_conversations += 1;
        }
        let claim_key = (
            conversation.practice_id.clone(),
            conversation.client_id.clone(),
        );
        if let Some(claim) = tables.open_claims.get_mut(&claim_key) {
            claim.department_id = transfer.to.clone();
        }
        tables
            .alerts
            .push((new_alert_record(alert), HashMap::new()));
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::VersionMismatch)?;
        record.conversation.department_id = transfer.to.clone();
        record.transfers.push(transfer.clone());
        Ok(record.conversation.clone())
    }
}
