//! Conversations on DynamoDB: a conversation and its messages in one item collection keyed by the practice
//! (so another practice's conversation is unreachable), messages keyed by `seq` and the conversation item
//! sorting right after them; the client's open-conversation claim, the inbound messages seen, `GSI1`'s lists
//! per status and `GSI2`'s list of a client's app and web conversations.
//!
//! `seq`: the conversation item holds `last_seq`, and so does the claim (the inbound path reads the claim,
//! not the conversation). Every write that appends messages updates both in one transaction, so the two are
//! always equal, and conditions the conversation item on `last_seq` being what the writer read: of writers
//! that read the same `last_seq`, one commits and the others re-read. Each message is put only if its
//! `seq` key is free, too.
//!
//! | method | requests |
//! |---|---|
//! | `routing_context` | one `BatchGetItem` (practice, department, the client's claim, rate counters and opt-out record; consistent) |
//! | `record_opt_keyword` | one `TransactWriteItems` (`opt_outs.rs`) |
//! | `start_conversation` | one `TransactWriteItems` (with the client's rate counters when limited) |
//! | `append_counted` | one `TransactWriteItems` (likewise) |
//! | `get_conversation` | one `GetItem` |
//! | `conversation_detail` | one `Query` (the messages after `seq`, then the conversation item); one `GetItem` more when messages remain after the page |
//! | `end_conversation` | one `TransactWriteItems` |
//! | `list_conversations` | `Query` on `GSI1`: one per status partition read, more when a filter thins pages |
//! | `transfer_context` | one `BatchGetItem` (the conversation, the target department) |
//! | `transfer_conversation` | one `TransactWriteItems` (conversation with its transfer, the system message, −1/+1 on the departments, the client's claim, the alert) |
//! | `client_conversations` | one `Query` on `GSI2` |
//! | `client_messages` | one `Query` (each message names its client, and so does the conversation item read last) |
//!
//! Every transaction's conflicts are retried by [`DynamoStore::transact`]; a cancellation is a rule only when
//! the old image shows it.

use std::collections::VecDeque;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::client_view::in_client_view;
use domain::conversation::rate_limit::RateUpdate;
use domain::conversation::{
    after_hours_reply_at, last_whatsapp_message_at, Channel, Conversation, ConversationId,
    ConversationStatus, Message, Transfer,
};
use domain::identity::{DepartmentId, PracticeId};
use domain::realtime::Change;
use domain::store::{
    is_text_in_flight, ClientConversations, ConversationDetail, ConversationFilter,
    ConversationHistory, ConversationIntake, ConversationPage, ConversationStore, MessagePage,
    MessageRange, NewConversation, OpenConversation, OptKeywordWrite, RoutingContext, StoreError,
    StoreResult, TransferContext, TransferStore,
};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};

use super::alerts::alert_item;
use super::codec::{
    build_failed, decoding_failed, delete, encoding_failed, n, number_attribute, put, put_item, s,
    sort_key, string_attribute, Item, ABSENT,
};
use super::keys::{
    activity_sk, claim_key, client_list_pk, conversation_key, conversation_pk, department_key,
    in_flight_sk, inbound_key, key, list_pk, message_sk, opt_out_key, practice_key, status_str,
    CLAIM_SK, CONVERSATION_SK, GSI1, GSI1PK, GSI1SK, GSI2, GSI2PK, GSI2SK, MESSAGE_SK_PREFIX,
    OPT_OUT_SK, TEXTS_IN_FLIGHT_PK,
};
use super::opt_outs::{opt_out_check, opted_out_at_in, CopyOnConversation};
use super::rate_limits::{rate_changed, rate_key, rate_put, read_rate, RATE_SK};
use super::settings::read_collection;
use super::{exists_in, failed, sdk_unavailable, DynamoStore, Verdict};
use crate::store::cursor::{decode_list_cursor, encode_list_cursor};

/// How long an inbound message id is remembered (the table's TTL deletes the record after).
const INBOUND_DEDUP_DAYS: i64 = 7;

/// A transaction holds at most this many items.
const MAX_TRANSACTION_ITEMS: usize = 100;

// ---------------------------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------------------------

