//! The settings aggregate: a practice, its departments, and the texting numbers it owns.

use async_trait::async_trait;

use super::StoreResult;
use crate::department::Department;
use crate::identity::{DepartmentId, PracticeId};
use crate::practice::Practice;

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

/// The reads of a practice's settings that other flows make: the alert dispatcher and the reminder (the
/// department to alert), the inbound-text entry (who owns the number texted). Single-item reads only.
#[async_trait]
pub trait SettingsLookup: Send + Sync {
    /// The practice and one of its departments, read together.
    async fn practice_and_department(
        &self,
        practice_id: &PracticeId,
        department_id: &DepartmentId,
    ) -> StoreResult<(Option<Practice>, Option<Department>)>;

    /// The practice that owns a texting number (E.164), if any.
    async fn practice_by_sms_number(&self, e164: &str) -> StoreResult<Option<PracticeId>>;

    /// The practice that owns a WhatsApp phone number id (`whatsapp_numbers[].phone_number_id`), if any.
    async fn practice_by_whatsapp_id(
        &self,
        phone_number_id: &str,
    ) -> StoreResult<Option<PracticeId>>;
}

/// Settings as admins edit them (config-api).
#[async_trait]
pub trait SettingsStore: SettingsLookup {
    /// The practice and every department, in list order. `None` when the practice is not set up.
    async fn practice_config(
        &self,
        practice_id: &PracticeId,
    ) -> StoreResult<Option<PracticeConfig>>;

    async fn get_practice(&self, practice_id: &PracticeId) -> StoreResult<Option<Practice>>;

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
}
