//! The end-of-day reminder half of the DynamoDB store: the sparse `DUE` index of departments by their next
//! reminder instant, and its conditional advance.
//!
//! | method | requests |
//! |---|---|
//! | `due_reminders` | one `Query` on `DUE` (`DUE_PK = DUE AND DUE_AT <= :until`; more pages only past 1 MB or `limit`) |
//! | `open_conversations_in` | one `Query` on `GSI1`'s open partition of the practice, filtered by department |
//! | `advance_reminder` | one conditional `UpdateItem`, or one `TransactWriteItems` with the reminder's outbox record |

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::conversation::{Conversation, ConversationStatus};
use domain::identity::{DepartmentId, PracticeId};
use domain::reminder::DueReminder;
use domain::store::{ReminderClaim, StoreError, StoreResult};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use super::conversations::{alert_item, list_pk, sortable, GSI1, GSI1PK};
use super::{
    build_failed, decoding_failed, department_key, exists_in, failed, s, sdk_unavailable,
    string_attribute, DynamoStore, Item, Verdict, DUE_PARTITION,
};

const DUE_INDEX: &str = "DUE";

fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The department update that moves (or removes) its due entry if it is still at `from`.
fn advance_update(
    table: &str,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
) -> StoreResult<Update> {
    let mut values = HashMap::from([(":from".to_owned(), s(sortable(from)))]);
    let expression = match to {
        Some(at) => {
            values.insert(":due_pk".into(), s(DUE_PARTITION));
            values.insert(":to".into(), s(sortable(at)));
            "SET DUE_PK = :due_pk, DUE_AT = :to"
        }
        None => "REMOVE DUE_PK, DUE_AT",
    };
    Update::builder()
        .table_name(table)
        .set_key(Some(department_key(
            practice_id.as_str(),
            department_id.as_str(),
        )))
        .update_expression(expression)
        .condition_expression("DUE_AT = :from")
        .set_expression_attribute_values(Some(values))
        .build()
        .map_err(build_failed)
}

impl DynamoStore {
    pub(super) async fn reminders_due(
        &self,
        until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(DUE_INDEX)
                .key_condition_expression("DUE_PK = :p AND DUE_AT <= :until")
                .expression_attribute_values(":p", s(DUE_PARTITION))
                .expression_attribute_values(":until", s(sortable(until)))
                .projection_expression("practice_id, id, DUE_AT")
                .limit(i32::try_from(limit.saturating_sub(out.len()).max(1)).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_unavailable("Query", &e))?;
            for item in page.items() {
                let (Some(p), Some(d), Some(at)) = (
                    string_attribute(item, "practice_id"),
                    string_attribute(item, "id"),
                    string_attribute(item, "DUE_AT").and_then(parse_instant),
                ) else {
                    continue;
                };
                out.push(DueReminder {
                    practice_id: PracticeId(p.to_owned()),
                    department_id: DepartmentId(d.to_owned()),
                    due_at: at,
                });
            }
            match page.last_evaluated_key() {
                Some(key) if out.len() < limit => start = Some(key.clone()),
                _ => break,
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    pub(super) async fn reminders_open_conversations(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<Conversation>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("#pk = :pk")
                .filter_expression("department_id = :d")
                .expression_attribute_names("#pk", GSI1PK)
                .expression_attribute_values(
                    ":pk",
                    s(list_pk(practice_id, ConversationStatus::Open)),
                )
                .expression_attribute_values(":d", AttributeValue::S(department_id.to_string()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| sdk_unavailable("Query", &e))?;
            for item in page.items() {
                out.push(from_item::<Conversation>(item.clone()).map_err(decoding_failed)?);
            }
            match page.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        Ok(out)
    }

    pub(super) async fn reminders_advance(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        alert: Option<&PendingAlert>,
    ) -> StoreResult<ReminderClaim> {
        let Some(alert) = alert else {
            let update = advance_update(&self.table, practice_id, department_id, from, to)?;
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(update.key().clone()))
                .update_expression(update.update_expression())
                .set_condition_expression(update.condition_expression().map(str::to_owned))
                .set_expression_attribute_values(update.expression_attribute_values().cloned())
                .send()
                .await;
            return match result {
                Ok(_) => Ok(ReminderClaim::Claimed),
                Err(e)
                    if matches!(
                        e.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    Ok(ReminderClaim::Lost)
                }
                Err(e) => Err(sdk_unavailable("UpdateItem", &e)),
            };
        };
        let result = self
            .transact(
                || {
                    let update = advance_update(&self.table, practice_id, department_id, from, to)?;
                    let put = aws_sdk_dynamodb::types::Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(alert_item(alert)?))
                        .condition_expression("attribute_not_exists(PK)")
                        .return_values_on_condition_check_failure(
                            aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(build_failed)?;
                    Ok(vec![
                        TransactWriteItem::builder().update(update).build(),
                        TransactWriteItem::builder().put(put).build(),
                    ])
                },
                |reasons| {
                    // The due entry moved: another run claimed it. Otherwise the date's reminder exists.
                    if failed(reasons, 0).is_some() {
                        Verdict::Fail(StoreError::VersionMismatch)
                    } else if failed(reasons, 1).is_some_and(exists_in) {
                        Verdict::Fail(StoreError::AlreadyExists)
                    } else {
                        Verdict::Retry
                    }
                },
            )
            .await;
        match result {
            Ok(()) => Ok(ReminderClaim::Claimed),
            Err(StoreError::VersionMismatch) => Ok(ReminderClaim::Lost),
            Err(StoreError::AlreadyExists) => Ok(ReminderClaim::AlreadySent),
            Err(e) => Err(e),
        }
    }
}