/// The conversation item's own attributes beside the `Conversation` fields: its transfers (a list: a
/// conversation is moved a few times at most) and the last message a person wrote (what a transfer's alert
/// quotes), so a transfer reads one item.
const TRANSFERS: &str = "transfers";
const PREVIEW: &str = "preview";
/// On each message item: the conversation's client, so a page of messages that does not reach the
/// conversation item still says whose it is.
const OWNER: &str = "client_id";
/// On the conversation item and the claim: when the conversation last got the after-hours text.
const AFTER_HOURS: &str = "after_hours_replied_at";
/// On each text reply's item: the practice number or WhatsApp phone number id it goes out from (the
/// conversation's `reply_from`), so the sender reads one item.
pub(super) const REPLY_FROM: &str = "reply_from";

fn conversation_item(c: &Conversation, messages: &[Message]) -> StoreResult<Item> {
    let mut item = to_item(c).map_err(encoding_failed)?;
    item.extend(conversation_key(&c.practice_id, &c.id));
    item.insert(GSI1PK.into(), s(list_pk(&c.practice_id, c.status)));
    item.insert(GSI1SK.into(), s(activity_sk(c.last_message_at, &c.id)));
    if in_client_view(c.channel) {
        item.insert(
            GSI2PK.into(),
            s(client_list_pk(&c.practice_id, &c.client_id)),
        );
        item.insert(GSI2SK.into(), s(activity_sk(c.last_message_at, &c.id)));
    }
    item.insert(TRANSFERS.into(), AttributeValue::L(Vec::new()));
    if let Some(preview) = preview_of(messages) {
        item.insert(PREVIEW.into(), s(preview));
    }
    Ok(item)
}

fn preview_of(messages: &[Message]) -> Option<&str> {
    messages
        .iter()
        .rev()
        .find(|m| m.by_a_person())
        .map(|m| m.body.as_str())
}

/// Whose conversation a message item is in: its client, and where its text replies go out from.
struct Owner<'a> {
    client_id: &'a str,
    reply_from: Option<&'a str>,
}

impl<'a> Owner<'a> {
    fn of(c: &'a Conversation) -> Self {
        Owner {
            client_id: &c.client_id,
            reply_from: c.reply_from.as_deref(),
        }
    }

    fn of_open(open: &'a OpenConversation) -> Self {
        Owner {
            client_id: &open.client_id,
            reply_from: open.reply_from.as_deref(),
        }
    }
}

fn message_item(practice_id: &PracticeId, owner: &Owner<'_>, m: &Message) -> StoreResult<Item> {
    let mut item = to_item(m).map_err(encoding_failed)?;
    item.extend(key(
        conversation_pk(practice_id, &m.conversation_id),
        &message_sk(m.seq),
    ));
    item.insert(OWNER.into(), s(owner.client_id));
    if let Some(from) = owner.reply_from.filter(|_| m.delivery.is_some()) {
        item.insert(REPLY_FROM.into(), s(from));
    }
    item.insert("practice_id".into(), s(practice_id.as_str()));
    if let Some(d) = m.delivery.as_ref().filter(|_| is_text_in_flight(m)) {
        let pk = conversation_pk(practice_id, &m.conversation_id);
        item.insert(GSI1PK.into(), s(TEXTS_IN_FLIGHT_PK));
        item.insert(GSI1SK.into(), s(in_flight_sk(d.updated_at, &pk, m.seq)));
    }
    Ok(item)
}

/// A message put only where its `seq` is free.
fn message_put(
    table: &str,
    practice_id: &PracticeId,
    owner: &Owner<'_>,
    m: &Message,
) -> StoreResult<TransactWriteItem> {
    put(table, message_item(practice_id, owner, m)?, ABSENT, vec![])
}

fn claim_item(practice_id: &PracticeId, open: &OpenConversation) -> StoreResult<Item> {
    let mut item = to_item(open).map_err(encoding_failed)?;
    item.extend(claim_key(practice_id, &open.client_id));
    Ok(item)
}

/// The `last_seq` an old image holds (0 when it has none).
fn last_seq_in(item: &Item) -> u64 {
    number_attribute(item, "last_seq").unwrap_or(0)
}

