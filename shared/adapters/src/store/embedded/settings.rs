//! Settings on redb: practices, departments (with the DUE index of their reminders), the department names
//! and texting numbers they hold. Every write checks all its rules, in the DynamoDB transaction's order,
//! before it changes anything.

use async_trait::async_trait;
use domain::department::{name_key, Department};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::{
    sort_departments, PracticeConfig, SettingsLookup, SettingsStore, StoreError, StoreResult,
};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::{engine, get, past, put, EmbeddedStore, Json};
use crate::store::sortable;

pub(super) const PRACTICES: TableDefinition<&str, Json> = TableDefinition::new("practices");
pub(super) const DEPARTMENTS: TableDefinition<(&str, &str), Json> =
    TableDefinition::new("departments");
const DEPARTMENT_NAMES: TableDefinition<(&str, &str), &str> =
    TableDefinition::new("department_names");
const SMS_NUMBERS: TableDefinition<&str, &str> = TableDefinition::new("sms_numbers");
/// (`next_reminder_at`, department, practice): the departments by when their reminder is next due, ties
/// by department (as DynamoDB's DUE index answers them).
pub(super) const DUE_REMINDERS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("due_reminders");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(PRACTICES)?;
    tx.open_table(DEPARTMENTS)?;
    tx.open_table(DEPARTMENT_NAMES)?;
    tx.open_table(SMS_NUMBERS)?;
    tx.open_table(DUE_REMINDERS)?;
    Ok(())
}

/// The department as stored, read inside a write.
pub(super) fn stored_department(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
) -> StoreResult<Option<Department>> {
    let departments = tx.open_table(DEPARTMENTS).map_err(engine)?;
    get(
        &departments,
        (practice_id.0.as_str(), department_id.0.as_str()),
    )
}

/// Writes a department (`after`; `None` deletes it) over what is stored (`before`), and moves its row in
/// the DUE index when its `next_reminder_at` changes: the one place both are written.
pub(super) fn store_department(
    tx: &WriteTransaction,
    before: Option<&Department>,
    after: Option<&Department>,
) -> StoreResult<()> {
    let Some(department) = after.or(before) else {
        return Ok(());
    };
    let key = (department.practice_id.0.as_str(), department.id.0.as_str());
    let mut departments = tx.open_table(DEPARTMENTS).map_err(engine)?;
    match after {
        Some(after) => put(&mut departments, key, after)?,
        None => {
            departments.remove(key).map_err(engine)?;
        }
    }
    let was = before.and_then(|d| d.next_reminder_at);
    let will_be = after.and_then(|d| d.next_reminder_at);
    if was != will_be {
        let mut due = tx.open_table(DUE_REMINDERS).map_err(engine)?;
        if let Some(at) = was {
            due.remove((sortable(at).as_str(), key.1, key.0))
                .map_err(engine)?;
        }
        if let Some(at) = will_be {
            due.insert((sortable(at).as_str(), key.1, key.0), ())
                .map_err(engine)?;
        }
    }
    Ok(())
}

/// Adds `delta` to a department's `open_conversations` (never below zero). `NotFound` if it is gone.
pub(super) fn count_open(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    department_id: &DepartmentId,
    delta: i64,
) -> StoreResult<()> {
    let Some(stored) = stored_department(tx, practice_id, department_id)? else {
        return Err(StoreError::NotFound);
    };
    let mut next = stored.clone();
    next.open_conversations = (i64::from(stored.open_conversations) + delta).max(0) as u32;
    store_department(tx, Some(&stored), Some(&next))
}

