//! The alert outbox on DynamoDB: an alert item written by the change that causes it (the table's stream
//! hands its insert to the dispatcher), and the dispatcher's reads and writes of it.
//!
//! | method | requests |
//! |---|---|
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

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};
use domain::alert::{AlertRecord, AlertStatus, DeliveryOutcome, PendingAlert};
use domain::conversation::AlertId;
use domain::store::{AlertOutbox, PendingAlerts, StoreError, StoreResult};
use serde_dynamo::aws_sdk_dynamodb_1::{
    from_attribute_value, from_item, to_attribute_value, to_item,
};

use super::codec::{build_failed, decoding_failed, encoding_failed, s, string_attribute, Item};
use super::keys::{alert_key, pending_sk, sortable, GSI1, GSI1PK, GSI1SK, PENDING_ALERTS_PK};
use super::{sdk_unavailable, DynamoStore, Single, Verdict};

const OUTCOMES: &str = "outcomes";
const CLAIMS: &str = "claims";
const STATUS: &str = "status";

/// A pending alert as written by the change that causes it (start, transfer, reminder): `status =
/// "pending"`, listed in the sparse pending-alerts partition of `GSI1` (oldest first), with empty delivery
/// maps so the dispatcher's `SET outcomes.#k` / `SET claims.#k` always find their parent map.
pub(super) fn alert_item(alert: &PendingAlert) -> StoreResult<Item> {
    let mut item = to_item(alert).map_err(encoding_failed)?;
    item.extend(alert_key(&alert.id));
    item.insert(STATUS.into(), s("pending"));
    item.insert(GSI1PK.into(), s(PENDING_ALERTS_PK));
    item.insert(GSI1SK.into(), s(pending_sk(alert.created_at, &alert.id)));
    item.insert(OUTCOMES.into(), AttributeValue::M(HashMap::new()));
    item.insert(CLAIMS.into(), AttributeValue::M(HashMap::new()));
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

/// What a failed condition on an alert update means, from the old image: `NotFound` when the alert is not
/// there, `answer` when `rule_failed` (the rule really failed), a retry when the old image satisfies the
/// condition (a conflict reported as a failed check).
fn alert_verdict<T>(
    old: Option<&Item>,
    rule_failed: impl FnOnce(&Item) -> bool,
    answer: T,
) -> Verdict<T> {
    match old.filter(|item| !item.is_empty()) {
        None => Verdict::Fail(StoreError::NotFound),
        Some(item) if rule_failed(item) => Verdict::Answer(answer),
        Some(_) => Verdict::Retry,
    }
}

/// One conditional update of an alert item: the expression, its condition, and the names and values they
/// use (a failed condition returns the old image).
fn alert_update(
    table: &str,
    id: &AlertId,
    expression: &str,
    condition: &str,
    names: &[(&str, &str)],
    values: Vec<(&str, AttributeValue)>,
) -> StoreResult<Update> {
    let mut update = Update::builder()
        .table_name(table)
        .set_key(Some(alert_key(id)))
        .update_expression(expression)
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (name, attribute) in names {
        update = update.expression_attribute_names(*name, *attribute);
    }
    for (name, value) in values {
        update = update.expression_attribute_values(name, value);
    }
    update.build().map_err(build_failed)
}

#[async_trait]
impl AlertOutbox for DynamoStore {
    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
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

    async fn claim_delivery(
        &self,
        id: &AlertId,
        delivery_key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let now_s = sortable(now);
        let update = alert_update(
            &self.table,
            id,
            "SET #claims.#k = :until",
            // A lease that ends at `now` has ended (as in the embedded store).
            "attribute_exists(PK) AND attribute_not_exists(#outcomes.#k) \
             AND (attribute_not_exists(#claims.#k) OR #claims.#k <= :now)",
            &[
                ("#claims", CLAIMS),
                ("#outcomes", OUTCOMES),
                ("#k", delivery_key),
            ],
            vec![(":until", s(sortable(lease_until))), (":now", s(&now_s))],
        )?;
        // Taken: its outcome is recorded, or another dispatcher's lease has not ended.
        let taken = |item: &Item| {
            map_member(item, OUTCOMES, delivery_key).is_some()
                || map_member(item, CLAIMS, delivery_key)
                    .and_then(|v| v.as_s().ok())
                    .is_some_and(|until| until.as_str() > now_s.as_str())
        };
        self.write(Single::Update(update), true, |old| {
            alert_verdict(old, taken, false)
        })
        .await
    }

    async fn release_delivery(&self, id: &AlertId, delivery_key: &str) -> StoreResult<()> {
        let update = alert_update(
            &self.table,
            id,
            "REMOVE #claims.#k",
            "attribute_exists(PK)",
            &[("#claims", CLAIMS), ("#k", delivery_key)],
            vec![],
        )?;
        self.write(Single::Update(update), (), |_| {
            Verdict::Fail(StoreError::NotFound)
        })
        .await
    }

    async fn record_delivery(
        &self,
        id: &AlertId,
        delivery_key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        let update = alert_update(
            &self.table,
            id,
            "SET #outcomes.#k = :outcome REMOVE #claims.#k",
            // The first outcome recorded stays.
            "attribute_exists(PK) AND attribute_not_exists(#outcomes.#k)",
            &[
                ("#claims", CLAIMS),
                ("#outcomes", OUTCOMES),
                ("#k", delivery_key),
            ],
            vec![(
                ":outcome",
                to_attribute_value(outcome).map_err(encoding_failed)?,
            )],
        )?;
        // Recorded before (a second dispatcher after a lease ran out): the first outcome stays.
        let recorded = |item: &Item| map_member(item, OUTCOMES, delivery_key).is_some();
        self.write(Single::Update(update), (), |old| {
            alert_verdict(old, recorded, ())
        })
        .await
    }

    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()> {
        let update = alert_update(
            &self.table,
            id,
            // Out of the pending-alerts index, too.
            "SET #status = :done REMOVE #gsi1pk, #gsi1sk",
            "attribute_exists(PK)",
            &[
                ("#status", STATUS),
                ("#gsi1pk", GSI1PK),
                ("#gsi1sk", GSI1SK),
            ],
            vec![(
                ":done",
                to_attribute_value(AlertStatus::Done).map_err(encoding_failed)?,
            )],
        )?;
        self.write(Single::Update(update), (), |_| {
            Verdict::Fail(StoreError::NotFound)
        })
        .await
    }
}

#[async_trait]
impl PendingAlerts for DynamoStore {
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>> {
        // The index is eventually consistent: an alert just completed may still be listed for a moment (the
        // dispatcher reads the alert itself, consistently, before doing anything), and one just written may
        // show up on the next call.
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1PK)
            .expression_attribute_names("#id", "id")
            .expression_attribute_values(":pk", s(PENDING_ALERTS_PK))
            .projection_expression("#id")
            .scan_index_forward(true);
        self.query(request, Some(limit), |item| {
            match string_attribute(&item, "id") {
                Some(id) => Ok(Some(AlertId(id.to_owned()))),
                None => {
                    tracing::error!("a pending-alert index entry without an id");
                    Err(StoreError::Unavailable(
                        "a stored record could not be read".into(),
                    ))
                }
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_alert_condition_reads_the_old_image() {
        let missing = |old| alert_verdict(old, |_| true, ());
        assert!(matches!(missing(None), Verdict::Fail(StoreError::NotFound)));
        assert!(matches!(
            missing(Some(&HashMap::new())),
            Verdict::Fail(StoreError::NotFound)
        ));
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
        let recorded = |i: &Item| map_member(i, OUTCOMES, key).is_some();
        assert!(matches!(
            alert_verdict(Some(&item), recorded, "recorded"),
            Verdict::Answer("recorded")
        ));
        let claimed = |i: &Item| map_member(i, CLAIMS, key).is_some();
        assert!(matches!(
            alert_verdict(Some(&item), claimed, "claimed"),
            Verdict::Retry
        ));
    }
}
