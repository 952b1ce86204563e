//! Settings on DynamoDB: the practice, its departments (one item collection), department names and
//! texting and WhatsApp numbers and WhatsApp phone number ids (a record each, `Practice::number_claims`,
//! claimed and released in the transaction of the change).
//!
//! | method | requests |
//! |---|---|
//! | `practice_config` | one `Query` on the practice's collection (more pages only past 1 MB) |
//! | `get_practice`, `practice_by_sms_number`, `practice_by_whatsapp_id` | one `GetItem` (consistent) |
//! | `practice_and_department` | one `BatchGetItem` (consistent) |
//! | `create_practice` | one `TransactWriteItems` (practice, its numbers, default department, its name) |
//! | `update_practice` | one conditional `PutItem`; one `TransactWriteItems` when numbers change hands |
//! | `create_department` | one `TransactWriteItems` (practice check, department, its name) |
//! | `update_department` | one conditional `UpdateItem`; one `TransactWriteItems` for a rename |
//! | `delete_department` | one `TransactWriteItems` (the department if nothing is open, its name) |

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    CancellationReason, ConditionCheck, Put, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use chrono::{DateTime, Utc};
use domain::department::{name_key, Department, DepartmentSettings};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::{
    sort_departments, PracticeConfig, SettingsLookup, SettingsStore, StoreError, StoreResult,
};
use serde::{Deserialize, Serialize};
use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_attribute_value, to_item};

use super::codec::{
    build_failed, decoding_failed, delete, encoding_failed, n, number_attribute, put, s, sort_key,
    string_attribute, Item, ABSENT,
};
use super::keys::{
    department_key, department_name_key, department_sk, due_partition, number_claim_key,
    parse_sortable, practice_key, practice_pk, sms_number_key, sortable, whatsapp_id_key,
    DEPT_SK_PREFIX, PRACTICE_SK,
};
use super::{exists_in, failed, sdk_unavailable, DynamoStore, Single, Verdict};

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
            due_pk: d
                .next_reminder_at
                .map(|_| due_partition(&d.practice_id, &d.id)),
            due_at: d.next_reminder_at.map(sortable),
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
            next_reminder_at: self.due_at.as_deref().and_then(parse_sortable),
        }
    }
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

fn number_claim_item(claim: &str, practice_id: &PracticeId) -> Item {
    let mut item = number_claim_key(claim);
    item.insert("practice_id".into(), s(practice_id.as_str()));
    item
}

