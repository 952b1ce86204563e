//! The DynamoDB store on the single table (layout in [`super`]). One file per aggregate, each opening with
//! its requests and their budget; the item keys in [`keys`], attribute and item helpers in [`codec`]; here
//! the store itself and the request loops every aggregate shares, each written once:
//!
//! - [`DynamoStore::transact`]: a transaction, its conflicts retried, its failed conditions judged;
//! - [`DynamoStore::write`]: the same for a conditional write of one item (a `PutItem` or `UpdateItem` of
//!   the `Put` or `Update` a transaction would carry);
//! - [`DynamoStore::batch_get`]: a `BatchGetItem`, keys left unprocessed asked for again;
//! - [`DynamoStore::query`]: a `Query`, page after page.
//!
//! Every write that must keep a rule (name uniqueness, number ownership, versions) carries it as a
//! condition in the same request or transaction as the change, so there is no read-then-write race. When a
//! condition fails, the old image of the item (`ReturnValuesOnConditionCheckFailure::AllOld`) says which
//! rule failed, and whether one did: DynamoDB Local reports conflicting transactions as failed conditions,
//! which the old image shows to hold.

mod alerts;
mod changes;
mod codec;
mod conversations;
#[cfg(feature = "test-support")]
mod counter;
mod keys;
mod opt_outs;
mod rate_limits;
mod realtime;
mod reminders;
mod settings;
mod table;
mod texts;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    CancellationReason, KeysAndAttributes, Put, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use domain::store::{StoreError, StoreResult};

use super::ChangeFeed;
pub use changes::change_of_record;
use codec::{build_failed, Item};
#[cfg(feature = "test-support")]
pub use counter::RequestCounter;
pub use keys::{due_partition, DUE_SHARDS};
pub use table::{ensure_table, table_spec, IndexSpec, KeyAttribute, TableSpec};

/// The store traits of `domain::store` on one DynamoDB table. Build it once per process. With the
/// `test-support` feature it counts the requests it sends ([`RequestCounter`]), for the budget tests and
/// the benchmarks.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    #[cfg(feature = "test-support")]
    counter: RequestCounter,
    feed: ChangeFeed,
}

impl DynamoStore {
    #[cfg(not(feature = "test-support"))]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
            feed: ChangeFeed::default(),
        }
    }

    /// Wraps `client` (its configuration is kept) with a [`RequestCounter`] interceptor.
    #[cfg(feature = "test-support")]
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        let counter = RequestCounter::new();
        let config = client
            .config()
            .to_builder()
            .interceptor(counter.clone())
            .build();
        DynamoStore {
            client: Client::from_conf(config),
            table: table.into(),
            counter,
            feed: ChangeFeed::default(),
        }
    }

    /// The store, handing the changes of the writes it commits to `feed`: the local server's fanout on
    /// DynamoDB (the writes this process makes; on AWS the table's stream carries every writer's).
    pub fn with_change_feed(mut self, feed: ChangeFeed) -> Self {
        self.feed = feed;
        self
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// DynamoDB requests this store has sent, by operation name (SDK retries included).
    #[cfg(feature = "test-support")]
    pub fn request_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.counter.counts()
    }

    /// The shared counter behind [`Self::request_counts`] (e.g. to reset it between measurements).
    #[cfg(feature = "test-support")]
    pub fn request_counter(&self) -> &RequestCounter {
        &self.counter
    }
}

// ---------------------------------------------------------------------------------------------------------
// Errors, backoff, and what a failed condition means
// ---------------------------------------------------------------------------------------------------------

/// Attempts of one request while DynamoDB reports conflicting concurrent transactions on its items (or,
/// for a batch read, leaves keys unprocessed): about two seconds of backoff in all.
const ATTEMPTS: u32 = 8;

const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
const TRANSACTION_CONFLICT: &str = "TransactionConflict";
const KEPT_CONFLICTING: &str = "DynamoDB kept reporting conflicting writes";

/// A short, internals-free reason for a failed request; the full error goes to the log.
fn sdk_unavailable<E, R>(operation: &str, e: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    tracing::warn!(operation, error = %DisplayErrorContext(e), "DynamoDB request failed");
    let reason = match e {
        SdkError::ServiceError(se) => se.err().code().unwrap_or("service error"),
        SdkError::TimeoutError(_) => "timeout",
        SdkError::DispatchFailure(_) => "could not connect",
        SdkError::ResponseError(_) => "unreadable response",
        SdkError::ConstructionFailure(_) => "could not build the request",
        _ => "unknown error",
    };
    StoreError::Unavailable(format!("DynamoDB {operation} failed: {reason}"))
}

/// Exponential backoff with jitter, for requests that met concurrent transactions on the same items.
struct Backoff {
    attempt: u32,
    /// The `Unavailable` reason when the attempts are spent.
    give_up: &'static str,
}

impl Backoff {
    fn new(give_up: &'static str) -> Self {
        Backoff {
            attempt: 0,
            give_up,
        }
    }

