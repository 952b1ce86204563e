//! The DynamoDB store on the single table (layout in [`super`]).
//!
//! Every write that must keep a rule (name uniqueness, number ownership, versions) carries it as a
//! condition in the same request or transaction as the change, so there is no read-then-write race. When a
//! transaction is cancelled, the reason for each item (in request order) says which rule failed; items that
//! need it return their old image (`ReturnValuesOnConditionCheckFailure::AllOld`) so a missing record tells
//! `NotFound` apart from `VersionMismatch` and `HasOpenConversations`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ConditionCheck, Delete, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use domain::alert::{AlertRecord, DeliveryOutcome, PendingAlert};
use domain::conversation::{AlertId, Conversation, ConversationId, Message, Transfer};
use domain::department::{name_key, Department, DepartmentSettings};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::reminder::DueReminder;
use domain::store::ReminderClaim;
use domain::store::{
    sort_departments, AlertOutbox, ConversationDetail, ConversationFilter, ConversationHistory,
    ConversationIntake, ConversationPage, ConversationStore, NewConversation, OpenConversation,
    PendingAlerts, PracticeConfig, ReminderStore, RoutingContext, SettingsLookup, SettingsStore,
    StoreError, StoreResult, TransferStore,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};

use super::counter::RequestCounter;
use super::table::{
    department_name_pk, department_sk, practice_pk, sms_number_pk, DEPT_NAME_SK, DEPT_SK_PREFIX,
    PK, PRACTICE_SK, SK, SMS_NUMBER_SK,
};

// The conversation methods' items and requests.
#[path = "dynamo_conversations.rs"]
mod conversations;

// Transfers and the alert outbox's delivery side.
#[path = "dynamo_alerts.rs"]
mod alerts;
#[path = "dynamo_reminders.rs"]
mod reminders;

type Item = HashMap<String, AttributeValue>;

/// Attempts of one request while DynamoDB reports conflicting concurrent transactions on its items (or,
/// for a batch read, leaves keys unprocessed): about two seconds of backoff in all.
const ATTEMPTS: u32 = 8;

const CONDITIONAL_CHECK_FAILED: &str = "ConditionalCheckFailed";
const TRANSACTION_CONFLICT: &str = "TransactionConflict";

/// [`Store`] on one DynamoDB table. Build it once per process: it wraps the client with a request counter.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    counter: RequestCounter,
}

impl DynamoStore {
    /// Wraps `client` (its configuration is kept) with a [`RequestCounter`] interceptor.
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
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// DynamoDB requests this store has sent, by operation name (SDK retries included).
    pub fn request_counts(&self) -> BTreeMap<String, u64> {
        self.counter.counts()
    }

    /// The shared counter behind [`Self::request_counts`] (e.g. to reset it between measurements).
    pub fn request_counter(&self) -> &RequestCounter {
        &self.counter
    }
}

// ---------------------------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------------------------

/// A department item. The editable settings are one map attribute, so a settings write is a single `SET`
/// that cannot touch `open_conversations`, which conversation transactions change with `ADD`.
#[derive(Debug, Serialize, Deserialize)]
struct DepartmentItem {
    #[serde(rename = "PK")]
    pk: String,
    #[serde(rename = "SK")]
    sk: String,
    id: DepartmentId,
    practice_id: PracticeId,
    is_default: bool,
    /// The uniqueness key of the current name: a delete releases exactly the name record the item holds.
    name_key: String,
    settings: DepartmentSettings,
    #[serde(default)]
    open_conversations: u32,
    version: u64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// The sparse "due" index entry: present only while the reminder is on (`DUE_AT` = next reminder).
    #[serde(rename = "DUE_PK", default, skip_serializing_if = "Option::is_none")]
    due_pk: Option<String>,
    #[serde(rename = "DUE_AT", default, skip_serializing_if = "Option::is_none")]
    due_at: Option<String>,
}

/// The one partition of the due index: it holds only departments with the reminder on, each written once a
/// day, so it stays far below a partition's limits.
pub(super) const DUE_PARTITION: &str = "DUE";

