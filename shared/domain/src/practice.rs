//! The practice (tenant): its name, time zone, country and texting numbers.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{DepartmentId, PracticeId};
use crate::validate;

/// At most this many texting numbers per practice (each one is a uniqueness record written atomically).
pub const MAX_PRACTICE_SMS_NUMBERS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Practice {
    pub id: PracticeId,
    pub name: String,
    pub timezone: Tz,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The practice's own texting numbers, E.164: an inbound text to one of them belongs to this practice.
    pub sms_numbers: Vec<String>,
    pub default_department_id: DepartmentId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-concurrency counter for practice writes.
    #[serde(default)]
    pub version: u64,
}

/// `PUT /practice` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PracticeInput {
    pub name: String,
    pub timezone: String,
    pub country: String,
    #[serde(default)]
    pub sms_numbers: Vec<String>,
}

/// A validated `PracticeInput`.
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeSettings {
    pub name: String,
    pub timezone: Tz,
    pub country: String,
    pub sms_numbers: Vec<String>,
}

impl PracticeInput {
    pub fn validate(&self) -> DomainResult<PracticeSettings> {
        let name = validate::name(&self.name, "name")?;
        let timezone: Tz = self.timezone.trim().parse().map_err(|_| {
            DomainError::invalid(
                InvalidCode::InvalidTimeZone,
                "timezone",
                format!(
                    "{:?} is not an IANA time zone name (e.g. America/New_York)",
                    self.timezone
                ),
            )
        })?;
        let country = validate::country(&self.country)?;
        let numbers = validate::phones(
            &self.sms_numbers,
            &country,
            "sms_numbers",
            MAX_PRACTICE_SMS_NUMBERS,
        )?;
        Ok(PracticeSettings {
            name,
            timezone,
            country,
            sms_numbers: numbers.iter().map(validate::e164).collect(),
        })
    }
}

impl Practice {
    /// The name of the default department: "<Practice name> Team".
    pub fn default_department_name(practice_name: &str) -> String {
        format!("{practice_name} Team")
    }
}
