//! The conversation half of the DynamoDB store (layout in [`super::super`]): the items, and the requests
//! behind the `Store` port's conversation methods, each within its DESIGN.md budget.
//!
//! | method | requests |
//! |---|---|
//! | `routing_context` | one `BatchGetItem` (practice, department, the client's claim; consistent) |
//! | `start_conversation` | one `TransactWriteItems` |
//! | `append_messages` | one `TransactWriteItems` |
//! | `get_conversation` | one `GetItem` |
//! | `conversation_detail` | one `Query` on the conversation's collection (more pages only past 1 MB) |
//! | `end_conversation` | one `TransactWriteItems` |
//! | `list_conversations` | `Query` on `GSI1`: one per status partition read, more when a filter thins pages |
//!
//! Retries of conflicting transactions (and DynamoDB Local's conflicts reported as failed conditions) are
//! the shared [`DynamoStore::transact`]'s: a cancellation is a rule only when the old image shows it.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::conversation::{Conversation, ConversationId, ConversationStatus, Message, Transfer};
use domain::identity::{DepartmentId, PracticeId};
use domain::store::{
    ConversationDetail, ConversationFilter, ConversationPage, NewConversation, OpenConversation,
    RoutingContext, StoreError, StoreResult,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};

use super::{
    build_failed, decoding_failed, department_key, encoding_failed, exists_in, failed, key,
    practice_key, read_collection, s, sdk_unavailable, sort_key, string_attribute, Backoff,
    DynamoStore, Item, Verdict, ABSENT,
};

// ---------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------

pub(super) const GSI1: &str = "GSI1";
pub(super) const GSI1PK: &str = "GSI1PK";
pub(super) const GSI1SK: &str = "GSI1SK";

const CONVERSATION_SK: &str = "CONV";
const MESSAGE_SK_PREFIX: &str = "MSG#";
pub(super) const TRANSFER_SK_PREFIX: &str = "XFER#";
const CLAIM_SK: &str = "OPEN";
const INBOUND_SK: &str = "INBOUND";

/// How long an inbound message id is remembered (the table's TTL deletes the record after).
const INBOUND_DEDUP_DAYS: i64 = 7;

/// A transaction holds at most this many items.
const MAX_TRANSACTION_ITEMS: usize = 100;

pub(super) fn conversation_pk(practice_id: &PracticeId, id: &ConversationId) -> String {
    format!("CONV#{practice_id}#{id}")
}

pub(super) fn conversation_key(practice_id: &PracticeId, id: &ConversationId) -> Item {
    key(conversation_pk(practice_id, id), CONVERSATION_SK)
}

pub(super) fn claim_key(practice_id: &PracticeId, client_id: &str) -> Item {
    key(format!("OPEN#{practice_id}#{client_id}"), CLAIM_SK)
}

fn inbound_key(practice_id: &PracticeId, dedup_key: &str) -> Item {
    key(format!("INBOUND#{practice_id}#{dedup_key}"), INBOUND_SK)
}

pub(super) fn status_str(status: ConversationStatus) -> &'static str {
    match status {
        ConversationStatus::Open => "open",
        ConversationStatus::Resolved => "resolved",
    }
}

/// The index partition of a practice's conversations in one status.
pub(super) fn list_pk(practice_id: &PracticeId, status: ConversationStatus) -> String {
    format!("CONVS#{practice_id}#{}", status_str(status))
}