impl DepartmentItem {
    fn new(d: &Department) -> Self {
        DepartmentItem {
            pk: practice_pk(d.practice_id.as_str()),
            sk: department_sk(d.id.as_str()),
            id: d.id.clone(),
            practice_id: d.practice_id.clone(),
            is_default: d.is_default,
            name_key: name_key(&d.settings.name),
            settings: d.settings.clone(),
            open_conversations: d.open_conversations,
            version: d.version,
            created_at: d.created_at,
            updated_at: d.updated_at,
            due_pk: d.next_reminder_at.map(|_| DUE_PARTITION.to_owned()),
            due_at: d.next_reminder_at.map(conversations::sortable),
        }
    }

    fn into_department(self) -> Department {
        Department {
            id: self.id,
            practice_id: self.practice_id,
            is_default: self.is_default,
            settings: self.settings,
            open_conversations: self.open_conversations,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            next_reminder_at: self.due_at.as_deref().and_then(|at| {
                DateTime::parse_from_rfc3339(at)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            }),
        }
    }
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn practice_key(practice_id: &str) -> Item {
    key(practice_pk(practice_id), PRACTICE_SK)
}

fn department_key(practice_id: &str, department_id: &str) -> Item {
    key(practice_pk(practice_id), &department_sk(department_id))
}

fn department_name_key(practice_id: &str, name_key: &str) -> Item {
    key(department_name_pk(practice_id, name_key), DEPT_NAME_SK)
}

fn sms_number_key(e164: &str) -> Item {
    key(sms_number_pk(e164), SMS_NUMBER_SK)
}

fn encoding_failed(e: serde_dynamo::Error) -> StoreError {
    tracing::error!(error = %e, "could not encode a DynamoDB item");
    StoreError::Unavailable("could not encode a record".into())
}

fn decoding_failed(e: serde_dynamo::Error) -> StoreError {
    tracing::error!(error = %e, "could not decode a DynamoDB item");
    StoreError::Unavailable("a stored record could not be read".into())
}

fn build_failed(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    tracing::error!(error = %e, "could not build a DynamoDB request");
    StoreError::Unavailable("could not build a DynamoDB request".into())
}

fn practice_item(practice: &Practice) -> StoreResult<Item> {
    let mut item = to_item(practice).map_err(encoding_failed)?;
    item.extend(practice_key(practice.id.as_str()));
    Ok(item)
}

fn department_item(department: &Department) -> StoreResult<Item> {
    to_item(DepartmentItem::new(department)).map_err(encoding_failed)
}

fn department_name_item(department: &Department) -> Item {
    let name_key = name_key(&department.settings.name);
    let mut item = department_name_key(department.practice_id.as_str(), &name_key);
    item.insert("department_id".into(), s(department.id.as_str()));
    item.insert("practice_id".into(), s(department.practice_id.as_str()));
    item
}

fn sms_number_item(e164: &str, practice_id: &PracticeId) -> Item {
    let mut item = sms_number_key(e164);
    item.insert("practice_id".into(), s(practice_id.as_str()));
    item
}

fn sort_key(item: &Item) -> Option<&str> {
    item.get(SK).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn string_attribute<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn number_attribute<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

/// The practice and departments among the items of a practice's collection (other kinds are skipped).
fn read_collection(items: Vec<Item>) -> StoreResult<(Option<Practice>, Vec<Department>)> {
    let mut practice = None;
    let mut departments = Vec::new();
    for item in items {
        match sort_key(&item) {
            Some(PRACTICE_SK) => {
                practice = Some(from_item::<Practice>(item).map_err(decoding_failed)?)
            }
            Some(sk) if sk.starts_with(DEPT_SK_PREFIX) => departments.push(
                from_item::<DepartmentItem>(item)
                    .map_err(decoding_failed)?
                    .into_department(),
            ),
            _ => {}
        }
    }
    Ok((practice, departments))
}

// ---------------------------------------------------------------------------------------------------------
// Errors and retries
// ---------------------------------------------------------------------------------------------------------

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

fn is_conflict<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.as_service_error().and_then(|se| se.code()) == Some("TransactionConflictException")
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

const KEPT_CONFLICTING: &str = "DynamoDB kept reporting conflicting writes";

/// What a cancelled transaction means for the operation that sent it.
enum Verdict {
    /// A rule failed: answer this.
    Fail(StoreError),
    /// No rule failed for good (the old images show the conditions hold): a concurrent transaction was in
    /// the way, try again. DynamoDB Local reports such conflicts as `ConditionalCheckFailed`.
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

fn put(
    table: &str,
    item: Item,
    condition: &str,
    values: Vec<(&str, AttributeValue)>,
) -> StoreResult<TransactWriteItem> {
    let mut builder = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .put(builder.build().map_err(build_failed)?)
        .build())
}

fn delete(
    table: &str,
    key: Item,
    condition: &str,
    names: Vec<(&str, &str)>,
    values: Vec<(&str, AttributeValue)>,
) -> StoreResult<TransactWriteItem> {
    let mut builder = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .condition_expression(condition)
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
    for (name, attribute) in names {
        builder = builder.expression_attribute_names(name, attribute);
    }
    for (name, value) in values {
        builder = builder.expression_attribute_values(name, value);
    }
    Ok(TransactWriteItem::builder()
        .delete(builder.build().map_err(build_failed)?)
        .build())
}

/// Claims a texting number for `owner` (already owning it is fine).
const CLAIM_NUMBER: &str = "attribute_not_exists(PK) OR practice_id = :owner";
/// Releases a record only if it is missing or held by `:owner` (never someone else's).
const RELEASE_NUMBER: &str = "attribute_not_exists(PK) OR practice_id = :owner";
const RELEASE_NAME: &str = "attribute_not_exists(PK) OR department_id = :department";
const ABSENT: &str = "attribute_not_exists(PK)";

/// The condition a claim on a number failed for real: someone else holds it.
fn held_by_other(old: Option<&Item>, owner: &PracticeId) -> bool {
    old.and_then(|item| string_attribute(item, "practice_id"))
        .is_some_and(|holder| holder != owner.as_str())
}

/// A failed release of a name record, for real: another department holds it (the data is inconsistent).
fn name_held_by_other(old: Option<&Item>, department_id: &DepartmentId) -> bool {
    old.and_then(|item| string_attribute(item, "department_id"))
        .is_some_and(|holder| holder != department_id.as_str())
}

/// The settings write of a department: only what an admin edits, at the version it was read.
struct SettingsUpdate {
    key: Item,
    values: HashMap<String, AttributeValue>,
}

/// A settings write also moves the department's entry in the due index (or takes it out).
fn settings_update_expression(department: &Department) -> &'static str {
    if department.next_reminder_at.is_some() {
        "SET #settings = :settings, #name_key = :name_key, #version = :version, #updated_at = :updated_at, \
         #write_token = :write_token, DUE_PK = :due_pk, DUE_AT = :due_at"
    } else {
        "SET #settings = :settings, #name_key = :name_key, #version = :version, #updated_at = :updated_at, \
         #write_token = :write_token REMOVE DUE_PK, DUE_AT"
    }
}
const AT_VERSION: &str = "attribute_exists(PK) AND #version = :previous";

fn settings_update(
    department: &Department,
    previous: &Department,
    token: &str,
) -> StoreResult<SettingsUpdate> {
    let settings = to_attribute_value(&department.settings).map_err(encoding_failed)?;
    let updated_at = to_attribute_value(department.updated_at).map_err(encoding_failed)?;
    Ok(SettingsUpdate {
        key: department_key(department.practice_id.as_str(), department.id.as_str()),
        values: HashMap::from([
            (":settings".to_owned(), settings),
            (
                ":name_key".to_owned(),
                s(name_key(&department.settings.name)),
            ),
            (":version".to_owned(), n(department.version)),
            (":updated_at".to_owned(), updated_at),
            (":previous".to_owned(), n(previous.version)),
            (":write_token".to_owned(), s(token)),
        ])
        .into_iter()
        .chain(department.next_reminder_at.into_iter().flat_map(|at| {
            [
                (":due_pk".to_owned(), s(DUE_PARTITION)),
                (":due_at".to_owned(), s(conversations::sortable(at))),
            ]
        }))
        .collect(),
    })
}

fn settings_update_names() -> HashMap<String, String> {
    ["settings", "name_key", "version", "updated_at", WRITE_TOKEN]
        .into_iter()
        .map(|a| (format!("#{a}"), a.to_owned()))
        .collect()
}

/// The attribute that names the last write of a practice or department item: a fresh token per store call,
/// the same on every attempt of that call.
const WRITE_TOKEN: &str = "write_token";

fn new_write_token() -> String {
    ulid::Ulid::new().to_string()
}

/// Whether a failed version condition failed on this very write: the old image carries this call's write
/// token. That happens when DynamoDB applied an attempt whose answer was lost (a timeout, a dropped
/// connection) and the SDK (or the conflict loop) sent it again; a plain `PutItem`/`UpdateItem` carries no
/// idempotency token, so the store recognises its own write instead of calling it stale. Another writer's
/// change carries another token and stays a version mismatch.
fn applied_already(old: Option<&Item>, token: &str) -> bool {
    old.and_then(|item| item.get(WRITE_TOKEN))
        .is_some_and(|t| t.as_s().is_ok_and(|t| t == token))
}

/// Why a department write at a version failed, from the item's old image: `None` if the condition holds.
fn version_failure(old: Option<&Item>, previous: u64) -> Option<StoreError> {
    match old.filter(|item| !item.is_empty()) {
        None => Some(StoreError::NotFound),
        Some(item) => match number_attribute::<u64>(item, "version") {
            Some(v) if v == previous => None,
            _ => Some(StoreError::VersionMismatch),
        },
    }
}

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
}