/// The practice and departments among the items of a practice's collection (other kinds are skipped).
pub(super) fn read_collection(
    items: Vec<Item>,
) -> StoreResult<(Option<Practice>, Vec<Department>)> {
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
// Conditions, and what their failures mean
// ---------------------------------------------------------------------------------------------------------

/// Claims a texting number for `owner` (already owning it is fine).
const CLAIM_NUMBER: &str = "attribute_not_exists(PK) OR practice_id = :owner";
/// Releases a record only if it is missing or held by `:owner` (never someone else's).
const RELEASE_NUMBER: &str = "attribute_not_exists(PK) OR practice_id = :owner";
const RELEASE_NAME: &str = "attribute_not_exists(PK) OR department_id = :department";
const AT_VERSION: &str = "attribute_exists(PK) AND #version = :previous";

/// A texting number claimed for `owner`, in the transaction of a create or an update of the practice.
fn claim_number(table: &str, e164: &str, owner: &PracticeId) -> StoreResult<TransactWriteItem> {
    put(
        table,
        number_claim_item(e164, owner),
        CLAIM_NUMBER,
        vec![(":owner", s(owner.as_str()))],
    )
}

/// The first of `numbers` (claimed from item `first` on) that another practice holds: `SmsNumberTaken`.
fn number_taken(
    reasons: &[CancellationReason],
    first: usize,
    numbers: &[String],
    owner: &PracticeId,
) -> Option<Verdict> {
    numbers
        .iter()
        .enumerate()
        .find(|(i, _)| failed(reasons, first + i).is_some_and(|old| held_by_other(old, owner)))
        .map(|(_, number)| Verdict::Fail(StoreError::SmsNumberTaken(number.clone())))
}

/// The condition a claim on a number failed for real: someone else holds it.
fn held_by_other(old: Option<&Item>, owner: &PracticeId) -> bool {
    old.and_then(|item| string_attribute(item, "practice_id"))
        .is_some_and(|holder| holder != owner.as_str())
}

/// A department's name claimed (`DuplicateName` when its record exists), in the transaction that creates
/// or renames the department.
fn claim_name(table: &str, department: &Department) -> StoreResult<TransactWriteItem> {
    put(table, department_name_item(department), ABSENT, vec![])
}

/// The release of a department's name record (`name_key`), in a rename's or a delete's transaction.
fn release_name(
    table: &str,
    department: &Department,
    name_key: &str,
) -> StoreResult<TransactWriteItem> {
    delete(
        table,
        department_name_key(department.practice_id.as_str(), name_key),
        RELEASE_NAME,
        vec![],
        vec![(":department", s(department.id.as_str()))],
    )
}

/// What a failed release of a name record (item `index`) means: only real if another department holds
/// it (the data is inconsistent); otherwise a conflict to retry.
fn name_release_failed(
    reasons: &[CancellationReason],
    index: usize,
    department: &Department,
) -> Verdict {
    let held_by_other = failed(reasons, index)
        .and_then(|old| old.and_then(|item| string_attribute(item, "department_id")))
        .is_some_and(|holder| holder != department.id.as_str());
    if held_by_other {
        tracing::error!(department = %department.id, "the name it releases belongs to another department");
        return inconsistent("department name");
    }
    Verdict::Retry
}

/// A record the change releases belongs to someone else: the data is inconsistent (the rules never allow it).
fn inconsistent(record: &str) -> Verdict {
    Verdict::Fail(StoreError::Unavailable(format!(
        "{record} record is inconsistent"
    )))
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

/// What a failed `AT_VERSION` condition of a single write (carrying `token`) means.
fn at_version(old: Option<&Item>, token: &str, previous: u64) -> Verdict {
    if applied_already(old, token) {
        return Verdict::Answer(());
    }
    match version_failure(old, previous) {
        Some(error) => Verdict::Fail(error),
        None => Verdict::Retry,
    }
}

/// The settings write of a department: only what an admin edits, at the version it was read. The same
/// `Update` goes alone (an `UpdateItem`) or in a rename's transaction.
fn settings_update(
    table: &str,
    department: &Department,
    previous: &Department,
    token: &str,
) -> StoreResult<Update> {
    let settings = to_attribute_value(&department.settings).map_err(encoding_failed)?;
    let updated_at = to_attribute_value(department.updated_at).map_err(encoding_failed)?;
    let mut values = HashMap::from([
        (":settings".to_owned(), settings),
        (
            ":name_key".to_owned(),
            s(name_key(&department.settings.name)),
        ),
        (":version".to_owned(), n(department.version)),
        (":updated_at".to_owned(), updated_at),
        (":previous".to_owned(), n(previous.version)),
        (":write_token".to_owned(), s(token)),
    ]);
    // A settings write also moves the department's entry in the due index (or takes it out).
    let expression = match department.next_reminder_at {
        Some(at) => {
            values.insert(
                ":due_pk".to_owned(),
                s(due_partition(&department.practice_id, &department.id)),
            );
            values.insert(":due_at".to_owned(), s(sortable(at)));
            "SET #settings = :settings, #name_key = :name_key, #version = :version, \
             #updated_at = :updated_at, #write_token = :write_token, DUE_PK = :due_pk, DUE_AT = :due_at"
        }
        None => {
            "SET #settings = :settings, #name_key = :name_key, #version = :version, \
             #updated_at = :updated_at, #write_token = :write_token REMOVE DUE_PK, DUE_AT"
        }
    };
    let names = ["settings", "name_key", "version", "updated_at", WRITE_TOKEN]
        .into_iter()
        .map(|a| (format!("#{a}"), a.to_owned()))
        .collect();
    Update::builder()
        .table_name(table)
        .set_key(Some(department_key(
            department.practice_id.as_str(),
            department.id.as_str(),
        )))
        .update_expression(expression)
        .condition_expression(AT_VERSION)
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(build_failed)
}

/// The practice written at the version it was read; with `token`, the item names this write (a single
/// `PutItem`, see [`applied_already`]). The same `Put` goes alone or in a transaction.
fn practice_put(
    table: &str,
    practice: &Practice,
    previous: &Practice,
    token: Option<&str>,
) -> StoreResult<Put> {
    let mut item = practice_item(practice)?;
    if let Some(token) = token {
        item.insert(WRITE_TOKEN.to_owned(), s(token));
    }
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(AT_VERSION)
        .expression_attribute_names("#version", "version")
        .expression_attribute_values(":previous", n(previous.version))
        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
        .build()
        .map_err(build_failed)
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
        let items = self
            .batch_get([
                practice_key(practice_id.as_str()),
                department_key(practice_id.as_str(), department_id.as_str()),
            ])
            .await?;
        let (practice, departments) = read_collection(items)?;
        Ok((
            practice,
            departments.into_iter().find(|d| &d.id == department_id),
        ))
    }

    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        self.number_owner(sms_number_key(e164)).await
    }

    async fn practice_by_whatsapp_id(
        &self,
        phone_number_id: &str,
    ) -> StoreResult<Option<PracticeId>> {
        self.number_owner(whatsapp_id_key(phone_number_id)).await
    }
}