/// An instant as a fixed-width UTC string (nanoseconds, `Z`), so strings sort as instants do. Nanoseconds,
/// not fewer digits: the orders then agree exactly with the embedded store's, which compares instants.
pub(super) fn sortable(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// The index sort key: newest activity first when read backwards; the id breaks ties (as in the embedded
/// store) and makes every conversation's position unique, which is what a list cursor holds.
fn activity_sk(last_message_at: DateTime<Utc>, id: &ConversationId) -> String {
    format!("{}#{id}", sortable(last_message_at))
}

fn message_sk(message: &Message) -> String {
    format!("{MESSAGE_SK_PREFIX}{}#{}", sortable(message.at), message.id)
}

// ---------------------------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------------------------

fn conversation_item(c: &Conversation) -> StoreResult<Item> {
    let mut item = to_item(c).map_err(encoding_failed)?;
    item.extend(conversation_key(&c.practice_id, &c.id));
    item.insert(GSI1PK.into(), s(list_pk(&c.practice_id, c.status)));
    item.insert(GSI1SK.into(), s(activity_sk(c.last_message_at, &c.id)));
    Ok(item)
}

fn message_item(practice_id: &PracticeId, m: &Message) -> StoreResult<Item> {
    let mut item = to_item(m).map_err(encoding_failed)?;
    item.extend(key(
        conversation_pk(practice_id, &m.conversation_id),
        &message_sk(m),
    ));
    Ok(item)
}

fn claim_item(practice_id: &PracticeId, client_id: &str, open: &OpenConversation) -> Item {
    let mut item = claim_key(practice_id, client_id);
    item.insert("conversation_id".into(), s(open.conversation_id.as_str()));
    item.insert("department_id".into(), s(open.department_id.as_str()));
    item
}

fn inbound_item(
    practice_id: &PracticeId,
    dedup_key: &str,
    conversation_id: &ConversationId,
) -> Item {
    let expires_at = Utc::now() + chrono::Duration::days(INBOUND_DEDUP_DAYS);
    let mut item = inbound_key(practice_id, dedup_key);
    item.insert("conversation_id".into(), s(conversation_id.as_str()));
    item.insert(
        "expires_at".into(),
        AttributeValue::N(expires_at.timestamp().to_string()),
    );
    item
}

/// A pending alert as written by the change that causes it (start, transfer): `status = "pending"`, listed
/// in the sparse pending-alerts partition of `GSI1` (oldest first), with empty delivery maps so the
/// dispatcher's `SET outcomes.#k` / `SET claims.#k` always find their parent map.
pub(super) fn alert_item(alert: &PendingAlert) -> StoreResult<Item> {
    let mut item = to_item(alert).map_err(encoding_failed)?;
    item.extend(super::alerts::alert_key(&alert.id));
    item.insert("status".into(), s("pending"));
    item.insert(GSI1PK.into(), s(super::alerts::PENDING_ALERTS_PK));
    item.insert(
        GSI1SK.into(),
        s(super::alerts::pending_sk(alert.created_at, &alert.id)),
    );
    item.insert("outcomes".into(), AttributeValue::M(HashMap::new()));
    item.insert("claims".into(), AttributeValue::M(HashMap::new()));
    Ok(item)
}

pub(super) fn put_item(table: &str, item: Item) -> StoreResult<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(build_failed)?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// `ADD` `delta` to a department's `open_conversations`; the department must exist.
pub(super) fn count_open(
    table: &str,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
    delta: i64,
) -> StoreResult<TransactWriteItem> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(department_key(
            practice_id.as_str(),
            department_id.as_str(),
        )))
        .update_expression("ADD #open :delta")
        .condition_expression("attribute_exists(PK)")
        .expression_attribute_names("#open", "open_conversations")
        .expression_attribute_values(":delta", AttributeValue::N(delta.to_string()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(build_failed)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// A failed `attribute_not_exists(PK)` on the dedup record, for real: the message was stored before.
fn duplicate_inbound(reasons: &[CancellationReason], index: Option<usize>) -> Option<StoreError> {
    let old = failed(reasons, index?)?;
    old.filter(|item| !item.is_empty()).map(|item| {
        StoreError::DuplicateInbound(ConversationId(
            string_attribute(item, "conversation_id")
                .unwrap_or_default()
                .to_owned(),
        ))
    })
}

fn too_many_items(count: usize) -> StoreResult<()> {
    if count > MAX_TRANSACTION_ITEMS {
        tracing::error!(
            count,
            "a conversation write needs more items than a transaction holds"
        );
        return Err(StoreError::Unavailable(
            "too many messages for one write".into(),
        ));
    }
    Ok(())
}

/// What a list cursor holds: the caller's practice and the index sort key of the last conversation
/// answered (unique per conversation, so the next page starts right after it in every status partition).
#[derive(Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "p")]
    practice_id: PracticeId,
    #[serde(rename = "k")]
    after: String,
}

fn encode_cursor(cursor: &Cursor) -> String {
    let json = serde_json::to_vec(cursor).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
}

fn decode_cursor(raw: &str, practice_id: &PracticeId) -> StoreResult<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .map_err(|_| StoreError::BadCursor)?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| StoreError::BadCursor)?;
    // Another practice's cursor could only ever position a read of the caller's own partition (the
    // partition key comes from the caller, never from the cursor); it is refused all the same.
    // A position is a key of this table: bounded like one (a longer one is not a cursor this API gave).
    if &cursor.practice_id != practice_id || cursor.after.is_empty() || cursor.after.len() > 1024 {
        return Err(StoreError::BadCursor);
    }
    Ok(cursor.after)
}