/// The claim of `open`'s client moved to `last_seq` (and to another department, for a transfer), if it is
/// still this conversation's.
fn claim_update(
    table: &str,
    practice_id: &PracticeId,
    open: &OpenConversation,
    last_seq: u64,
    after_hours_at: Option<DateTime<Utc>>,
) -> StoreResult<TransactWriteItem> {
    let mut update = Update::builder();
    let mut expression = String::from("SET #seq = :seq, #department = :department, #name = :name");
    if let Some(at) = after_hours_at {
        expression.push_str(", #after_hours = :after_hours");
        update = update
            .expression_attribute_names("#after_hours", AFTER_HOURS)
            .expression_attribute_values(
                ":after_hours",
                to_attribute_value(at).map_err(encoding_failed)?,
            );
    }
    let update = update
        .table_name(table)
        .set_key(Some(claim_key(practice_id, &open.client_id)))
        .update_expression(expression)
        .condition_expression("conversation_id = :conversation")
        .expression_attribute_names("#seq", "last_seq")
        .expression_attribute_names("#department", "department_id")
        .expression_attribute_names("#name", "department_name")
        .expression_attribute_values(":seq", n(last_seq))
        .expression_attribute_values(":department", s(open.department_id.as_str()))
        .expression_attribute_values(":name", s(open.department_name.as_str()))
        .expression_attribute_values(":conversation", s(open.conversation_id.as_str()))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(build_failed)?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// The record of an inbound message seen, kept a week from when it arrived (the table's TTL then deletes
/// it); with no instant (an append without messages) it is kept.
pub(super) fn inbound_item(
    practice_id: &PracticeId,
    dedup_key: &str,
    conversation_id: &ConversationId,
    received_at: Option<DateTime<Utc>>,
) -> Item {
    let mut item = inbound_key(practice_id, dedup_key);
    item.insert("conversation_id".into(), s(conversation_id.as_str()));
    if let Some(at) = received_at {
        let expires_at = at + chrono::Duration::days(INBOUND_DEDUP_DAYS);
        item.insert(
            "expires_at".into(),
            AttributeValue::N(expires_at.timestamp().to_string()),
        );
    }
    item
}

/// `ADD` `delta` to a department's `open_conversations`; the department must exist.
fn count_open(
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
pub(super) fn duplicate_inbound(
    reasons: &[CancellationReason],
    index: Option<usize>,
) -> Option<StoreError> {
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

/// The transfers a conversation item holds, oldest first.
fn transfers_in(item: &Item) -> StoreResult<Vec<Transfer>> {
    match item.get(TRANSFERS) {
        Some(value) => serde_dynamo::from_attribute_value(value.clone()).map_err(decoding_failed),
        None => Ok(Vec::new()),
    }
}

/// What one Query of a conversation's collection read: the messages after a `seq` (at most one more than
/// the page), then the conversation item if the read got that far.
struct Collection {
    messages: Vec<Item>,
    conversation: Option<Item>,
    /// Messages may follow: the page is full, or DynamoDB cut it at 1 MB.
    more: bool,
}

/// One status partition of the index, read newest first, a page at a time as the merge needs it.
struct Partition {
    pk: String,
    buffered: VecDeque<Item>,
    start_key: Option<Item>,
    exhausted: bool,
}

// ---------------------------------------------------------------------------------------------------------
// The port
// ---------------------------------------------------------------------------------------------------------

#[async_trait]
impl ConversationIntake for DynamoStore {
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        let items = self
            .batch_get([
                practice_key(practice_id.as_str()),
                department_key(practice_id.as_str(), department_id.as_str()),
                claim_key(practice_id, client_id),
                rate_key(practice_id, client_id),
                opt_out_key(practice_id, client_id),
            ])
            .await?;
        let (opt_outs, items): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|item| sort_key(item) == Some(OPT_OUT_SK));
        let sms_opted_out_at = match opt_outs.first() {
            Some(item) => opted_out_at_in(item)?,
            None => None,
        };
        let (rates, items): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|item| sort_key(item) == Some(RATE_SK));
        let client_rate = rates.into_iter().next().map(read_rate).transpose()?;
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
            client_rate,
            sms_opted_out_at,
        })
    }

    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()> {
        let c = &new.conversation;
        let open = OpenConversation::of(c);
        // Items in this order; the cancellation reasons come back in it.
        let messages_at = 2;
        let department_at = messages_at + new.messages.len();
        let alert_at = new.alert.as_ref().map(|_| department_at + 1);
        let dedup_at = new
            .dedup_key
            .as_ref()
            .map(|_| department_at + 1 + usize::from(alert_at.is_some()));
        let rate_at = new.rate.as_ref().map(|_| {
            department_at + 1 + usize::from(alert_at.is_some()) + usize::from(dedup_at.is_some())
        });
        // An SMS conversation copies the number's opt-out record: still as read.
        let opt_out_at = (c.channel == Channel::Sms).then(|| {
            department_at
                + 1
                + usize::from(alert_at.is_some())
                + usize::from(dedup_at.is_some())
                + usize::from(rate_at.is_some())
        });
        too_many_items(
            department_at
                + 1
                + usize::from(alert_at.is_some())
                + usize::from(dedup_at.is_some())
                + usize::from(rate_at.is_some())
                + usize::from(opt_out_at.is_some()),
        )?;

        let build = || {
            let mut items = vec![
                put(
                    &self.table,
                    claim_item(&c.practice_id, &open)?,
                    ABSENT,
                    vec![],
                )?,
                put(
                    &self.table,
                    conversation_item(c, &new.messages)?,
                    ABSENT,
                    vec![],
                )?,
            ];
            for m in &new.messages {
                items.push(put_item(
                    &self.table,
                    message_item(&c.practice_id, &Owner::of(c), m)?,
                )?);
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
                items.push(put(
                    &self.table,
                    inbound_item(&c.practice_id, dedup_key, &c.id, Some(c.started_at)),
                    ABSENT,
                    vec![],
                )?);
            }
            if let Some(rate) = &new.rate {
                items.push(rate_put(&self.table, &c.practice_id, rate)?);
            }
            if opt_out_at.is_some() {
                items.push(opt_out_check(
                    &self.table,
                    &c.practice_id,
                    &c.client_id,
                    c.sms_opted_out_at,
                )?);
            }
            Ok(items)
        };
        // The same order of rules as the embedded store: claim, department, dedup, rate counters, opt-out.
        let interpret = |reasons: &[CancellationReason]| {
            if failed(reasons, 0).is_some_and(exists_in) {
                Verdict::Fail(StoreError::ClientHasOpenConversation)
            } else if failed(reasons, department_at).is_some_and(|old| !exists_in(old)) {
                Verdict::Fail(StoreError::NotFound)
            } else if let Some(error) = duplicate_inbound(reasons, dedup_at) {
                Verdict::Fail(error)
            } else if rate_changed(reasons, rate_at)
                || opt_out_at.is_some_and(|i| failed(reasons, i).is_some())
            {
                Verdict::Fail(StoreError::VersionMismatch)
            } else if failed(reasons, 1).is_some_and(exists_in) {
                Verdict::Fail(StoreError::AlreadyExists)
            } else {
                Verdict::Retry
            }
        };
        self.transact(build, interpret).await?;
        self.feed.publish(Change::started(new));
        Ok(())
    }

    async fn append_counted(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
        rate: Option<&RateUpdate>,
    ) -> StoreResult<()> {
        self.append_with(practice_id, open, messages, dedup_key, rate, None)
            .await
    }

    async fn record_opt_keyword(&self, write: &OptKeywordWrite) -> StoreResult<()> {
        self.write_opt_keyword(write).await
    }
}