// ---------------------------------------------------------------------------------------------------------
// The port
// ---------------------------------------------------------------------------------------------------------

#[async_trait]
impl SettingsLookup for DynamoStore {
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)> {
        let keys = KeysAndAttributes::builder()
            .keys(practice_key(practice_id.as_str()))
            .keys(department_key(practice_id.as_str(), department_id.as_str()))
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
            // Keys DynamoDB did not get to (throttling, size) come back to be asked for again.
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
        let (practice, departments) = read_collection(items)?;
        Ok((
            practice,
            departments.into_iter().find(|d| &d.id == department_id),
        ))
    }

    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(sms_number_key(e164)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_unavailable("GetItem", &e))?;
        Ok(out
            .item
            .as_ref()
            .and_then(|item| string_attribute(item, "practice_id"))
            .map(PracticeId::from))
    }
}

#[async_trait]
impl SettingsStore for DynamoStore {
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>> {
        // One Query on the practice's collection; a second page only if the collection outgrows 1 MB.
        let mut items = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(practice_pk(practice_id.as_str())))
                .consistent_read(true)
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_unavailable("Query", &e))?;
            items.extend(out.items.unwrap_or_default());
            start_key = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start_key.is_none() {
                break;
            }
        }
        let (practice, mut departments) = read_collection(items)?;
        let Some(practice) = practice else {
            return Ok(None);
        };
        sort_departments(&mut departments);
        Ok(Some(PracticeConfig {
            practice,
            departments,
        }))
    }

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(practice_key(practice_id.as_str())))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_unavailable("GetItem", &e))?;
        out.item
            .map(|item| from_item(item).map_err(decoding_failed))
            .transpose()
    }

    async fn create_practice(
        &self,
        practice: &Practice,
        default_department: &Department,
    ) -> StoreResult<()> {
        let numbers: Vec<String> = distinct(&practice.sms_numbers);
        let owner = || vec![(":owner", s(practice.id.as_str()))];
        let build = || {
            let mut items = vec![put(&self.table, practice_item(practice)?, ABSENT, vec![])?];
            for number in &numbers {
                items.push(put(
                    &self.table,
                    sms_number_item(number, &practice.id),
                    CLAIM_NUMBER,
                    owner(),
                )?);
            }
            items.push(put(
                &self.table,
                department_item(default_department)?,
                ABSENT,
                vec![],
            )?);
            items.push(put(
                &self.table,
                department_name_item(default_department),
                ABSENT,
                vec![],
            )?);
            Ok(items)
        };
        // Reasons come in item order: practice, numbers..., department, department name.
        let interpret = |reasons: &[CancellationReason]| {
            if failed(reasons, 0).is_some_and(exists_in) {
                return Verdict::Fail(StoreError::AlreadyExists);
            }
            for (i, number) in numbers.iter().enumerate() {
                if failed(reasons, 1 + i).is_some_and(|old| held_by_other(old, &practice.id)) {
                    return Verdict::Fail(StoreError::SmsNumberTaken(number.clone()));
                }
            }
            if failed(reasons, 1 + numbers.len()).is_some_and(exists_in) {
                return Verdict::Fail(StoreError::AlreadyExists);
            }
            if failed(reasons, 2 + numbers.len()).is_some_and(exists_in) {
                return Verdict::Fail(StoreError::DuplicateName);
            }
            Verdict::Retry
        };
        self.transact(build, interpret).await
    }

    async fn update_practice(&self, practice: &Practice, previous: &Practice) -> StoreResult<()> {
        let before = distinct(&previous.sms_numbers);
        let after = distinct(&practice.sms_numbers);
        let added: Vec<String> = after
            .iter()
            .filter(|n| !before.contains(n))
            .cloned()
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|n| !after.contains(n))
            .cloned()
            .collect();
        let practice_put = || -> StoreResult<Put> {
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(practice_item(practice)?))
                .condition_expression(AT_VERSION)
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":previous", n(previous.version))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)
        };

        if added.is_empty() && removed.is_empty() {
            // No ownership changes: a conditional PutItem is enough (and half the cost of a transaction).
            let token = new_write_token();
            let mut item = practice_item(practice)?;
            item.insert(WRITE_TOKEN.to_owned(), s(&token));
            let mut backoff = Backoff::new(KEPT_CONFLICTING);
            loop {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item.clone()))
                    .condition_expression(AT_VERSION)
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":previous", n(previous.version))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => return Ok(()),
                    Err(e) if is_conflict(&e) => backoff.wait().await?,
                    Err(e) => {
                        let Some(PutItemError::ConditionalCheckFailedException(c)) =
                            e.as_service_error()
                        else {
                            return Err(sdk_unavailable("PutItem", &e));
                        };
                        if applied_already(c.item(), &token) {
                            return Ok(());
                        }
                        match version_failure(c.item(), previous.version) {
                            Some(error) => return Err(error),
                            None => backoff.wait().await?,
                        }
                    }
                }
            }
        }

        let owner = || vec![(":owner", s(practice.id.as_str()))];
        let build = || {
            let mut items = vec![TransactWriteItem::builder().put(practice_put()?).build()];
            for number in &added {
                items.push(put(
                    &self.table,
                    sms_number_item(number, &practice.id),
                    CLAIM_NUMBER,
                    owner(),
                )?);
            }
            for number in &removed {
                items.push(delete(
                    &self.table,
                    sms_number_key(number),
                    RELEASE_NUMBER,
                    vec![],
                    owner(),
                )?);
            }
            Ok(items)
        };
        // Reasons in item order: practice, added numbers..., removed numbers...
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(error) =
                failed(reasons, 0).and_then(|old| version_failure(old, previous.version))
            {
                return Verdict::Fail(error);
            }
            for (i, number) in added.iter().enumerate() {
                if failed(reasons, 1 + i).is_some_and(|old| held_by_other(old, &practice.id)) {
                    return Verdict::Fail(StoreError::SmsNumberTaken(number.clone()));
                }
            }
            for i in 0..removed.len() {
                if failed(reasons, 1 + added.len() + i)
                    .is_some_and(|old| held_by_other(old, &practice.id))
                {
                    tracing::error!(practice = %practice.id, "a texting number it releases belongs to another practice");
                    return Verdict::Fail(StoreError::Unavailable(
                        "texting number record is inconsistent".into(),
                    ));
                }
            }
            Verdict::Retry
        };
        self.transact(build, interpret).await
    }

    async fn create_department(&self, department: &Department) -> StoreResult<()> {
        let build = || {
            let practice_exists = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(practice_key(department.practice_id.as_str())))
                .condition_expression("attribute_exists(PK)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            Ok(vec![
                TransactWriteItem::builder()
                    .condition_check(practice_exists)
                    .build(),
                put(&self.table, department_item(department)?, ABSENT, vec![])?,
                put(
                    &self.table,
                    department_name_item(department),
                    ABSENT,
                    vec![],
                )?,
            ])
        };
        let interpret = |reasons: &[CancellationReason]| {
            if failed(reasons, 0).is_some_and(|old| !exists_in(old)) {
                Verdict::Fail(StoreError::NotFound)
            } else if failed(reasons, 1).is_some_and(exists_in) {
                Verdict::Fail(StoreError::AlreadyExists)
            } else if failed(reasons, 2).is_some_and(exists_in) {
                Verdict::Fail(StoreError::DuplicateName)
            } else {
                Verdict::Retry
            }
        };
        self.transact(build, interpret).await
    }

    async fn update_department(
        &self,
        department: &Department,
        previous: &Department,
    ) -> StoreResult<()> {
        let old_name = name_key(&previous.settings.name);
        let new_name = name_key(&department.settings.name);

        if old_name == new_name {
            // The name record stays: one conditional UpdateItem.
            let token = new_write_token();
            let mut backoff = Backoff::new(KEPT_CONFLICTING);
            loop {
                let update = settings_update(department, previous, &token)?;
                let result = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(update.key))
                    .update_expression(settings_update_expression(department))
                    .condition_expression(AT_VERSION)
                    .set_expression_attribute_names(Some(settings_update_names()))
                    .set_expression_attribute_values(Some(update.values))
                    .return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => return Ok(()),
                    Err(e) if is_conflict(&e) => backoff.wait().await?,
                    Err(e) => {
                        let Some(UpdateItemError::ConditionalCheckFailedException(c)) =
                            e.as_service_error()
                        else {
                            return Err(sdk_unavailable("UpdateItem", &e));
                        };
                        if applied_already(c.item(), &token) {
                            return Ok(());
                        }
                        match version_failure(c.item(), previous.version) {
                            Some(error) => return Err(error),
                            None => backoff.wait().await?,
                        }
                    }
                }
            }
        }

        // A rename: the settings write, the new name claimed and the old one released, together (the
        // transaction's own client request token makes its retries idempotent).
        let token = new_write_token();
        let build = || {
            let update = settings_update(department, previous, &token)?;
            let update = Update::builder()
                .table_name(&self.table)
                .set_key(Some(update.key))
                .update_expression(settings_update_expression(department))
                .condition_expression(AT_VERSION)
                .set_expression_attribute_names(Some(settings_update_names()))
                .set_expression_attribute_values(Some(update.values))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_failed)?;
            Ok(vec![
                TransactWriteItem::builder().update(update).build(),
                put(
                    &self.table,
                    department_name_item(department),
                    ABSENT,
                    vec![],
                )?,
                delete(
                    &self.table,
                    department_name_key(department.practice_id.as_str(), &old_name),
                    RELEASE_NAME,
                    vec![],
                    vec![(":department", s(department.id.as_str()))],
                )?,
            ])
        };
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(error) =
                failed(reasons, 0).and_then(|old| version_failure(old, previous.version))
            {
                return Verdict::Fail(error);
            }
            if failed(reasons, 1).is_some_and(exists_in) {
                return Verdict::Fail(StoreError::DuplicateName);
            }
            if failed(reasons, 2).is_some_and(|old| name_held_by_other(old, &department.id)) {
                tracing::error!(department = %department.id, "the name it releases belongs to another department");
                return Verdict::Fail(StoreError::Unavailable(
                    "department name record is inconsistent".into(),
                ));
            }
            Verdict::Retry
        };
        self.transact(build, interpret).await
    }

    async fn delete_department(&self, department: &Department) -> StoreResult<()> {
        // The name to release is the one stored on the item; the caller's copy may predate a rename. The
        // delete is conditioned on it, and a mismatch retries with the stored name.
        let stored_name = Mutex::new(name_key(&department.settings.name));
        let current_name = || {
            stored_name
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        };
        let build = || {
            let name = current_name();
            Ok(vec![
                delete(
                    &self.table,
                    department_key(department.practice_id.as_str(), department.id.as_str()),
                    "attribute_exists(PK) AND #name_key = :name_key \
                     AND (attribute_not_exists(#open) OR #open <= :zero)",
                    vec![("#name_key", "name_key"), ("#open", "open_conversations")],
                    vec![(":name_key", s(name.clone())), (":zero", n(0))],
                )?,
                delete(
                    &self.table,
                    department_name_key(department.practice_id.as_str(), &name),
                    RELEASE_NAME,
                    vec![],
                    vec![(":department", s(department.id.as_str()))],
                )?,
            ])
        };
        let interpret = |reasons: &[CancellationReason]| {
            if let Some(old) = failed(reasons, 0) {
                let Some(item) = old.filter(|item| !item.is_empty()) else {
                    return Verdict::Fail(StoreError::NotFound);
                };
                if number_attribute::<i64>(item, "open_conversations").unwrap_or(0) > 0 {
                    return Verdict::Fail(StoreError::HasOpenConversations);
                }
                if let Some(stored) = string_attribute(item, "name_key") {
                    *stored_name.lock().unwrap_or_else(PoisonError::into_inner) = stored.to_owned();
                }
                return Verdict::Retry;
            }
            if failed(reasons, 1).is_some_and(|old| name_held_by_other(old, &department.id)) {
                tracing::error!(department = %department.id, "the name it releases belongs to another department");
                return Verdict::Fail(StoreError::Unavailable(
                    "department name record is inconsistent".into(),
                ));
            }
            Verdict::Retry
        };
        self.transact(build, interpret).await
    }
}

