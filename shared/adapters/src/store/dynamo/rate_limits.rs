//! A client's rate-limit counters on DynamoDB: one item per (practice, client), `RATE#{practice}#{client}` /
//! `RATE`, read in the inbound path's one `BatchGetItem` and put in the same `TransactWriteItems` as the
//! message it counts, on the condition that its `version` is still the one read. No request of its own;
//! `expires_at` (the end of its last window) lets the table's TTL remove it once it no longer counts.

use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason, TransactWriteItem};
use domain::conversation::rate_limit::{ClientRate, RateUpdate};
use domain::identity::PracticeId;
use domain::store::StoreResult;
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};

use super::codec::{decoding_failed, encoding_failed, n, put, Item, ABSENT};
use super::failed;
use super::keys::key;

pub(super) const RATE_SK: &str = "RATE";

pub(super) fn rate_key(practice_id: &PracticeId, client_id: &str) -> Item {
    key(format!("RATE#{practice_id}#{client_id}"), RATE_SK)
}

pub(super) fn read_rate(item: Item) -> StoreResult<ClientRate> {
    from_item(item).map_err(decoding_failed)
}

/// The counters' put of a transaction: only over the version read (or where there was none).
pub(super) fn rate_put(
    table: &str,
    practice_id: &PracticeId,
    update: &RateUpdate,
) -> StoreResult<TransactWriteItem> {
    let mut item: Item = to_item(&update.next).map_err(encoding_failed)?;
    item.extend(rate_key(practice_id, &update.next.client_id));
    item.insert(
        "expires_at".into(),
        AttributeValue::N(update.next.expires_at().to_string()),
    );
    match update.read_version {
        None => put(table, item, ABSENT, vec![]),
        Some(version) => put(table, item, "version = :read", vec![(":read", n(version))]),
    }
}

/// Did the counters' put (at `index` of the transaction) fail its condition: counted meanwhile by another
/// message of the client?
pub(super) fn rate_changed(reasons: &[CancellationReason], index: Option<usize>) -> bool {
    index.is_some_and(|i| failed(reasons, i).is_some())
}
