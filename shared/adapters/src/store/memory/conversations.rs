//! Conversations in memory: each with its messages and transfers, the clients' open-conversation claims,
//! and the inbound messages seen.

use std::collections::HashMap;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::client_view::in_client_view;
use domain::conversation::{Conversation, ConversationId, ConversationStatus, Message, Transfer};
use domain::identity::{DepartmentId, PracticeId};
use domain::realtime::Change;
use domain::store::{
    ClientConversations, ConversationDetail, ConversationFilter, ConversationHistory,
    ConversationIntake, ConversationPage, ConversationStore, MessagePage, MessageRange,
    NewConversation, OpenConversation, RoutingContext, StoreError, StoreResult, TransferContext,
    TransferStore,
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
        tables
            .open_claims
            .insert(claim_key, OpenConversation::of(c));
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
        self.feed.publish(Change::started(new));
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
            Some(r) if r.conversation.status == ConversationStatus::Open => {
                if r.conversation.last_seq != open.last_seq {
                    return Err(StoreError::VersionMismatch);
                }
            }
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
        if let Some(last) = messages.last() {
            record.conversation.last_seq = last.seq;
        }
        record.messages.extend(messages.iter().cloned());
        let (client_id, last_seq) = (
            record.conversation.client_id.clone(),
            record.conversation.last_seq,
        );
        if let Some(claim) = tables
            .open_claims
            .get_mut(&(practice_id.clone(), client_id))
        {
            claim.last_seq = last_seq;
        }
        self.feed
            .publish(Change::appended(practice_id, open, messages));
        Ok(())
    }
}

#[async_trait]
impl ConversationHistory for MemoryStore {
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<ConversationDetail>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .get(&(practice_id.clone(), id.clone()))
            .map(|r| {
                let (messages, next_after) = range.page(&r.messages);
                ConversationDetail {
                    conversation: r.conversation.clone(),
                    messages,
                    transfers: r.transfers.clone(),
                    next_after,
                }
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
        let ended = record.conversation.clone();
        self.feed.publish(Change::ended(&ended));
        Ok(ended)
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
    async fn transfer_context(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        to: &DepartmentId,
    ) -> StoreResult<TransferContext> {
        let tables = self.lock();
        let record = tables.conversations.get(&(practice_id.clone(), id.clone()));
        Ok(TransferContext {
            conversation: record.map(|r| r.conversation.clone()),
            target: tables
                .departments
                .get(&(practice_id.clone(), to.clone()))
                .cloned(),
            preview: record.and_then(|r| {
                r.messages
                    .iter()
                    .rev()
                    .find(|m| m.by_a_person())
                    .map(|m| m.body.clone())
            }),
            last_transfer_at: record.and_then(|r| r.transfers.iter().map(|t| t.at).max()),
        })
    }

    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        notice: &Message,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        let mut tables = self.lock();
        let key = (conversation.practice_id.clone(), conversation.id.clone());
        match tables.conversations.get(&key) {
            Some(r)
                if r.conversation.status == ConversationStatus::Open
                    && r.conversation.department_id == transfer.from
                    && r.conversation.last_seq == conversation.last_seq => {}
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
            claim.department_name = notice.department_name.clone();
            claim.last_seq = notice.seq;
        }
        tables
            .alerts
            .push((new_alert_record(alert), HashMap::new()));
        let record = tables
            .conversations
            .get_mut(&key)
            .ok_or(StoreError::VersionMismatch)?;
        record.conversation.department_id = transfer.to.clone();
        record.conversation.department_name = notice.department_name.clone();
        record.conversation.last_seq = notice.seq;
        record.transfers.push(transfer.clone());
        record.messages.push(notice.clone());
        let moved = record.conversation.clone();
        self.feed
            .publish(Change::transferred(&moved, &transfer.from, notice));
        Ok(moved)
    }
}

#[async_trait]
impl ClientConversations for MemoryStore {
    async fn client_conversations(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Conversation>> {
        let tables = self.lock();
        let mut found: Vec<Conversation> = tables
            .conversations
            .iter()
            .filter(|((p, _), r)| {
                p == practice_id
                    && r.conversation.client_id == client_id
                    && in_client_view(r.conversation.channel)
            })
            .map(|(_, r)| r.conversation.clone())
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(activity_key(c)));
        found.truncate(limit);
        Ok(found)
    }

    async fn client_messages(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<MessagePage>> {
        let tables = self.lock();
        Ok(tables
            .conversations
            .get(&(practice_id.clone(), id.clone()))
            .filter(|r| {
                r.conversation.client_id == client_id && in_client_view(r.conversation.channel)
            })
            .map(|r| {
                let (messages, next_after) = range.page(&r.messages);
                MessagePage {
                    messages,
                    next_after,
                }
            }))
    }
}