    /// Sleeps before the next attempt, or gives up as `Unavailable` when the attempts are spent.
    async fn wait(&mut self) -> StoreResult<()> {
        self.attempt += 1;
        if self.attempt >= ATTEMPTS {
            return Err(StoreError::Unavailable(self.give_up.into()));
        }
        let cap_ms = (10u64 << self.attempt).min(1_000);
        // Jitter spreads writers that collided so they do not collide again in lockstep.
        let sleep_ms = fastrand::u64(cap_ms / 2..=cap_ms);
        tokio::time::sleep(Duration::from_millis(sleep_ms)).await;
        Ok(())
    }
}

/// What a failed condition means for the operation that sent it, judged from the old image.
enum Verdict<T = ()> {
    /// The operation's answer after all (its own earlier attempt was applied; the rule's failure is an
    /// answer, such as a delivery already claimed).
    Answer(T),
    /// A rule failed: answer this.
    Fail(StoreError),
    /// No rule failed for good (the old image shows the condition holds): a concurrent transaction was in
    /// the way, try again.
    Retry,
}

/// The cancellation reason of item `index`, if its condition failed: `Some(old image)`.
fn failed(reasons: &[CancellationReason], index: usize) -> Option<Option<&Item>> {
    reasons
        .get(index)
        .filter(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED))
        .map(|r| r.item())
}

/// A failed condition on an item put with `attribute_not_exists(PK)`: real only if the item exists.
fn exists_in(old: Option<&Item>) -> bool {
    old.is_some_and(|item| !item.is_empty())
}

/// A conditional write of one item, sent alone: the `Put` or `Update` a transaction would carry, so a write
/// that goes either way is built once.
enum Single {
    Put(Put),
    Update(Update),
}

/// One attempt of a [`Single`] write, as [`DynamoStore::write`] judges it.
enum Attempt {
    Written,
    /// The condition failed; the item's old image (`None` when the item is missing).
    ConditionFailed(Option<Item>),
    /// A concurrent transaction held the item.
    Conflict,
}

/// Reads the answer to a `PutItem` or `UpdateItem`; `condition_failed` picks the operation's
/// `ConditionalCheckFailedException` (with its old image) out of its errors.
fn attempt<O, E, R>(
    operation: &str,
    result: Result<O, SdkError<E, R>>,
    condition_failed: fn(&E) -> Option<Option<Item>>,
) -> StoreResult<Attempt>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let e = match result {
        Ok(_) => return Ok(Attempt::Written),
        Err(e) => e,
    };
    if e.as_service_error().and_then(|se| se.code()) == Some("TransactionConflictException") {
        return Ok(Attempt::Conflict);
    }
    match e.as_service_error().and_then(condition_failed) {
        Some(old) => Ok(Attempt::ConditionFailed(old)),
        None => Err(sdk_unavailable(operation, &e)),
    }
}

// ---------------------------------------------------------------------------------------------------------
// The request loops
// ---------------------------------------------------------------------------------------------------------