#[async_trait]
impl ConversationIntake for DynamoStore {
    async fn routing_context(
        &self,
        practice_id: &PracticeId,
        client_id: &str,
        department_id: &DepartmentId,
    ) -> StoreResult<RoutingContext> {
        self.conversations_routing_context(practice_id, client_id, department_id)
            .await
    }

    async fn start_conversation(&self, new: &NewConversation) -> StoreResult<()> {
        self.conversations_start(new).await
    }

    async fn append_messages(
        &self,
        practice_id: &PracticeId,
        open: &OpenConversation,
        messages: &[Message],
        dedup_key: Option<&str>,
    ) -> StoreResult<()> {
        self.conversations_append(practice_id, open, messages, dedup_key)
            .await
    }
}

#[async_trait]
impl ConversationHistory for DynamoStore {
    async fn conversation_detail(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<ConversationDetail>> {
        self.conversations_detail(practice_id, id).await
    }
}

#[async_trait]
impl ConversationStore for DynamoStore {
    async fn get_conversation(
        &self,
        practice_id: &PracticeId,
        id: &ConversationId,
    ) -> StoreResult<Option<Conversation>> {
        self.conversations_get(practice_id, id).await
    }

    async fn end_conversation(
        &self,
        conversation: &Conversation,
        at: DateTime<Utc>,
    ) -> StoreResult<Conversation> {
        self.conversations_end(conversation, at).await
    }

