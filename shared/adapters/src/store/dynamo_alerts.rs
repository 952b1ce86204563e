//! The alert half of the DynamoDB store (layout in [`super::super`]): transferring a conversation (which
//! writes its alert in the same transaction, the outbox) and the dispatcher's side of the outbox.
//!
//! | method | requests |
//! |---|---|
//! | `transfer_conversation` | one `TransactWriteItems` (conversation, transfer record, −1/+1 on the departments, the client's claim, the alert) |
//! | `get_alert` | one `GetItem` (consistent) |
//! | `claim_delivery` | one conditional `UpdateItem` |
//! | `release_delivery` | one `UpdateItem` |
//! | `record_delivery` | one conditional `UpdateItem` |
//! | `complete_alert` | one `UpdateItem` |
//! | `pending_alert_ids` | one `Query` on `GSI1`'s pending-alerts partition (more only past 1 MB) |
//!
//! So dispatching one alert to N recipients costs 1 `GetItem` + 1 `BatchGetItem` (practice and department)
//! + 2N `UpdateItem` (claim, record) + 1 `UpdateItem` (complete).
//!
//! Delivery state lives on the alert item itself, in two map attributes keyed by the delivery's idempotency
//! key (`{alert_id}:{email|sms}:{address}`, so `:`, `@`, `+` and `.` occur): `outcomes` (key → the
//! `DeliveryOutcome`, written once) and `claims` (key → lease end, a fixed-width UTC instant that compares
//! as a string). Keys are only ever passed as expression attribute names (`#k`), never spliced into an
//! expression, so no key can change what an expression means.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use chrono::{DateTime, Utc};
use domain::alert::{AlertRecord, AlertStatus, DeliveryOutcome, PendingAlert};
use domain::conversation::{AlertId, Conversation, ConversationStatus, Transfer};
use domain::store::{StoreError, StoreResult};
use serde_dynamo::aws_sdk_dynamodb_1::{
    from_attribute_value, from_item, to_attribute_value, to_item,
};

use super::conversations::{
    alert_item, claim_key, conversation_key, conversation_pk, count_open, put_item, sortable,
    status_str, GSI1, GSI1PK, GSI1SK, TRANSFER_SK_PREFIX,
};
use super::{
    build_failed, decoding_failed, encoding_failed, exists_in, failed, is_conflict, key, s,
    sdk_unavailable, string_attribute, Backoff, DynamoStore, Item, Verdict, KEPT_CONFLICTING,
};

// ---------------------------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------------------------

/// The `GSI1` partition that lists the alerts still pending. It is sparse: an alert enters it when it is
/// written and leaves it when it is completed, so it only ever holds the alerts in flight (normally a
/// handful, each for seconds). One partition key for every practice is a deliberate hot key: fine for that
/// volume (the dispatcher is driven by the table's stream, this index only serves the local worker and
/// sweeps); shard it (`ALERTS#pending#{n}`) if alerts in flight ever number in the thousands per second.
pub(super) const PENDING_ALERTS_PK: &str = "ALERTS#pending";

const ALERT_SK: &str = "ALERT";
const OUTCOMES: &str = "outcomes";
const CLAIMS: &str = "claims";
const STATUS: &str = "status";

pub(super) fn alert_key(id: &AlertId) -> Item {
    key(format!("ALERT#{id}"), ALERT_SK)
}

/// The pending-alerts sort key: oldest first, the id breaking ties.
pub(super) fn pending_sk(created_at: DateTime<Utc>, id: &AlertId) -> String {
    format!("{}#{id}", sortable(created_at))
}

/// A transfer's sort key in its conversation's collection: in time order, made unique by the alert the
/// transfer wrote (one alert per transfer).
fn transfer_sk(transfer: &Transfer, alert_id: &AlertId) -> String {
    format!("{TRANSFER_SK_PREFIX}{}#{alert_id}", sortable(transfer.at))
}

fn transfer_item(
    conversation: &Conversation,
    transfer: &Transfer,
    alert_id: &AlertId,
) -> StoreResult<Item> {
    let mut item = to_item(transfer).map_err(encoding_failed)?;
    item.extend(key(
        conversation_pk(&conversation.practice_id, &conversation.id),
        &transfer_sk(transfer, alert_id),
    ));
    Ok(item)
}