impl DynamoStore {
    /// `append_counted`, and with `opt_out` an opt-out keyword's append: the record's write (last in the
    /// transaction) and the conversation's copy to set or remove.
    pub(super) async fn append_with(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
        rate: Option<&RateUpdate>,
        opt_out: Option<(TransactWriteItem, Option<CopyOnConversation>)>,
    ) -> StoreResult<()> {
        // Items in this order: the conversation, the claim, the messages, the dedup record, the counters,
        // the opt-out record.
        let messages_at = 2;
        let dedup_at = dedup_key.map(|_| messages_at + messages.len());
        let rate_at = rate.map(|_| messages_at + messages.len() + usize::from(dedup_at.is_some()));
        let opt_out_at = opt_out.as_ref().map(|_| {
            messages_at
                + messages.len()
                + usize::from(dedup_at.is_some())
                + usize::from(rate_at.is_some())
        });
        too_many_items(
            messages_at
                + messages.len()
                + usize::from(dedup_at.is_some())
                + usize::from(rate_at.is_some())
                + usize::from(opt_out_at.is_some()),
        )?;
        let copy = opt_out.as_ref().and_then(|(_, copy)| copy.as_ref());
        let after_hours_at = after_hours_reply_at(messages);
        let conversation = conversation_key(practice_id, &open.conversation_id);
        const OPEN_AT_SEQ: &str = "attribute_exists(PK) AND #status = :open AND #seq = :read";
        // The inbound message a dedup key names comes first (auto-replies follow it).
        let received_at = messages.first().map(|m| m.at);
        let last_seq = messages.last().map_or(open.last_seq, |m| m.seq);

        let build = || {
            // The conversation must still be open at the seq read; its activity and seq move to the last
            // message's.
            let first = match messages.iter().map(|m| m.at).max() {
                Some(last) => {
                    let mut set = vec!["#last = :last", "#gsi1sk = :gsi1sk", "#seq = :seq"];
                    let mut update = Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(conversation.clone()))
                        .condition_expression(OPEN_AT_SEQ)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_names("#seq", "last_seq")
                        .expression_attribute_names("#last", "last_message_at")
                        .expression_attribute_names("#gsi1sk", GSI1SK)
                        .expression_attribute_values(
                            ":open",
                            s(status_str(ConversationStatus::Open)),
                        )
                        .expression_attribute_values(":read", n(open.last_seq))
                        .expression_attribute_values(":seq", n(last_seq))
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
                        );
                    if in_client_view(open.channel) {
                        set.push("#gsi2sk = :gsi1sk");
                        update = update.expression_attribute_names("#gsi2sk", GSI2SK);
                    }
                    if let Some(preview) = preview_of(messages) {
                        set.push("#preview = :preview");
                        update = update
                            .expression_attribute_names("#preview", PREVIEW)
                            .expression_attribute_values(":preview", s(preview));
                    }
                    if let Some(at) = last_whatsapp_message_at(messages) {
                        set.push("#wa = :wa");
                        update = update
                            .expression_attribute_names("#wa", "last_whatsapp_at")
                            .expression_attribute_values(
                                ":wa",
                                to_attribute_value(at).map_err(encoding_failed)?,
                            );
                    }
                    if let Some(at) = after_hours_at {
                        set.push("#after_hours = :after_hours");
                        update = update
                            .expression_attribute_names("#after_hours", AFTER_HOURS)
                            .expression_attribute_values(
                                ":after_hours",
                                to_attribute_value(at).map_err(encoding_failed)?,
                            );
                    }
                    let mut expression = String::new();
                    if let Some(copy) = copy {
                        update = update.expression_attribute_names(
                            "#opted_out",
                            CopyOnConversation::ATTRIBUTE,
                        );
                        match copy.value()? {
                            Some(at) => {
                                set.push("#opted_out = :opted_out");
                                update = update.expression_attribute_values(":opted_out", at);
                            }
                            None => expression.push_str(" REMOVE #opted_out"),
                        }
                    }
                    expression.insert_str(0, &format!("SET {}", set.join(", ")));
                    let update = update
                        .update_expression(expression)
                        .build()
                        .map_err(build_failed)?;
                    TransactWriteItem::builder().update(update).build()
                }
                None => {
                    let check = ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(conversation.clone()))
                        .condition_expression(OPEN_AT_SEQ)
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_names("#seq", "last_seq")
                        .expression_attribute_values(
                            ":open",
                            s(status_str(ConversationStatus::Open)),
                        )
                        .expression_attribute_values(":read", n(open.last_seq))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_failed)?;
                    TransactWriteItem::builder().condition_check(check).build()
                }
            };
            let mut items = vec![
                first,
                claim_update(&self.table, practice_id, open, last_seq, after_hours_at)?,
            ];
            for m in messages {
                items.push(message_put(
                    &self.table,
                    practice_id,
                    &Owner::of_open(open),
                    m,
                )?);
            }
            if let Some(dedup_key) = dedup_key {
                items.push(put(
                    &self.table,
                    inbound_item(practice_id, dedup_key, &open.conversation_id, received_at),
                    ABSENT,
                    vec![],
                )?);
            }
            if let Some(rate) = rate {
                items.push(rate_put(&self.table, practice_id, rate)?);
            }
            if let Some((record, _)) = &opt_out {
                items.push(record.clone());
            }
            Ok(items)
        };
        // The same order of rules as the embedded store: open conversation, its seq, dedup, counters,
        // the opt-out record.
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(old) = failed(reasons, 0) {
                let Some(item) = old.filter(|item| !item.is_empty()) else {
                    return Verdict::Fail(StoreError::NotFound);
                };
                if string_attribute(item, "status") != Some(status_str(ConversationStatus::Open)) {
                    return Verdict::Fail(StoreError::NotFound);
                }
                if last_seq_in(item) != open.last_seq {
                    return Verdict::Fail(StoreError::VersionMismatch);
                }
            }
            if let Some(old) = failed(reasons, 1) {
                let ours = old.and_then(|item| string_attribute(item, "conversation_id"))
                    == Some(open.conversation_id.as_str());
                if !ours {
                    // The claim went with the conversation's end, which the conversation's own
                    // condition sees on the next attempt.
                    return Verdict::Fail(StoreError::NotFound);
                }
            }
            if (messages_at..messages_at + messages.len())
                .any(|i| failed(reasons, i).is_some_and(exists_in))
            {
                return Verdict::Fail(StoreError::VersionMismatch);
            }
            match duplicate_inbound(reasons, dedup_at) {
                Some(error) => Verdict::Fail(error),
                None if rate_changed(reasons, rate_at)
                    || opt_out_at.is_some_and(|i| failed(reasons, i).is_some()) =>
                {
                    Verdict::Fail(StoreError::VersionMismatch)
                }
                None => Verdict::Retry,
            }
        };
        self.transact(build, interpret).await?;
        self.feed
            .publish(Change::appended(practice_id, open, messages));
        Ok(())
    }
}