impl DynamoStore {
    /// Sends a transaction built by `build`, retrying conflicts with backoff; `interpret` maps failed
    /// conditions to the operation's answer. `build` runs again before each retry (it may depend on what
    /// `interpret` learned).
    async fn transact(
        &self,
        mut build: impl FnMut() -> StoreResult<Vec<TransactWriteItem>>,
        mut interpret: impl FnMut(&[CancellationReason]) -> Verdict,
    ) -> StoreResult<()> {
        let mut backoff = Backoff::new(KEPT_CONFLICTING);
        loop {
            let items = build()?;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let reasons = match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons()
                }
                _ => return Err(sdk_unavailable("TransactWriteItems", &err)),
            };
            if reasons
                .iter()
                .any(|r| r.code() == Some(CONDITIONAL_CHECK_FAILED))
            {
                match interpret(reasons) {
                    Verdict::Answer(()) => return Ok(()),
                    Verdict::Fail(e) => return Err(e),
                    Verdict::Retry => {}
                }
            } else if !reasons
                .iter()
                .any(|r| r.code() == Some(TRANSACTION_CONFLICT))
            {
                // Neither a rule nor a conflict: throttling, validation, item size...
                let codes: BTreeSet<&str> = reasons
                    .iter()
                    .filter_map(|r| r.code())
                    .filter(|c| *c != "None")
                    .collect();
                tracing::warn!(?codes, error = %DisplayErrorContext(&err), "DynamoDB transaction cancelled");
                let codes: Vec<&str> = codes.into_iter().collect();
                return Err(StoreError::Unavailable(format!(
                    "DynamoDB transaction cancelled: {}",
                    codes.join(", ")
                )));
            }
            tracing::debug!(
                attempt = backoff.attempt,
                "DynamoDB transaction conflict, retrying"
            );
            backoff.wait().await?;
        }
    }

    /// Sends a conditional write of one item until it is written, retrying conflicting transactions with
    /// backoff; a failed condition is `judge`d from the item's old image, as [`Self::transact`] judges a
    /// cancelled transaction. `written` is the answer once it is written.
    async fn write<T>(
        &self,
        write: Single,
        written: T,
        mut judge: impl FnMut(Option<&Item>) -> Verdict<T>,
    ) -> StoreResult<T> {
        let mut backoff = Backoff::new(KEPT_CONFLICTING);
        loop {
            match self.send_single(&write).await? {
                Attempt::Written => return Ok(written),
                Attempt::Conflict => {}
                Attempt::ConditionFailed(old) => match judge(old.as_ref()) {
                    Verdict::Answer(answer) => return Ok(answer),
                    Verdict::Fail(e) => return Err(e),
                    Verdict::Retry => {}
                },
            }
            backoff.wait().await?;
        }
    }

    /// One attempt of a [`Single`] write: the same item, key, expressions and condition as in a transaction.
    async fn send_single(&self, write: &Single) -> StoreResult<Attempt> {
        match write {
            Single::Put(put) => {
                let result = self
                    .client
                    .put_item()
                    .table_name(put.table_name())
                    .set_item(Some(put.item().clone()))
                    .set_condition_expression(put.condition_expression().map(str::to_owned))
                    .set_expression_attribute_names(put.expression_attribute_names().cloned())
                    .set_expression_attribute_values(put.expression_attribute_values().cloned())
                    .set_return_values_on_condition_check_failure(
                        put.return_values_on_condition_check_failure().cloned(),
                    )
                    .send()
                    .await;
                attempt("PutItem", result, |e| match e {
                    PutItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
                    _ => None,
                })
            }
            Single::Update(update) => {
                let result = self
                    .client
                    .update_item()
                    .table_name(update.table_name())
                    .set_key(Some(update.key().clone()))
                    .update_expression(update.update_expression())
                    .set_condition_expression(update.condition_expression().map(str::to_owned))
                    .set_expression_attribute_names(update.expression_attribute_names().cloned())
                    .set_expression_attribute_values(update.expression_attribute_values().cloned())
                    .set_return_values_on_condition_check_failure(
                        update.return_values_on_condition_check_failure().cloned(),
                    )
                    .send()
                    .await;
                attempt("UpdateItem", result, |e| match e {
                    UpdateItemError::ConditionalCheckFailedException(c) => Some(c.item().cloned()),
                    _ => None,
                })
            }
        }
    }

    /// The items at `keys`, read consistently in one `BatchGetItem` (in no particular order); keys DynamoDB
    /// did not get to (throttling, size) are asked for again after a backoff.
    async fn batch_get(&self, keys: impl IntoIterator<Item = Item>) -> StoreResult<Vec<Item>> {
        let keys = KeysAndAttributes::builder()
            .set_keys(Some(keys.into_iter().collect()))
            .consistent_read(true)
            .build()
            .map_err(build_failed)?;
        let mut request = std::collections::HashMap::from([(self.table.clone(), keys)]);
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
                None => return Ok(items),
                Some(unprocessed) => {
                    backoff.wait().await?;
                    request = unprocessed;
                }
            }
        }
    }

    /// A Query of one partition of a secondary index (`pk_attribute = pk`), ready for more conditions.
    fn index_query(&self, index: &str, pk_attribute: &str, pk: String) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(index)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", pk_attribute)
            .expression_attribute_values(":pk", codec::s(pk))
    }

    /// What `request` finds, page after page (DynamoDB ends a page at 1 MB, or at the page size asked):
    /// each item `decode`d (`None` leaves it out). With `limit`, pages ask only for what is still missing,
    /// reading stops once `limit` are found, and at most `limit` are answered.
    async fn query<T>(
        &self,
        request: QueryFluentBuilder,
        limit: Option<usize>,
        mut decode: impl FnMut(Item) -> StoreResult<Option<T>>,
    ) -> StoreResult<Vec<T>> {
        let mut found = Vec::new();
        if limit == Some(0) {
            return Ok(found);
        }
        let mut start_key = None;
        loop {
            let mut page = request.clone().set_exclusive_start_key(start_key.take());
            if let Some(limit) = limit {
                let missing = limit.saturating_sub(found.len()).max(1);
                page = page.limit(i32::try_from(missing).unwrap_or(i32::MAX));
            }
            let out = page
                .send()
                .await
                .map_err(|e| sdk_unavailable("Query", &e))?;
            for item in out.items.unwrap_or_default() {
                if let Some(value) = decode(item)? {
                    found.push(value);
                }
            }
            match out.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(key) if limit.is_none_or(|limit| found.len() < limit) => start_key = Some(key),
                _ => break,
            }
        }
        if let Some(limit) = limit {
            found.truncate(limit);
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use codec::n;

    fn reason(code: &str, old: Option<Item>) -> CancellationReason {
        CancellationReason::builder()
            .code(code)
            .set_item(old)
            .build()
    }

    #[test]
    fn only_failed_conditions_count() {
        let image = Item::from([("version".to_owned(), n(1))]);
        let reasons = [
            reason("None", None),
            reason(CONDITIONAL_CHECK_FAILED, Some(image)),
            reason(TRANSACTION_CONFLICT, None),
        ];
        assert_eq!(failed(&reasons, 0), None);
        assert!(failed(&reasons, 1).is_some_and(exists_in));
        assert_eq!(failed(&reasons, 2), None);
        assert_eq!(failed(&reasons, 9), None);
    }
}
