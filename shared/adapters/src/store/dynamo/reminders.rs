//! The end-of-day reminder on DynamoDB: the sparse `DUE` index of departments by their next reminder
//! instant, its conditional advance, and the open conversations of a due department.
//!
//! | method | requests |
//! |---|---|
//! | `due_reminders` | one `Query` on `DUE` per partition (`DUE_PK = :shard AND DUE_AT <= :until`, for the run's shards of `DUE#00`…`DUE#31`, and the legacy `DUE` if the range starts at shard 0, 8 in flight; more pages only past 1 MB or `limit`), merged earliest first |
//! | `open_conversations_in` | one `Query` on `GSI1`'s open partition of the practice, filtered by department |
//! | `advance_reminder` | one conditional `UpdateItem`, or one `TransactWriteItems` with the reminder's outbox record |

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use domain::alert::PendingAlert;
use domain::conversation::{Conversation, ConversationStatus};
use domain::identity::{DepartmentId, PracticeId};
use domain::reminder::{DueReminder, DueShards};
use domain::store::{ReminderClaim, ReminderStore, StoreError, StoreResult};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde_dynamo::aws_sdk_dynamodb_1::from_item;

use super::alerts::alert_item;
use super::codec::{build_failed, decoding_failed, put, s, string_attribute, ABSENT};
use super::keys::{
    department_key, due_partition, due_partitions, list_pk, parse_sortable, sortable, DUE_INDEX,
    DUE_QUERY_CONCURRENCY, GSI1, GSI1PK,
};
use super::{exists_in, failed, DynamoStore, Single, Verdict};

/// The department update that moves (or removes) its due entry if it is still at `from`. Moving it also
/// writes its shard, so a legacy entry (`DUE_PK = DUE`) leaves the legacy partition on its first advance.
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
            values.insert(
                ":due_pk".into(),
                s(due_partition(practice_id, department_id)),
            );
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
    /// The due entries of one partition of the due index, earliest first, at most `limit`.
    async fn due_in(
        &self,
        partition: String,
        until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(DUE_INDEX)
            .key_condition_expression("DUE_PK = :p AND DUE_AT <= :until")
            .expression_attribute_values(":p", s(partition))
            .expression_attribute_values(":until", s(sortable(until)))
            .projection_expression("practice_id, id, DUE_AT");
        self.query(request, Some(limit), |item| {
            let (Some(p), Some(d), Some(at)) = (
                string_attribute(&item, "practice_id"),
                string_attribute(&item, "id"),
                string_attribute(&item, "DUE_AT").and_then(parse_sortable),
            ) else {
                return Ok(None);
            };
            Ok(Some(DueReminder {
                practice_id: PracticeId(p.to_owned()),
                department_id: DepartmentId(d.to_owned()),
                due_at: at,
            }))
        })
        .await
    }
}

#[async_trait]
impl ReminderStore for DynamoStore {
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        shards: DueShards,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>> {
        let shards: Vec<Vec<DueReminder>> = stream::iter(due_partitions(shards))
            .map(|partition| self.due_in(partition, until, limit))
            .buffer_unordered(DUE_QUERY_CONCURRENCY)
            .try_collect()
            .await?;
        let mut due: Vec<DueReminder> = shards.into_iter().flatten().collect();
        // Each shard answered its earliest `limit`, so the earliest `limit` of all are among them; ties in
        // the order the embedded store keeps (instant, department, practice).
        due.sort_by(|a, b| {
            (a.due_at, &a.department_id.0, &a.practice_id.0).cmp(&(
                b.due_at,
                &b.department_id.0,
                &b.practice_id.0,
            ))
        });
        due.truncate(limit);
        Ok(due)
    }

    async fn open_conversations_in(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<Conversation>> {
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .filter_expression("department_id = :d")
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_values(":pk", s(list_pk(practice_id, ConversationStatus::Open)))
            .expression_attribute_values(":d", s(department_id.as_str()));
        self.query(request, None, |item| {
            from_item::<Conversation>(item)
                .map(Some)
                .map_err(decoding_failed)
        })
        .await
    }

    async fn advance_reminder(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
        alert: Option<&PendingAlert>,
    ) -> StoreResult<ReminderClaim> {
        let Some(alert) = alert else {
            let update = advance_update(&self.table, practice_id, department_id, from, to)?;
            // The due entry moved: another run claimed it (or the department is gone).
            return self
                .write(Single::Update(update), ReminderClaim::Claimed, |_| {
                    Verdict::Answer(ReminderClaim::Lost)
                })
                .await;
        };
        let result = self
            .transact(
                || {
                    let update = advance_update(&self.table, practice_id, department_id, from, to)?;
                    Ok(vec![
                        TransactWriteItem::builder().update(update).build(),
                        put(&self.table, alert_item(alert)?, ABSENT, vec![])?,
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