#[async_trait]
impl ConversationHistory for DynamoStore {
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<ConversationDetail>> {
        let read = self.read_collection(practice_id, id, range).await?;
        let head = match read.conversation {
            Some(item) => item,
            // The page ended before the conversation item: one read more for it.
            None if !read.messages.is_empty() => {
                match self.get_item(conversation_key(practice_id, id)).await? {
                    Some(item) => item,
                    None => return Ok(None),
                }
            }
            None => return Ok(None),
        };
        let (messages, next_after) = page_of(read.messages, read.more, range)?;
        let transfers = transfers_in(&head)?;
        let conversation = from_item::<Conversation>(head).map_err(decoding_failed)?;
        Ok(Some(ConversationDetail {
            conversation,
            messages,
            transfers,
            next_after,
        }))
    }
}

/// The messages of a page read, decoded, and the `next_after` to answer.
fn page_of(
    items: Vec<Item>,
    more: bool,
    range: MessageRange,
) -> StoreResult<(Vec<Message>, Option<u64>)> {
    let mut messages = items
        .into_iter()
        .map(|item| from_item::<Message>(item).map_err(decoding_failed))
        .collect::<StoreResult<Vec<Message>>>()?;
    messages.truncate(range.limit);
    let next_after = if more {
        messages.last().map(|m| m.seq).or(Some(range.after))
    } else {
        None
    };
    Ok((messages, next_after))
}