impl DynamoStore {
    /// The practice a number's (or id's) uniqueness record names.
    async fn number_owner(&self, key: Item) -> StoreResult<Option<PracticeId>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
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
        let request = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(practice_pk(practice_id.as_str())))
            .consistent_read(true);
        let items = self.query(request, None, |item| Ok(Some(item))).await?;
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
        let numbers: Vec<String> = practice.number_claims();
        let build = || {
            let mut items = vec![put(&self.table, practice_item(practice)?, ABSENT, vec![])?];
            for number in &numbers {
                items.push(claim_number(&self.table, number, &practice.id)?);
            }
            items.push(put(
                &self.table,
                department_item(default_department)?,
                ABSENT,
                vec![],
            )?);
            items.push(claim_name(&self.table, default_department)?);
            Ok(items)
        };
        // Reasons come in item order: practice, numbers..., department, department name.
        let interpret = |reasons: &[CancellationReason]| {
            if failed(reasons, 0).is_some_and(exists_in) {
                return Verdict::Fail(StoreError::AlreadyExists);
            }
            if let Some(taken) = number_taken(reasons, 1, &numbers, &practice.id) {
                return taken;
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
        let before = previous.number_claims();
        let after = practice.number_claims();
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

        if added.is_empty() && removed.is_empty() {
            // No ownership changes: a conditional PutItem is enough (and half the cost of a transaction).
            let token = new_write_token();
            let put = practice_put(&self.table, practice, previous, Some(&token))?;
            return self
                .write(Single::Put(put), (), |old| {
                    at_version(old, &token, previous.version)
                })
                .await;
        }

        let owner = || vec![(":owner", s(practice.id.as_str()))];
        let build = || {
            let practice_put = practice_put(&self.table, practice, previous, None)?;
            let mut items = vec![TransactWriteItem::builder().put(practice_put).build()];
            for number in &added {
                items.push(claim_number(&self.table, number, &practice.id)?);
            }
            for number in &removed {
                items.push(delete(
                    &self.table,
                    number_claim_key(number),
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
            if let Some(taken) = number_taken(reasons, 1, &added, &practice.id) {
                return taken;
            }
            for i in 0..removed.len() {
                if failed(reasons, 1 + added.len() + i)
                    .is_some_and(|old| held_by_other(old, &practice.id))
                {
                    tracing::error!(practice = %practice.id, "a texting number it releases belongs to another practice");
                    return inconsistent("texting number");
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
                claim_name(&self.table, department)?,
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
        let token = new_write_token();
        let update = || settings_update(&self.table, department, previous, &token);

        if old_name == new_name {
            // The name record stays: one conditional UpdateItem.
            return self
                .write(Single::Update(update()?), (), |old| {
                    at_version(old, &token, previous.version)
                })
                .await;
        }

        // A rename: the settings write, the new name claimed and the old one released, together (the
        // transaction's own client request token makes its retries idempotent).
        let build = || {
            let update = update()?;
            Ok(vec![
                TransactWriteItem::builder().update(update).build(),
                claim_name(&self.table, department)?,
                release_name(&self.table, department, &old_name)?,
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
            name_release_failed(reasons, 2, department)
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
                release_name(&self.table, department, &name)?,
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
            name_release_failed(reasons, 1, department)
        };
        self.transact(build, interpret).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