    async fn list_conversations(
        &self,
        practice_id: &PracticeId,
        filter: &ConversationFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> StoreResult<ConversationPage> {
        self.conversations_list(practice_id, filter, cursor, limit)
            .await
    }
}

#[async_trait]
impl TransferStore for DynamoStore {
    async fn transfer_conversation(
        &self,
        conversation: &Conversation,
        transfer: &Transfer,
        alert: &PendingAlert,
    ) -> StoreResult<Conversation> {
        self.alerts_transfer(conversation, transfer, alert).await
    }
}

#[async_trait]
impl AlertOutbox for DynamoStore {
    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
        self.alerts_get(id).await
    }

    async fn claim_delivery(
        &self,
        id: &AlertId,
        key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        self.alerts_claim(id, key, now, lease_until).await
    }

    async fn release_delivery(&self, id: &AlertId, key: &str) -> StoreResult<()> {
        self.alerts_release(id, key).await
    }

    async fn record_delivery(
        &self,
        id: &AlertId,
        key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        self.alerts_record(id, key, outcome).await
    }

    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()> {
        self.alerts_complete(id).await
    }
}

#[async_trait]
impl PendingAlerts for DynamoStore {
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>> {
        self.alerts_pending(limit).await
    }
}

#[async_trait]
impl ReminderStore for DynamoStore {
    async fn due_reminders(
        &self,
        until: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<DueReminder>> {
        self.reminders_due(until, limit).await
    }

    async fn open_conversations_in(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<Vec<Conversation>> {
        self.reminders_open_conversations(practice_id, department_id)
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
        self.reminders_advance(practice_id, department_id, from, to, alert)
            .await
    }
}

/// Each number once, in the order given (the order conflicts are reported in).
fn distinct(numbers: &[String]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    numbers
        .iter()
        .filter(|n| seen.insert(n.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str, old: Option<Item>) -> CancellationReason {
        CancellationReason::builder()
            .code(code)
            .set_item(old)
            .build()
    }

    fn department_image(version: u64) -> Item {
        HashMap::from([
            ("PK".to_owned(), s("PRACTICE#p")),
            ("version".to_owned(), n(version)),
        ])
    }

    #[test]
    fn a_failed_version_condition_reads_the_old_image() {
        assert_eq!(version_failure(None, 3), Some(StoreError::NotFound));
        assert_eq!(
            version_failure(Some(&HashMap::new()), 3),
            Some(StoreError::NotFound)
        );
        assert_eq!(
            version_failure(Some(&department_image(4)), 3),
            Some(StoreError::VersionMismatch)
        );
        // The condition holds on the old image: a conflict reported as a failed check, not a rule.
        assert_eq!(version_failure(Some(&department_image(3)), 3), None);
    }

    #[test]
    fn only_failed_conditions_count() {
        let reasons = [
            reason("None", None),
            reason(CONDITIONAL_CHECK_FAILED, Some(department_image(1))),
            reason(TRANSACTION_CONFLICT, None),
        ];
        assert_eq!(failed(&reasons, 0), None);
        assert!(failed(&reasons, 1).is_some_and(exists_in));
        assert_eq!(failed(&reasons, 2), None);
        assert_eq!(failed(&reasons, 9), None);
    }

    #[test]
    fn a_number_is_taken_only_by_another_holder() {
        let held_by = |p: &str| HashMap::from([("practice_id".to_owned(), s(p))]);
        let me = PracticeId::from("me");
        assert!(held_by_other(Some(&held_by("other")), &me));
        assert!(!held_by_other(Some(&held_by("me")), &me));
        assert!(!held_by_other(None, &me));
    }

    #[test]
    fn department_items_keep_settings_in_one_map() {
        let item = DepartmentItem {
            pk: practice_pk("p"),
            sk: department_sk("d"),
            id: DepartmentId::from("d"),
            practice_id: PracticeId::from("p"),
            is_default: false,
            name_key: "surgery".into(),
            settings: DepartmentSettings::defaults("Surgery".into()),
            open_conversations: 0,
            version: 1,
            created_at: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
            due_pk: None,
            due_at: None,
        };
        let encoded = to_item(&item).expect("encode");
        assert!(
            !encoded.contains_key("DUE_PK"),
            "no reminder: not in the due index"
        );
        assert!(encoded["settings"].is_m());
        assert_eq!(encoded["open_conversations"], n(0));
        assert_eq!(encoded["PK"], s("PRACTICE#p"));
        assert_eq!(encoded["SK"], s("DEPT#d"));
        let decoded: DepartmentItem = from_item(encoded).expect("decode");
        assert_eq!(decoded.settings, item.settings);
    }
}