/// One status partition of the index, read newest first, a page at a time as the merge needs it.
struct Partition {
    pk: String,
    buffered: std::collections::VecDeque<Item>,
    start_key: Option<Item>,
    exhausted: bool,
}

// ---------------------------------------------------------------------------------------------------------
// The port's conversation methods
// ---------------------------------------------------------------------------------------------------------

impl DynamoStore {
    pub(super) async fn conversations_routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        let keys = KeysAndAttributes::builder()
            .keys(practice_key(practice_id.as_str()))
            .keys(department_key(practice_id.as_str(), department_id.as_str()))
            .keys(claim_key(practice_id, client_id))
            .consistent_read(true)
            .build()
            .map_err(build_failed)?;
        let mut request = HashMap::from([(self.table.clone(), keys)]);
        let mut items = Vec::new();
        let mut backoff = Backoff::new("DynamoDB BatchGetItem left keys unprocessed");
        loop {
            let out = self
                .client
                .batch_get_item()
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(|e| sdk_unavailable("BatchGetItem", &e))?;
            items.extend(
                out.responses
                    .and_then(|mut r| r.remove(&self.table))
                    .unwrap_or_default(),
            );
            match out
                .unprocessed_keys
                .filter(|u| u.values().any(|k| !k.keys().is_empty()))
            {
                None => break,
                Some(unprocessed) => {
                    backoff.wait().await?;
                    request = unprocessed;
                }
            }
        }
        let (claims, settings): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|item| sort_key(item) == Some(CLAIM_SK));
        let open_conversation = claims
            .into_iter()
            .next()
            .map(|item| from_item::<OpenConversation>(item).map_err(decoding_failed))
            .transpose()?;
        let (practice, departments) = read_collection(settings)?;
        Ok(RoutingContext {
            practice,
            department: departments.into_iter().find(|d| &d.id == department_id),
            open_conversation,
        })
    }

    pub(super) async fn conversations_start(&self, new: &NewConversation) -> StoreResult<()> {
        let c = &new.conversation;
        let open = OpenConversation {
            conversation_id: c.id.clone(),
            department_id: c.department_id.clone(),
        };
        // Items in this order; the cancellation reasons come back in it.
        let messages_at = 2;
        let department_at = messages_at + new.messages.len();
        let alert_at = new.alert.as_ref().map(|_| department_at + 1);
        let dedup_at = new
            .dedup_key
            .as_ref()
            .map(|_| department_at + 1 + usize::from(alert_at.is_some()));
        too_many_items(
            department_at + 1 + usize::from(alert_at.is_some()) + usize::from(dedup_at.is_some()),
        )?;

        let build = || {
            let mut items = vec![
                super::put(
                    &self.table,
                    claim_item(&c.practice_id, &c.client_id, &open),
                    ABSENT,
                    vec![],
                )?,
                super::put(&self.table, conversation_item(c)?, ABSENT, vec![])?,
            ];
            for m in &new.messages {
                items.push(put_item(&self.table, message_item(&c.practice_id, m)?)?);
            }
            items.push(count_open(
                &self.table,
                &c.practice_id,
                &c.department_id,
                1,
            )?);
            if let Some(alert) = &new.alert {
                items.push(put_item(&self.table, alert_item(alert)?)?);
            }
            if let Some(dedup_key) = &new.dedup_key {
                items.push(super::put(
                    &self.table,
                    inbound_item(&c.practice_id, dedup_key, &c.id),
                    ABSENT,
                    vec![],
                )?);
            }
            Ok(items)
        };
        // The same order of rules as the embedded store: claim, department, dedup.
        let interpret = |reasons: &[CancellationReason]| {
            if failed(reasons, 0).is_some_and(exists_in) {
                Verdict::Fail(StoreError::ClientHasOpenConversation)
            } else if failed(reasons, department_at).is_some_and(|old| !exists_in(old)) {
                Verdict::Fail(StoreError::NotFound)
            } else if let Some(error) = duplicate_inbound(reasons, dedup_at) {
                Verdict::Fail(error)
            } else if failed(reasons, 1).is_some_and(exists_in) {
                Verdict::Fail(StoreError::AlreadyExists)
            } else {
                Verdict::Retry
            }
        };
        self.transact(build, interpret).await
    }

    pub(super) async fn conversations_append(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
    ) -> StoreResult<()> {
        let dedup_at = dedup_key.map(|_| 1 + messages.len());
        too_many_items(1 + messages.len() + usize::from(dedup_at.is_some()))?;
        let conversation = conversation_key(practice_id, &open.conversation_id);
        const OPEN_NOW: &str = "attribute_exists(PK) AND #status = :open";

        let build = || {
            // The conversation must still be open; its activity moves to the last message.
            let first = match messages.iter().map(|m| m.at).max() {
                Some(last) => {
                    let update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(conversation.clone()))
                        .update_expression("SET #last = :last, #gsi1sk = :gsi1sk")
                        .condition_expression(OPEN_NOW)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_names("#last", "last_message_at")
                        .expression_attribute_names("#gsi1sk", GSI1SK)
                        .expression_attribute_values(
                            ":open",
                            s(status_str(ConversationStatus::Open)),
                        )
                        .expression_attribute_values(
                            ":last",
                            to_attribute_value(last).map_err(encoding_failed)?,
                        )
                        .expression_attribute_values(
                            ":gsi1sk",
                            s(activity_sk(last, &open.conversation_id)),
                        )
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_failed)?;
                    TransactWriteItem::builder().update(update).build()
                }
                None => {
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(conversation.clone()))
                        .condition_expression(OPEN_NOW)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(
                            ":open",
                            s(status_str(ConversationStatus::Open)),
                        )
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_failed)?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
            };
            let mut items = vec![first];
            for m in messages {
                items.push(put_item(&self.table, message_item(practice_id, m)?)?);
            }
            if let Some(dedup_key) = dedup_key {
                items.push(super::put(
                    &self.table,
                    inbound_item(practice_id, dedup_key, &open.conversation_id),
                    ABSENT,
                    vec![],
                )?);
            }
            Ok(items)
        };
        // The same order of rules as the embedded store: open conversation, then dedup.
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(old) = failed(reasons, 0) {
                let still_open = old
                    .filter(|item| !item.is_empty())
                    .and_then(|item| string_attribute(item, "status"))
                    == Some(status_str(ConversationStatus::Open));
                if !still_open {
                    return Verdict::Fail(StoreError::NotFound);
                }
            }
            match duplicate_inbound(reasons, dedup_at) {
                Some(error) => Verdict::Fail(error),
                None => Verdict::Retry,
            }
        };
        self.transact(build, interpret).await
    }

    pub(super) async fn conversations_get(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(practice_id, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_unavailable("GetItem", &e))?;
        out.item
            .map(|item| from_item(item).map_err(decoding_failed))
            .transpose()
    }

    pub(super) async fn conversations_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationDetail>> {
        // One Query on the conversation's collection: the conversation, then its messages and transfers in
        // sort-key (time) order; a further page only past 1 MB.
        let mut conversation = None;
        let mut messages = Vec::new();
        let mut transfers = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(conversation_pk(practice_id, id)))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_unavailable("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                match sort_key(&item) {
                    Some(CONVERSATION_SK) => {
                        conversation =
                            Some(from_item::<Conversation>(item).map_err(decoding_failed)?)
                    }
                    Some(sk) if sk.starts_with(MESSAGE_SK_PREFIX) => {
                        messages.push(from_item::<Message>(item).map_err(decoding_failed)?)
                    }
                    Some(sk) if sk.starts_with(TRANSFER_SK_PREFIX) => {
                        transfers.push(from_item::<Transfer>(item).map_err(decoding_failed)?)
                    }
                    _ => {}
                }
            }
            start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start_key.is_none() {
                break;
            }
        }
        Ok(conversation.map(|conversation| ConversationDetail {
            conversation,
            messages,
            transfers,
        }))
    }

    pub(super) async fn conversations_end(
        &self,
        conversation: &Conversation,
        at: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        let practice_id = &conversation.practice_id;
        let build = || {
            let resolve = Update::builder()
                .table_name(&self.table)
                .set_key(Some(conversation_key(practice_id, &conversation.id)))
                .update_expression(
                    "SET #status = :resolved, #resolved_at = :at, #gsi1pk = :resolved_pk",
                )
                .condition_expression(
                    "attribute_exists(PK) AND #status = :open AND #department = :department",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#resolved_at", "resolved_at")
                .expression_attribute_names("#gsi1pk", GSI1PK)
                .expression_attribute_names("#department", "department_id")
                .expression_attribute_values(
                    ":resolved",
                    s(status_str(ConversationStatus::Resolved)),
                )
                .expression_attribute_values(":open", s(status_str(ConversationStatus::Open)))
                .expression_attribute_values(
                    ":at",
                    to_attribute_value(at).map_err(encoding_failed)?,
                )
                .expression_attribute_values(
                    ":resolved_pk",
                    s(list_pk(practice_id, ConversationStatus::Resolved)),
                )
                .expression_attribute_values(":department", s(conversation.department_id.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            Ok(vec![
                TransactWriteItem::builder().update(resolve).build(),
                super::delete(
                    &self.table,
                    claim_key(practice_id, &conversation.client_id),
                    "conversation_id = :conversation",
                    vec![],
                    vec![(":conversation", s(conversation.id.as_str()))],
                )?,
                count_open(&self.table, practice_id, &conversation.department_id, -1)?,
            ])
        };
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(old) = failed(reasons, 0) {
                let holds = old.filter(|item| !item.is_empty()).is_some_and(|item| {
                    string_attribute(item, "status") == Some(status_str(ConversationStatus::Open))
                        && string_attribute(item, "department_id")
                            == Some(conversation.department_id.as_str())
                });
                if !holds {
                    return Verdict::Fail(StoreError::VersionMismatch);
                }
            }
            if let Some(old) = failed(reasons, 1) {
                let ours = old.and_then(|item| string_attribute(item, "conversation_id"))
                    == Some(conversation.id.as_str());
                if !ours {
                    tracing::error!(conversation = %conversation.id, "the client's claim is not this open conversation's");
                    return Verdict::Fail(StoreError::VersionMismatch);
                }
            }
            if failed(reasons, 2).is_some_and(|old| !exists_in(old)) {
                // A department with open conversations cannot be deleted: the data is inconsistent.
                tracing::error!(conversation = %conversation.id, department = %conversation.department_id, "an open conversation's department is gone");
                return Verdict::Fail(StoreError::Unavailable(
                    "conversation's department record is missing".into(),
                ));
            }
            Verdict::Retry
        };
        self.transact(build, interpret).await?;
        Ok(Conversation {
            status: ConversationStatus::Resolved,
            resolved_at: Some(at),
            ..conversation.clone()
        })
    }

    pub(super) async fn conversations_list(
        &self,
        practice_id: &PracticeId,
        filter: &ConversationFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        let after = cursor
            .map(|raw| decode_cursor(raw, practice_id))
            .transpose()?;
        let limit = limit.max(1);
        let statuses = match filter.status {
            Some(status) => vec![status],
            None => vec![ConversationStatus::Open, ConversationStatus::Resolved],
        };
        let mut partitions: Vec<Partition> = statuses
            .into_iter()
            .map(|status| Partition {
                pk: list_pk(practice_id, status),
                buffered: Default::default(),
                start_key: None,
                exhausted: false,
            })
            .collect();

        // Merge the partitions (each newest first) until one more than a page is found: the extra one only
        // tells whether there is a next page.
        let mut found: Vec<Item> = Vec::with_capacity(limit + 1);
        while found.len() <= limit {
            for partition in partitions.iter_mut() {
                while partition.buffered.is_empty() && !partition.exhausted {
                    self.read_page(partition, filter, after.as_deref(), limit + 1)
                        .await?;
                }
            }
            let newest = partitions
                .iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    p.buffered
                        .front()
                        .and_then(|item| string_attribute(item, GSI1SK))
                        .map(|sk| (i, sk))
                })
                .max_by(|a, b| a.1.cmp(b.1))
                .map(|(i, _)| i);
            let Some(i) = newest else { break };
            if let Some(item) = partitions[i].buffered.pop_front() {
                found.push(item);
            }
        }

        let more = found.len() > limit;
        found.truncate(limit);
        let next_cursor = match found.last() {
            Some(last) if more => Some(encode_cursor(&Cursor {
                practice_id: practice_id.clone(),
                after: string_attribute(last, GSI1SK)
                    .unwrap_or_default()
                    .to_owned(),
            })),
            _ => None,
        };
        let conversations = found
            .into_iter()
            .map(|item| from_item::<Conversation>(item).map_err(decoding_failed))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(ConversationPage {
            conversations,
            next_cursor,
        })
    }

    /// One page of a status partition into its buffer (possibly empty when the filter drops everything).
    async fn read_page(
        &self,
        partition: &mut Partition,
        filter: &ConversationFilter,
        after: Option<&str>,
        page: usize,
    ) -> StoreResult<()> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .scan_index_forward(false)
            .limit(i32::try_from(page).unwrap_or(i32::MAX))
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_values(":pk", s(partition.pk.clone()))
            .set_exclusive_start_key(partition.start_key.take());
        request = match after {
            Some(after) => request
                .key_condition_expression("#pk = :pk AND #sk < :after")
                .expression_attribute_names("#sk", GSI1SK)
                .expression_attribute_values(":after", s(after)),
            None => request.key_condition_expression("#pk = :pk"),
        };
        if let Some(department_id) = &filter.department_id {
            request = request
                .filter_expression("#department = :department")
                .expression_attribute_names("#department", "department_id")
                .expression_attribute_values(":department", s(department_id.as_str()));
        }
        let out = request
            .send()
            .await
            .map_err(|e| sdk_unavailable("Query", &e))?;
        partition.buffered.extend(out.items.unwrap_or_default());
        partition.start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
        partition.exhausted = partition.start_key.is_none();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sortable_instants_are_fixed_width_and_sort_as_instants() {
        let a = DateTime::parse_from_rfc3339("2026-11-21T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::nanoseconds(1);
        assert_eq!(sortable(a), "2026-11-21T17:30:00.000000000Z");
        assert_eq!(sortable(b), "2026-11-21T17:30:00.000001000Z");
        assert!(sortable(a) < sortable(c) && sortable(c) < sortable(b));
        let id = ConversationId("cnv_1".into());
        assert_eq!(activity_sk(a, &id), "2026-11-21T17:30:00.000000000Z#cnv_1");
    }

    #[test]
    fn cursors_name_their_practice() {
        let p = PracticeId::from("p1");
        let raw = encode_cursor(&Cursor {
            practice_id: p.clone(),
            after: "2026#cnv".into(),
        });
        assert_eq!(decode_cursor(&raw, &p), Ok("2026#cnv".into()));
        assert_eq!(
            decode_cursor(&raw, &PracticeId::from("p2")),
            Err(StoreError::BadCursor)
        );
        assert_eq!(decode_cursor("%%%", &p), Err(StoreError::BadCursor));
        assert_eq!(decode_cursor("e30", &p), Err(StoreError::BadCursor));
    }
}