fn check_number_free(
    numbers: &impl ReadableTable<&'static str, &'static str>,
    number: &str,
    owner: &PracticeId,
) -> StoreResult<()> {
    match numbers.get(number).map_err(engine)? {
        Some(current) if current.value() != owner.0 => {
            Err(StoreError::SmsNumberTaken(number.to_owned()))
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl SettingsLookup for EmbeddedStore {
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)> {
        self.read(|tx| {
            let practices = tx.open_table(PRACTICES).map_err(engine)?;
            let departments = tx.open_table(DEPARTMENTS).map_err(engine)?;
            Ok((
                get(&practices, practice_id.0.as_str())?,
                get(
                    &departments,
                    (practice_id.0.as_str(), department_id.0.as_str()),
                )?,
            ))
        })
    }

    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        self.number_owner(e164).await
    }

    async fn practice_by_whatsapp_id(
        &self,
        phone_number_id: &str,
    ) -> StoreResult<Option<PracticeId>> {
        self.number_owner(phone_number_id).await
    }
}

impl EmbeddedStore {
    /// The practice holding one of `Practice::number_claims` (a number `+…`, or a WhatsApp phone number id:
    /// one table, since the two never look alike).
    async fn number_owner(&self, claim: &str) -> StoreResult<Option<PracticeId>> {
        self.read(|tx| {
            let numbers = tx.open_table(SMS_NUMBERS).map_err(engine)?;
            let owner = numbers
                .get(claim)
                .map_err(engine)?
                .map(|g| PracticeId(g.value().to_owned()));
            Ok(owner)
        })
    }
}

#[async_trait]
impl SettingsStore for EmbeddedStore {
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>> {
        self.read(|tx| {
            let practices = tx.open_table(PRACTICES).map_err(engine)?;
            let Some(practice) = get::<_, Practice>(&practices, practice_id.0.as_str())? else {
                return Ok(None);
            };
            let departments = tx.open_table(DEPARTMENTS).map_err(engine)?;
            let p = practice_id.0.as_str();
            let past_p = past(p);
            let mut list = Vec::new();
            for row in departments
                .range((p, "")..(past_p.as_str(), ""))
                .map_err(engine)?
            {
                let (_, value) = row.map_err(engine)?;
                list.push(super::decode::<Department>(value.value())?);
            }
            sort_departments(&mut list);
            Ok(Some(PracticeConfig {
                practice,
                departments: list,
            }))
        })
    }

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>> {
        self.read(|tx| {
            let practices = tx.open_table(PRACTICES).map_err(engine)?;
            get(&practices, practice_id.0.as_str())
        })
    }

    async fn create_practice(
        &self,
        practice: &Practice,
        default_department: &Department,
    ) -> StoreResult<()> {
        let (practice, department) = (practice.clone(), default_department.clone());
        self.write(move |tx| {
            let numbers = practice.number_claims();
            let name = name_key(&department.settings.name);
            {
                let practices = tx.open_table(PRACTICES).map_err(engine)?;
                if practices
                    .get(practice.id.0.as_str())
                    .map_err(engine)?
                    .is_some()
                {
                    return Err(StoreError::AlreadyExists);
                }
                let owners = tx.open_table(SMS_NUMBERS).map_err(engine)?;
                for number in &numbers {
                    check_number_free(&owners, number, &practice.id)?;
                }
                if stored_department(tx, &department.practice_id, &department.id)?.is_some() {
                    return Err(StoreError::AlreadyExists);
                }
                let names = tx.open_table(DEPARTMENT_NAMES).map_err(engine)?;
                if names
                    .get((department.practice_id.0.as_str(), name.as_str()))
                    .map_err(engine)?
                    .is_some()
                {
                    return Err(StoreError::DuplicateName);
                }
            }

            put(
                &mut tx.open_table(PRACTICES).map_err(engine)?,
                practice.id.0.as_str(),
                &practice,
            )?;
            let mut owners = tx.open_table(SMS_NUMBERS).map_err(engine)?;
            for number in numbers {
                owners
                    .insert(number.as_str(), practice.id.0.as_str())
                    .map_err(engine)?;
            }
            drop(owners);
            tx.open_table(DEPARTMENT_NAMES)
                .map_err(engine)?
                .insert(
                    (department.practice_id.0.as_str(), name.as_str()),
                    department.id.0.as_str(),
                )
                .map_err(engine)?;
            store_department(tx, None, Some(&department))
        })
        .await
    }

    async fn update_practice(&self, practice: &Practice, previous: &Practice) -> StoreResult<()> {
        let (practice, previous) = (practice.clone(), previous.clone());
        self.write(move |tx| {
            let mut practices = tx.open_table(PRACTICES).map_err(engine)?;
            let Some(current) = get::<_, Practice>(&practices, practice.id.0.as_str())? else {
                return Err(StoreError::NotFound);
            };
            if current.version != previous.version {
                return Err(StoreError::VersionMismatch);
            }
            let before = previous.number_claims();
            let after = practice.number_claims();
            let added: Vec<&String> = after.iter().filter(|n| !before.contains(n)).collect();
            let removed: Vec<&String> = before.iter().filter(|n| !after.contains(n)).collect();
            let mut owners = tx.open_table(SMS_NUMBERS).map_err(engine)?;
            for number in &added {
                check_number_free(&owners, number, &practice.id)?;
            }
            // A number being released must not belong to someone else (it cannot, unless the data is
            // corrupt).
            for number in &removed {
                check_number_free(&owners, number, &practice.id).map_err(|_| {
                    StoreError::Unavailable("texting number record is inconsistent".into())
                })?;
            }

            for number in removed {
                owners.remove(number.as_str()).map_err(engine)?;
            }
            for number in added {
                owners
                    .insert(number.as_str(), practice.id.0.as_str())
                    .map_err(engine)?;
            }
            put(&mut practices, practice.id.0.as_str(), &practice)
        })
        .await
    }

    async fn create_department(&self, department: &Department) -> StoreResult<()> {
        let department = department.clone();
        self.write(move |tx| {
            let name = name_key(&department.settings.name);
            {
                let practices = tx.open_table(PRACTICES).map_err(engine)?;
                if practices
                    .get(department.practice_id.0.as_str())
                    .map_err(engine)?
                    .is_none()
                {
                    return Err(StoreError::NotFound);
                }
            }
            if stored_department(tx, &department.practice_id, &department.id)?.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            let mut names = tx.open_table(DEPARTMENT_NAMES).map_err(engine)?;
            let name_row = (department.practice_id.0.as_str(), name.as_str());
            if names.get(name_row).map_err(engine)?.is_some() {
                return Err(StoreError::DuplicateName);
            }
            names
                .insert(name_row, department.id.0.as_str())
                .map_err(engine)?;
            drop(names);
            store_department(tx, None, Some(&department))
        })
        .await
    }

    async fn update_department(
        &self,
        department: &Department,
        previous: &Department,
    ) -> StoreResult<()> {
        let (department, previous) = (department.clone(), previous.clone());
        self.write(move |tx| {
            let Some(current) = stored_department(tx, &department.practice_id, &department.id)?
            else {
                return Err(StoreError::NotFound);
            };
            if current.version != previous.version {
                return Err(StoreError::VersionMismatch);
            }
            let p = department.practice_id.0.as_str();
            let old_name = name_key(&current.settings.name);
            let new_name = name_key(&department.settings.name);
            if old_name != new_name {
                let mut names = tx.open_table(DEPARTMENT_NAMES).map_err(engine)?;
                if names.get((p, new_name.as_str())).map_err(engine)?.is_some() {
                    return Err(StoreError::DuplicateName);
                }
                // Release the old name only if it is this department's (it always is, unless the data
                // is corrupt).
                let holder = names
                    .get((p, old_name.as_str()))
                    .map_err(engine)?
                    .map(|g| g.value() == department.id.0);
                if holder == Some(true) {
                    names.remove((p, old_name.as_str())).map_err(engine)?;
                }
                names
                    .insert((p, new_name.as_str()), department.id.0.as_str())
                    .map_err(engine)?;
            }
            // Only what a settings write owns: never `open_conversations`, `is_default` or `created_at`.
            let mut stored = current.clone();
            stored.settings = department.settings.clone();
            stored.next_reminder_at = department.next_reminder_at;
            stored.version = department.version;
            stored.updated_at = department.updated_at;
            store_department(tx, Some(&current), Some(&stored))
        })
        .await
    }

    async fn delete_department(&self, department: &Department) -> StoreResult<()> {
        let department = department.clone();
        self.write(move |tx| {
            let Some(current) = stored_department(tx, &department.practice_id, &department.id)?
            else {
                return Err(StoreError::NotFound);
            };
            if current.open_conversations > 0 {
                return Err(StoreError::HasOpenConversations);
            }
            let p = department.practice_id.0.as_str();
            // The stored name, not the caller's copy: it may have been renamed since the caller read it.
            let name = name_key(&current.settings.name);
            let mut names = tx.open_table(DEPARTMENT_NAMES).map_err(engine)?;
            let holder = names
                .get((p, name.as_str()))
                .map_err(engine)?
                .map(|g| g.value() == department.id.0);
            if holder == Some(true) {
                names.remove((p, name.as_str())).map_err(engine)?;
            }
            drop(names);
            store_department(tx, Some(&current), None)
        })
        .await
    }
}