#[async_trait]
impl ClientConversations for DynamoStore {
    async fn client_conversations(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        limit: usize,
    ) -> StoreResult<Vec<Conversation>> {
        let request = self
            .index_query(GSI2, GSI2PK, client_list_pk(practice_id, client_id))
            .scan_index_forward(false);
        self.query(request, Some(limit), |item| {
            from_item::<Conversation>(item)
                .map(Some)
                .map_err(decoding_failed)
        })
        .await
    }

    async fn client_messages(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Option<MessagePage>> {
        let read = self.read_collection(practice_id, id, range).await?;
        // Whose it is: the conversation item when the page reached it, else every message's own mark.
        let theirs = |item: &Item| {
            string_attribute(item, OWNER) == Some(client_id)
                && string_attribute(item, "channel")
                    .and_then(|c| serde_json::from_value::<Channel>(c.into()).ok())
                    .is_some_and(in_client_view)
        };
        let known = match &read.conversation {
            Some(head) => theirs(head) && read.messages.iter().all(theirs),
            None => !read.messages.is_empty() && read.messages.iter().all(theirs),
        };
        if !known {
            return Ok(None);
        }
        let (messages, next_after) = page_of(read.messages, read.more, range)?;
        Ok(Some(MessagePage {
            messages,
            next_after,
        }))
    }
}

#[async_trait]
impl ConversationStore for DynamoStore {
    async fn get_conversation(
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

    async fn end_conversation(
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
                delete(
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
        let ended = Conversation {
            status: ConversationStatus::Resolved,
            resolved_at: Some(at),
            ..conversation.clone()
        };
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
        let after = cursor
            .map(|raw| decode_list_cursor(raw, practice_id))
            .transpose()?
            .map(|at| activity_sk(at.last_message_at, &at.id));
        let limit = limit.max(1);
        let statuses = filter.statuses();
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
        let conversations = found
            .into_iter()
            .map(|item| from_item::<Conversation>(item).map_err(decoding_failed))
            .collect::<StoreResult<Vec<_>>>()?;
        let next_cursor = match conversations.last() {
            Some(last) if more => Some(encode_list_cursor(practice_id, last)),
            _ => None,
        };
        Ok(ConversationPage {
            conversations,
            next_cursor,
        })
    }
}

#[async_trait]
impl TransferStore for DynamoStore {
    async fn transfer_context(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        to: &DepartmentId,
    ) -> StoreResult<TransferContext> {
        let items = self
            .batch_get([
                conversation_key(practice_id, id),
                department_key(practice_id.as_str(), to.as_str()),
            ])
            .await?;
        let (heads, settings): (Vec<Item>, Vec<Item>) = items
            .into_iter()
            .partition(|item| sort_key(item) == Some(CONVERSATION_SK));
        let (_, departments) = read_collection(settings)?;
        let mut context = TransferContext {
            conversation: None,
            target: departments.into_iter().find(|d| &d.id == to),
            preview: None,
            last_transfer_at: None,
        };
        if let Some(head) = heads.into_iter().next() {
            context.preview = string_attribute(&head, PREVIEW).map(str::to_owned);
            context.last_transfer_at = transfers_in(&head)?.iter().map(|t| t.at).max();
            context.conversation = Some(from_item(head).map_err(decoding_failed)?);
        }
        Ok(context)
    }

    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        notice: &Message,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        let practice_id = &conversation.practice_id;
        let moved_to = OpenConversation {
            department_id: transfer.to.clone(),
            department_name: notice.department_name.clone(),
            ..OpenConversation::of(conversation)
        };
        // Items in this order; the cancellation reasons come back in it. A "transfer" into the department it
        // is in changes no count: one `ADD 0` (two updates of one item cannot share a transaction).
        let same = transfer.from == transfer.to;
        let notice_at = 1;
        let from_at = (!same).then_some(2);
        let to_at = if same { 2 } else { 3 };
        let claim_at = to_at + 1;

        let build = || {
            let moved = Update::builder()
                .table_name(&self.table)
                .set_key(Some(conversation_key(practice_id, &conversation.id)))
                .update_expression(
                    "SET #department = :to, #name = :name, #seq = :seq, \
                     #transfers = list_append(if_not_exists(#transfers, :none), :transfer)",
                )
                .condition_expression(
                    "attribute_exists(PK) AND #status = :open AND #department = :from AND #seq = :read",
                )
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#department", "department_id")
                .expression_attribute_names("#name", "department_name")
                .expression_attribute_names("#seq", "last_seq")
                .expression_attribute_names("#transfers", TRANSFERS)
                .expression_attribute_values(":open", s(status_str(ConversationStatus::Open)))
                .expression_attribute_values(":from", s(transfer.from.as_str()))
                .expression_attribute_values(":to", s(transfer.to.as_str()))
                .expression_attribute_values(":name", s(notice.department_name.as_str()))
                .expression_attribute_values(":read", n(conversation.last_seq))
                .expression_attribute_values(":seq", n(notice.seq))
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(
                    ":transfer",
                    AttributeValue::L(vec![to_attribute_value(transfer).map_err(encoding_failed)?]),
                )
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            let mut items = vec![
                TransactWriteItem::builder().update(moved).build(),
                message_put(&self.table, practice_id, &Owner::of(conversation), notice)?,
            ];
            if same {
                items.push(count_open(&self.table, practice_id, &transfer.to, 0)?);
            } else {
                items.push(count_open(&self.table, practice_id, &transfer.from, -1)?);
                items.push(count_open(&self.table, practice_id, &transfer.to, 1)?);
            }
            items.push(claim_update(
                &self.table,
                practice_id,
                &moved_to,
                notice.seq,
                None,
            )?);
            items.push(put_item(&self.table, alert_item(alert)?)?);
            Ok(items)
        };
        // The same order of rules as the embedded store: the conversation still open where the caller saw
        // it, then the target department.
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(old) = failed(reasons, 0) {
                let holds = old.filter(|item| !item.is_empty()).is_some_and(|item| {
                    string_attribute(item, "status") == Some(status_str(ConversationStatus::Open))
                        && string_attribute(item, "department_id") == Some(transfer.from.as_str())
                        && last_seq_in(item) == conversation.last_seq
                });
                if !holds {
                    return Verdict::Fail(StoreError::VersionMismatch);
                }
            }
            if failed(reasons, notice_at).is_some_and(exists_in) {
                return Verdict::Fail(StoreError::VersionMismatch);
            }
            if failed(reasons, to_at).is_some_and(|old| !exists_in(old)) {
                return Verdict::Fail(StoreError::NotFound);
            }
            if from_at
                .and_then(|i| failed(reasons, i))
                .is_some_and(|old| !exists_in(old))
            {
                // A department with open conversations cannot be deleted: the data is inconsistent.
                tracing::error!(conversation = %conversation.id, department = %transfer.from, "an open conversation's department is gone");
                return Verdict::Fail(StoreError::Unavailable(
                    "conversation's department record is missing".into(),
                ));
            }
            if let Some(old) = failed(reasons, claim_at) {
                let ours = old.and_then(|item| string_attribute(item, "conversation_id"))
                    == Some(conversation.id.as_str());
                if !ours {
                    tracing::error!(conversation = %conversation.id, "the client's claim is not this open conversation's");
                    return Verdict::Fail(StoreError::VersionMismatch);
                }
            }
            Verdict::Retry
        };
        self.transact(build, interpret).await?;
        let moved = Conversation {
            department_id: transfer.to.clone(),
            department_name: notice.department_name.clone(),
            last_seq: notice.seq,
            ..conversation.clone()
        };
        self.feed
            .publish(Change::transferred(&moved, &transfer.from, notice));
        Ok(moved)
    }
}

impl DynamoStore {
    /// One Query of a conversation's collection: the messages after `range.after` in `seq` order, then the
    /// conversation item, stopping at one more message than the page (or at 1 MB: then fewer, and `more`).
    async fn read_collection(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
        range: MessageRange,
    ) -> StoreResult<Collection> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND SK BETWEEN :from AND :conversation")
            .expression_attribute_values(":pk", s(conversation_pk(practice_id, id)))
            .expression_attribute_values(":from", s(message_sk(range.after.saturating_add(1))))
            .expression_attribute_values(":conversation", s(CONVERSATION_SK))
            .consistent_read(true);
        if let Ok(limit) = i32::try_from(range.limit.saturating_add(1)) {
            request = request.limit(limit);
        }
        let out = request
            .send()
            .await
            .map_err(|e| sdk_unavailable("Query", &e))?;
        let cut = out.last_evaluated_key.is_some_and(|k| !k.is_empty());
        let mut read = Collection {
            messages: Vec::new(),
            conversation: None,
            more: false,
        };
        for item in out.items.unwrap_or_default() {
            match sort_key(&item) {
                Some(CONVERSATION_SK) => read.conversation = Some(item),
                Some(sk) if sk.starts_with(MESSAGE_SK_PREFIX) => read.messages.push(item),
                _ => {}
            }
        }
        read.more = read.messages.len() > range.limit || (cut && read.conversation.is_none());
        Ok(read)
    }

    async fn get_item(&self, key: Item) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_unavailable("GetItem", &e))?;
        Ok(out.item)
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