/// The member `key` of the map attribute `map`, from an item's old image.
fn map_member<'a>(item: &'a Item, map: &str, key: &str) -> Option<&'a AttributeValue> {
    item.get(map)
        .and_then(|m| m.as_m().ok())
        .and_then(|m| m.get(key))
}

/// An item as decoded: the alert, its status and its outcomes (the claims are the store's business).
fn alert_record(mut item: Item) -> StoreResult<AlertRecord> {
    let status = match item.remove(STATUS) {
        Some(value) => from_attribute_value::<AlertStatus>(value).map_err(decoding_failed)?,
        None => AlertStatus::Pending,
    };
    let outcomes = match item.remove(OUTCOMES) {
        Some(value) => from_attribute_value::<BTreeMap<String, DeliveryOutcome>>(value)
            .map_err(decoding_failed)?,
        None => BTreeMap::new(),
    };
    item.remove(CLAIMS);
    let alert = from_item::<PendingAlert>(item).map_err(decoding_failed)?;
    Ok(AlertRecord {
        alert,
        status,
        outcomes,
    })
}

/// What a failed condition on an alert update means, from the old image: `Err(NotFound)` when the alert is
/// not there, `Ok(true)` when the rule really failed, `Ok(false)` when the old image satisfies the condition
/// (a conflict reported as a failed check: try again).
fn alert_condition_failed(
    old: Option<&Item>,
    rule_failed: impl FnOnce(&Item) -> bool,
) -> StoreResult<bool> {
    match old.filter(|item| !item.is_empty()) {
        None => Err(StoreError::NotFound),
        Some(item) => Ok(rule_failed(item)),
    }
}

/// One update of an alert item: the expression, its condition, and the names and values they use.
struct AlertUpdate<'a> {
    id: &'a AlertId,
    expression: &'static str,
    condition: &'static str,
    names: Vec<(&'static str, &'a str)>,
    values: Vec<(&'static str, AttributeValue)>,
}

/// What a sent alert update came to.
enum Updated {
    Done,
    /// The condition failed; the old image (`None` when the item is missing).
    ConditionFailed(Option<Item>),
}

// ---------------------------------------------------------------------------------------------------------
// The port's alert methods
// ---------------------------------------------------------------------------------------------------------

