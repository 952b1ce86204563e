//! Settings in memory: practices, departments, the department names and texting numbers they hold.

use std::collections::BTreeSet;

use async_trait::async_trait;
use domain::department::{name_key, Department};
use domain::identity::{DepartmentId, PracticeId};
use domain::practice::Practice;
use domain::store::{
    sort_departments, PracticeConfig, SettingsLookup, SettingsStore, StoreError, StoreResult,
};

use super::{MemoryStore, Tables};

/// Each number once, in the order given (the order conflicts are reported in).
fn distinct(numbers: &[String]) -> Vec<&String> {
    let mut seen = BTreeSet::new();
    numbers.iter().filter(|n| seen.insert(n.as_str())).collect()
}

impl Tables {
    fn department_key(department: &Department) -> (PracticeId, DepartmentId) {
        (department.practice_id.clone(), department.id.clone())
    }

    fn check_number_free(&self, number: &str, owner: &PracticeId) -> StoreResult<()> {
        match self.sms_numbers.get(number) {
            Some(current) if current != owner => Err(StoreError::SmsNumberTaken(number.to_owned())),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl SettingsLookup for MemoryStore {
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)> {
        let tables = self.lock();
        let practice = tables.practices.get(practice_id).cloned();
        let department = tables
            .departments
            .get(&(practice_id.clone(), department_id.clone()))
            .cloned();
        Ok((practice, department))
    }

    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>> {
        Ok(self.lock().sms_numbers.get(e164).cloned())
    }
}

#[async_trait]
impl SettingsStore for MemoryStore {
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>> {
        let tables = self.lock();
        let Some(practice) = tables.practices.get(practice_id) else {
            return Ok(None);
        };
        let mut departments: Vec<Department> = tables
            .departments
            .values()
            .filter(|d| &d.practice_id == practice_id)
            .cloned()
            .collect();
        sort_departments(&mut departments);
        Ok(Some(PracticeConfig {
            practice: practice.clone(),
            departments,
        }))
    }

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>> {
        Ok(self.lock().practices.get(practice_id).cloned())
    }

    async fn create_practice(
        &self,
        practice: &Practice,
        default_department: &Department,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        if tables.practices.contains_key(&practice.id) {
            return Err(StoreError::AlreadyExists);
        }
        let numbers = distinct(&practice.sms_numbers);
        for number in &numbers {
            tables.check_number_free(number, &practice.id)?;
        }
        let dept_key = Tables::department_key(default_department);
        if tables.departments.contains_key(&dept_key) {
            return Err(StoreError::AlreadyExists);
        }
        let name = (
            default_department.practice_id.clone(),
            name_key(&default_department.settings.name),
        );
        if tables.department_names.contains_key(&name) {
            return Err(StoreError::DuplicateName);
        }

        tables
            .practices
            .insert(practice.id.clone(), practice.clone());
        for number in numbers {
            tables
                .sms_numbers
                .insert(number.clone(), practice.id.clone());
        }
        tables
            .department_names
            .insert(name, default_department.id.clone());
        tables
            .departments
            .insert(dept_key, default_department.clone());
        Ok(())
    }

    async fn update_practice(&self, practice: &Practice, previous: &Practice) -> StoreResult<()> {
        let mut tables = self.lock();
        let Some(current) = tables.practices.get(&practice.id) else {
            return Err(StoreError::NotFound);
        };
        if current.version != previous.version {
            return Err(StoreError::VersionMismatch);
        }
        let before = distinct(&previous.sms_numbers);
        let after = distinct(&practice.sms_numbers);
        let added: Vec<&String> = after
            .iter()
            .copied()
            .filter(|n| !before.contains(n))
            .collect();
        let removed: Vec<&String> = before
            .iter()
            .copied()
            .filter(|n| !after.contains(n))
            .collect();
        for number in &added {
            tables.check_number_free(number, &practice.id)?;
        }
        // A number being released must not belong to someone else (it cannot, unless the data is corrupt).
        for number in &removed {
            tables
                .check_number_free(number, &practice.id)
                .map_err(|_| {
                    StoreError::Unavailable("texting number record is inconsistent".into())
                })?;
        }

        for number in removed {
            tables.sms_numbers.remove(number.as_str());
        }
        for number in added {
            tables
                .sms_numbers
                .insert(number.clone(), practice.id.clone());
        }
        tables
            .practices
            .insert(practice.id.clone(), practice.clone());
        Ok(())
    }

    async fn create_department(&self, department: &Department) -> StoreResult<()> {
        let mut tables = self.lock();
        if !tables.practices.contains_key(&department.practice_id) {
            return Err(StoreError::NotFound);
        }
        let dept_key = Tables::department_key(department);
        if tables.departments.contains_key(&dept_key) {
            return Err(StoreError::AlreadyExists);
        }
        let name = (
            department.practice_id.clone(),
            name_key(&department.settings.name),
        );
        if tables.department_names.contains_key(&name) {
            return Err(StoreError::DuplicateName);
        }

        tables.department_names.insert(name, department.id.clone());
        tables.departments.insert(dept_key, department.clone());
        Ok(())
    }

    async fn update_department(
        &self,
        department: &Department,
        previous: &Department,
    ) -> StoreResult<()> {
        let mut tables = self.lock();
        let dept_key = Tables::department_key(department);
        let Some(current) = tables.departments.get(&dept_key) else {
            return Err(StoreError::NotFound);
        };
        if current.version != previous.version {
            return Err(StoreError::VersionMismatch);
        }
        let old_name = (
            department.practice_id.clone(),
            name_key(&current.settings.name),
        );
        let new_name = (
            department.practice_id.clone(),
            name_key(&department.settings.name),
        );
        let renamed = old_name != new_name;
        if renamed && tables.department_names.contains_key(&new_name) {
            return Err(StoreError::DuplicateName);
        }

        if renamed {
            // Release the old name only if it is this department's (it always is, unless data is corrupt).
            if tables.department_names.get(&old_name) == Some(&department.id) {
                tables.department_names.remove(&old_name);
            }
            tables
                .department_names
                .insert(new_name, department.id.clone());
        }
        // Only what a settings write owns: never `open_conversations`, `is_default` or `created_at`.
        let Some(stored) = tables.departments.get_mut(&dept_key) else {
            return Err(StoreError::NotFound);
        };
        stored.settings = department.settings.clone();
        stored.next_reminder_at = department.next_reminder_at;
        stored.version = department.version;
        stored.updated_at = department.updated_at;
        Ok(())
    }

    async fn delete_department(&self, department: &Department) -> StoreResult<()> {
        let mut tables = self.lock();
        let dept_key = Tables::department_key(department);
        let Some(current) = tables.departments.get(&dept_key) else {
            return Err(StoreError::NotFound);
        };
        if current.open_conversations > 0 {
            return Err(StoreError::HasOpenConversations);
        }
        // The stored name, not the caller's copy: it may have been renamed since the caller read it.
        let name = (
            department.practice_id.clone(),
            name_key(&current.settings.name),
        );
        if tables.department_names.get(&name) == Some(&department.id) {
            tables.department_names.remove(&name);
        }
        tables.departments.remove(&dept_key);
        Ok(())
    }
}
