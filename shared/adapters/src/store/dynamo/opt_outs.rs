//! Opt-outs on DynamoDB: one item per practice and number (`OPTOUT#{practice_id}#{number}`, `OPTOUT`),
//! holding `opted_out_at`. An `sms` conversation keeps a copy (`sms_opted_out_at`) on its item, which is
//! what a staff reply reads; every write of the record that has an open conversation to tell writes the
//! copy in the same transaction.
//!
//! | method | requests |
//! |---|---|
//! | read with `routing_context` | one key more in its `BatchGetItem` |
//! | `record_opt_keyword` with an open conversation | one `TransactWriteItems`: the append's items (conversation with its copy set or removed, claim, message, dedup record) and the record put or deleted if still as read |
//! | `record_opt_keyword` without one | one `TransactWriteItems`: the record put or deleted if still as read, the claim still absent, the dedup record |
//! | `start_conversation` of an `sms` conversation | its transaction carries a `ConditionCheck`: the record still as read |
//! | `record_refused_opt_out` | two `UpdateItem`s: the record (`if_not_exists`, its instant back), then the conversation's copy |

use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use chrono::{DateTime, Utc};
use domain::conversation::ConversationId;
use domain::identity::PracticeId;
use domain::store::{OptKeywordWrite, StoreError, StoreResult, TextRef};
use serde_dynamo::aws_sdk_dynamodb_1::{from_attribute_value, to_attribute_value};

use super::codec::{build_failed, decoding_failed, delete, encoding_failed, put, s, Item, ABSENT};
use super::keys::{claim_key, conversation_key, opt_out_key};
use super::{exists_in, failed, sdk_unavailable, DynamoStore, Verdict};

const OPTED_OUT_AT: &str = "opted_out_at";

/// The instant an opt-out record holds.
pub(super) fn opted_out_at_in(item: &Item) -> StoreResult<Option<DateTime<Utc>>> {
    item.get(OPTED_OUT_AT)
        .map(|v| from_attribute_value(v.clone()).map_err(decoding_failed))
        .transpose()
}

fn instant(at: DateTime<Utc>) -> StoreResult<AttributeValue> {
    to_attribute_value(at).map_err(encoding_failed)
}

/// The condition "the record is still as read" and its values.
fn as_read(
    read: Option<DateTime<Utc>>,
) -> StoreResult<(&'static str, Vec<(&'static str, AttributeValue)>)> {
    Ok(match read {
        None => (ABSENT, vec![]),
        Some(at) => ("opted_out_at = :read", vec![(":read", instant(at)?)]),
    })
}

/// The record put (opted out since `opted_out_at`) or deleted (`None`), if still as read.
pub(super) fn opt_out_write(
    table: &str,
    practice_id: &PracticeId,
    number: &str,
    opted_out_at: Option<DateTime<Utc>>,
    read: Option<DateTime<Utc>>,
) -> StoreResult<TransactWriteItem> {
    let (condition, values) = as_read(read)?;
    let key = opt_out_key(practice_id, number);
    match opted_out_at {
        Some(at) => {
            let mut item = key;
            item.insert("practice_id".into(), s(practice_id.as_str()));
            item.insert("number".into(), s(number));
            item.insert(OPTED_OUT_AT.into(), instant(at)?);
            put(table, item, condition, values)
        }
        None => delete(table, key, condition, vec![], values),
    }
}

/// The record still as read (a new `sms` conversation copies it).
pub(super) fn opt_out_check(
    table: &str,
    practice_id: &PracticeId,
    number: &str,
    read: Option<DateTime<Utc>>,
) -> StoreResult<TransactWriteItem> {
    let (condition, values) = as_read(read)?;
    let mut check = ConditionCheck::builder()
        .table_name(table)
        .set_key(Some(opt_out_key(practice_id, number)))
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (name, value) in values {
        check = check.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .condition_check(check.build().map_err(build_failed)?)
        .build())
}