impl DynamoStore {
    pub(super) async fn alerts_transfer(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        let practice_id = &conversation.practice_id;
        // Items in this order; the cancellation reasons come back in it. A "transfer" into the department it
        // is in changes no count: one `ADD 0` (two updates of one item cannot share a transaction).
        let same = transfer.from == transfer.to;
        let from_at = (!same).then_some(2);
        let to_at = if same { 2 } else { 3 };
        let claim_at = to_at + 1;

        let build = || {
            let moved = Update::builder()
                .table_name(&self.table)
                .set_key(Some(conversation_key(practice_id, &conversation.id)))
                .update_expression("SET #department = :to")
                .condition_expression(
                    "attribute_exists(PK) AND #status = :open AND #department = :from",
                )
                .expression_attribute_names("#status", STATUS)
                .expression_attribute_names("#department", "department_id")
                .expression_attribute_values(":open", s(status_str(ConversationStatus::Open)))
                .expression_attribute_values(":from", s(transfer.from.as_str()))
                .expression_attribute_values(":to", s(transfer.to.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            let claim = Update::builder()
                .table_name(&self.table)
                .set_key(Some(claim_key(practice_id, &conversation.client_id)))
                .update_expression("SET #department = :to")
                .condition_expression("conversation_id = :conversation")
                .expression_attribute_names("#department", "department_id")
                .expression_attribute_values(":to", s(transfer.to.as_str()))
                .expression_attribute_values(":conversation", s(conversation.id.as_str()))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            let mut items = vec![
                TransactWriteItem::builder().update(moved).build(),
                put_item(
                    &self.table,
                    transfer_item(conversation, transfer, &alert.id)?,
                )?,
            ];
            if same {
                items.push(count_open(&self.table, practice_id, &transfer.to, 0)?);
            } else {
                items.push(count_open(&self.table, practice_id, &transfer.from, -1)?);
                items.push(count_open(&self.table, practice_id, &transfer.to, 1)?);
            }
            items.push(TransactWriteItem::builder().update(claim).build());
            items.push(put_item(&self.table, alert_item(alert)?)?);
            Ok(items)
        };
        // The same order of rules as the embedded store: the conversation still open where the caller saw
        // it, then the target department.
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(old) = failed(reasons, 0) {
                let holds = old.filter(|item| !item.is_empty()).is_some_and(|item| {
                    string_attribute(item, STATUS) == Some(status_str(ConversationStatus::Open))
                        && string_attribute(item, "department_id") == Some(transfer.from.as_str())
                });
                if !holds {
                    return Verdict::Fail(StoreError::VersionMismatch);
                }
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
        Ok(Conversation {
            department_id: transfer.to.clone(),
            ..conversation.clone()
        })
    }

    pub(super) async fn alerts_get(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(alert_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_unavailable("GetItem", &e))?;
        out.item
            .filter(|item| !item.is_empty())
            .map(alert_record)
            .transpose()
    }

    pub(super) async fn alerts_claim(
        &self,
        id: &AlertId,
        delivery_key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let now_s = sortable(now);
        let update = || AlertUpdate {
            id,
            expression: "SET #claims.#k = :until",
            // A lease that ends at `now` has ended (as in the embedded store).
            condition: "attribute_exists(PK) AND attribute_not_exists(#outcomes.#k) \
                        AND (attribute_not_exists(#claims.#k) OR #claims.#k <= :now)",
            names: vec![
                ("#claims", CLAIMS),
                ("#outcomes", OUTCOMES),
                ("#k", delivery_key),
            ],
            values: vec![
                (":until", s(sortable(lease_until))),
                (":now", s(now_s.clone())),
            ],
        };
        let mut backoff = Backoff::new(KEPT_CONFLICTING);
        loop {
            let Updated::ConditionFailed(old) = self.update_alert(update()).await? else {
                return Ok(true);
            };
            let taken = alert_condition_failed(old.as_ref(), |item| {
                map_member(item, OUTCOMES, delivery_key).is_some()
                    || map_member(item, CLAIMS, delivery_key)
                        .and_then(|v| v.as_s().ok())
                        .is_some_and(|until| until.as_str() > now_s.as_str())
            })?;
            if taken {
                return Ok(false);
            }
            backoff.wait().await?;
        }
    }

    pub(super) async fn alerts_release(&self, id: &AlertId, delivery_key: &str) -> StoreResult<()> {
        let update = AlertUpdate {
            id,
            expression: "REMOVE #claims.#k",
            condition: "attribute_exists(PK)",
            names: vec![("#claims", CLAIMS), ("#k", delivery_key)],
            values: vec![],
        };
        match self.update_alert(update).await? {
            Updated::Done => Ok(()),
            Updated::ConditionFailed(_) => Err(StoreError::NotFound),
        }
    }

    pub(super) async fn alerts_record(
        &self,
        id: &AlertId,
        delivery_key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        let value = to_attribute_value(outcome).map_err(encoding_failed)?;
        let update = || AlertUpdate {
            id,
            expression: "SET #outcomes.#k = :outcome REMOVE #claims.#k",
            // The first outcome recorded stays.
            condition: "attribute_exists(PK) AND attribute_not_exists(#outcomes.#k)",
            names: vec![
                ("#claims", CLAIMS),
                ("#outcomes", OUTCOMES),
                ("#k", delivery_key),
            ],
            values: vec![(":outcome", value.clone())],
        };
        let mut backoff = Backoff::new(KEPT_CONFLICTING);
        loop {
            let Updated::ConditionFailed(old) = self.update_alert(update()).await? else {
                return Ok(());
            };
            let recorded = alert_condition_failed(old.as_ref(), |item| {
                map_member(item, OUTCOMES, delivery_key).is_some()
            })?;
            if recorded {
                // Recorded before (a second dispatcher after a lease ran out): the first outcome stays.
                return Ok(());
            }
            backoff.wait().await?;
        }
    }

    pub(super) async fn alerts_complete(&self, id: &AlertId) -> StoreResult<()> {
        let update = AlertUpdate {
            id,
            // Out of the pending-alerts index, too.
            expression: "SET #status = :done REMOVE #gsi1pk, #gsi1sk",
            condition: "attribute_exists(PK)",
            names: vec![
                ("#status", STATUS),
                ("#gsi1pk", GSI1PK),
                ("#gsi1sk", GSI1SK),
            ],
            values: vec![(
                ":done",
                to_attribute_value(AlertStatus::Done).map_err(encoding_failed)?,
            )],
        };
        match self.update_alert(update).await? {
            Updated::Done => Ok(()),
            Updated::ConditionFailed(_) => Err(StoreError::NotFound),
        }
    }

    pub(super) async fn alerts_pending(&self, limit: usize) -> StoreResult<Vec<AlertId>> {
        // The index is eventually consistent: an alert just completed may still be listed for a moment (the
        // dispatcher reads the alert itself, consistently, before doing anything), and one just written may
        // show up on the next call.
        let mut ids = Vec::new();
        let mut start_key = None;
        while ids.len() < limit {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", GSI1PK)
                .expression_attribute_names("#id", "id")
                .expression_attribute_values(":pk", s(PENDING_ALERTS_PK))
                .projection_expression("#id")
                .scan_index_forward(true)
                .limit(i32::try_from(limit - ids.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_unavailable("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                match string_attribute(&item, "id") {
                    Some(id) => ids.push(AlertId(id.to_owned())),
                    None => {
                        tracing::error!("a pending-alert index entry without an id");
                        return Err(StoreError::Unavailable(
                            "a stored record could not be read".into(),
                        ));
                    }
                }
            }
            start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start_key.is_none() {
                break;
            }
        }
        ids.truncate(limit);
        Ok(ids)
    }

    /// Sends one conditional `UpdateItem` on an alert item, retrying while DynamoDB reports a concurrent
    /// transaction on it; a failed condition comes back with the old image for the caller to judge.
    async fn update_alert(&self, update: AlertUpdate<'_>) -> StoreResult<Updated> {
        let mut backoff = Backoff::new(KEPT_CONFLICTING);
        loop {
            let mut request = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(alert_key(update.id)))
                .update_expression(update.expression)
                .condition_expression(update.condition)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            for (name, attribute) in &update.names {
                request = request.expression_attribute_names(*name, *attribute);
            }
            for (name, value) in &update.values {
                request = request.expression_attribute_values(*name, value.clone());
            }
            match request.send().await {
                Ok(_) => return Ok(Updated::Done),
                Err(e) if is_conflict(&e) => backoff.wait().await?,
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        return Ok(Updated::ConditionFailed(c.item().cloned()))
                    }
                    _ => return Err(sdk_unavailable("UpdateItem", &e)),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn pending_and_transfer_keys_sort_as_instants() {
        let at = DateTime::parse_from_rfc3339("2026-11-21T17:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = AlertId("alr_1".into());
        assert_eq!(pending_sk(at, &id), "2026-11-21T17:30:00.000000000Z#alr_1");
        let later = pending_sk(
            at + chrono::Duration::nanoseconds(1),
            &AlertId("alr_0".into()),
        );
        assert!(pending_sk(at, &id) < later);
    }

    #[test]
    fn a_failed_alert_condition_reads_the_old_image() {
        assert_eq!(
            alert_condition_failed(None, |_| true),
            Err(StoreError::NotFound)
        );
        assert_eq!(
            alert_condition_failed(Some(&HashMap::new()), |_| true),
            Err(StoreError::NotFound)
        );
        let key = "alr_1:email:a+b@x.example";
        let item = HashMap::from([
            ("PK".to_owned(), s("ALERT#alr_1")),
            (
                OUTCOMES.to_owned(),
                AttributeValue::M(HashMap::from([(key.to_owned(), s("x"))])),
            ),
        ]);
        assert!(map_member(&item, OUTCOMES, key).is_some());
        assert!(map_member(&item, CLAIMS, key).is_none());
        assert_eq!(
            alert_condition_failed(Some(&item), |i| map_member(i, OUTCOMES, key).is_some()),
            Ok(true)
        );
    }
}
