//! The storage port. Two adapters implement it (DynamoDB and the embedded in-memory store, in `adapters`)
//! and one contract test suite holds both to the same answers.

use async_trait::async_trait;

use crate::department::Department;
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A create found the record already there.
    #[error("the record already exists")]
    AlreadyExists,
    /// The record to change is not there (or was deleted meanwhile).
    #[error("the record does not exist")]
    NotFound,
    /// The record changed since it was read (optimistic concurrency).
    #[error("the record was changed concurrently")]
    VersionMismatch,
    /// Another department of the practice has this name (case-insensitive).
    #[error("a department with this name exists")]
    DuplicateName,
    /// A texting number already belongs to another practice.
    #[error("texting number {0} belongs to another practice")]
    SmsNumberTaken(String),
    /// The department still has open conversations.
    #[error("the department has open conversations")]
    HasOpenConversations,
    /// The backing service failed or throttled after its retries.
    #[error("{0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A practice with all its departments, read together (one query on DynamoDB).
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeConfig {
    pub practice: Practice,
    /// Default department first, then by name (case-insensitive).
    pub departments: Vec<Department>,
}

/// Orders departments as every list answers them: default first, then by name.
pub fn sort_departments(departments: &mut [Department]) {
    departments.sort_by(|a, b| {
        b.is_default
            .cmp(&a.is_default)
            .then_with(|| {
                a.settings
                    .name
                    .to_lowercase()
                    .cmp(&b.settings.name.to_lowercase())
            })
            .then_with(|| a.id.cmp(&b.id))
    });
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The practice and every department, in list order. `None` when the practice is not set up.
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>>;

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>>;

    /// The practice and one of its departments, read together.
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)>;

    /// Creates the practice with its default department, atomically: `AlreadyExists` if the practice is
    /// there, `SmsNumberTaken` if another practice owns one of its texting numbers.
    async fn create_practice(
        &self,
        practice: &Practice,
        default_department: &Department,
    ) -> StoreResult<()>;

    /// Replaces the practice if it is still at `previous.version` (`VersionMismatch` otherwise); texting
    /// numbers added are claimed (`SmsNumberTaken`), numbers removed are released. `practice.version` must
    /// be `previous.version + 1`.
    async fn update_practice(&self, practice: &Practice, previous: &Practice) -> StoreResult<()>;

    /// Adds a department to an existing practice: `DuplicateName` if the name is taken, `NotFound` if the
    /// practice does not exist.
    async fn create_department(&self, department: &Department) -> StoreResult<()>;

    /// Writes new settings if the department is still at `previous.version` (`VersionMismatch` otherwise,
    /// `NotFound` if deleted). Never touches `open_conversations`. A rename claims the new name
    /// (`DuplicateName`) and releases the old one. `department.version` must be `previous.version + 1`.
    async fn update_department(
        &self,
        department: &Department,
        previous: &Department,
    ) -> StoreResult<()>;

    /// Deletes a department that has no open conversations (`HasOpenConversations` otherwise, checked
    /// atomically with the delete); releases its name. `NotFound` if it is already gone.
    async fn delete_department(&self, department: &Department) -> StoreResult<()>;

    /// The practice that owns a texting number (E.164), if any.
    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>>;
}