/// The conversation item's copy as an append sets it: `Some` sets `sms_opted_out_at`, `None` removes it.
pub(super) struct CopyOnConversation {
    pub opted_out_at: Option<DateTime<Utc>>,
}

impl CopyOnConversation {
    pub const ATTRIBUTE: &'static str = "sms_opted_out_at";

    pub fn value(&self) -> StoreResult<Option<AttributeValue>> {
        self.opted_out_at.map(instant).transpose()
    }
}

impl DynamoStore {
    /// `record_opt_keyword` ([`domain::store::ConversationIntake::record_opt_keyword`]).
    pub(super) async fn write_opt_keyword(&self, write: &OptKeywordWrite) -> StoreResult<()> {
        let record = || {
            opt_out_write(
                &self.table,
                &write.practice_id,
                &write.number,
                write.opted_out_at,
                write.read,
            )
        };
        if let Some((open, message)) = &write.joins {
            // The keyword is appended as any message is, the record and the conversation's copy with it.
            let copy = (open.channel == domain::conversation::Channel::Sms).then_some(
                CopyOnConversation {
                    opted_out_at: write.opted_out_at,
                },
            );
            return self
                .append_with(
                    &write.practice_id,
                    open,
                    std::slice::from_ref(message),
                    write.dedup_key.as_deref(),
                    None,
                    Some((record()?, copy)),
                )
                .await;
        }
        // No conversation: the record, the claim still absent, the redelivery's record (naming none).
        let build = || {
            let claim_absent = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(claim_key(&write.practice_id, &write.number)))
                .condition_expression(ABSENT)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            let mut items = vec![
                record()?,
                TransactWriteItem::builder()
                    .condition_check(claim_absent)
                    .build(),
            ];
            if let Some(dedup_key) = &write.dedup_key {
                items.push(put(
                    &self.table,
                    super::conversations::inbound_item(
                        &write.practice_id,
                        dedup_key,
                        &ConversationId(String::new()),
                        Some(write.received_at),
                    ),
                    ABSENT,
                    vec![],
                )?);
            }
            Ok(items)
        };
        let interpret = |reasons: &[CancellationReason]| {
            if failed(reasons, 1).is_some_and(exists_in) {
                Verdict::Fail(StoreError::ClientHasOpenConversation)
            } else if let Some(error) = super::conversations::duplicate_inbound(reasons, Some(2)) {
                Verdict::Fail(error)
            } else if failed(reasons, 0).is_some() {
                Verdict::Fail(StoreError::VersionMismatch)
            } else {
                Verdict::Retry
            }
        };
        self.transact(build, interpret).await
    }

    /// `record_refused_opt_out` ([`domain::store::TextOutbox::record_refused_opt_out`]): the record keeps
    /// its first instant; the conversation's copy is set to it.
    pub(super) async fn write_refused_opt_out(
        &self,
        text: &TextRef,
        number: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<DateTime<Utc>> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(opt_out_key(&text.practice_id, number)))
            .update_expression(
                "SET #at = if_not_exists(#at, :at), practice_id = :practice, #number = :number",
            )
            .expression_attribute_names("#at", OPTED_OUT_AT)
            .expression_attribute_names("#number", "number")
            .expression_attribute_values(":at", instant(at)?)
            .expression_attribute_values(":practice", s(text.practice_id.as_str()))
            .expression_attribute_values(":number", s(number))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| sdk_unavailable("UpdateItem", &e))?;
        let recorded = out
            .attributes
            .as_ref()
            .map(opted_out_at_in)
            .transpose()?
            .flatten()
            .unwrap_or(at);
        let copied = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(conversation_key(
                &text.practice_id,
                &text.conversation_id,
            )))
            .update_expression("SET #copy = :at")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#copy", CopyOnConversation::ATTRIBUTE)
            .expression_attribute_values(":at", instant(recorded)?)
            .send()
            .await;
        match copied {
            Ok(_) => Ok(recorded),
            // The conversation is gone: the record is what counts.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(recorded)
            }
            Err(e) => Err(sdk_unavailable("UpdateItem", &e)),
        }
    }
}
