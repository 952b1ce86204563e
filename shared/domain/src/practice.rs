//! The practice (tenant): its name, time zone, country and texting numbers.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::conversation::Channel;
use crate::error::{DomainError, DomainResult, InvalidCode};
use crate::identity::{DepartmentId, PracticeId};
use crate::validate;

/// At most this many texting numbers per practice (each one is a uniqueness record written atomically).
pub const MAX_PRACTICE_SMS_NUMBERS: usize = 20;
/// At most this many WhatsApp numbers per practice (two uniqueness records each: the id and the number; a
/// practice's update then stays within one transaction's 100 items).
pub const MAX_PRACTICE_WHATSAPP_NUMBERS: usize = 10;
/// The longest WhatsApp phone number id (AWS's are `phone-number-id-` and 32 hex digits; Meta's, digits).
pub const MAX_PHONE_NUMBER_ID_CHARS: usize = 128;

/// One of the practice's WhatsApp Business numbers in AWS End User Messaging Social: its phone number id
/// (what a send names as `originationPhoneNumberId`, and what inbound messages are routed by) and its number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhatsappNumber {
    pub phone_number_id: String,
    pub number: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Practice {
    pub id: PracticeId,
    pub name: String,
    pub timezone: Tz,
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The practice's own texting numbers, E.164: an inbound text to one of them belongs to this practice.
    pub sms_numbers: Vec<String>,
    /// The practice's WhatsApp Business numbers: an inbound WhatsApp message to one of them belongs to it.
    #[serde(default)]
    pub whatsapp_numbers: Vec<WhatsappNumber>,
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
    #[serde(default)]
    pub whatsapp_numbers: Vec<WhatsappNumber>,
}

/// A validated `PracticeInput`.
#[derive(Debug, Clone, PartialEq)]
pub struct PracticeSettings {
    pub name: String,
    pub timezone: Tz,
    pub country: String,
    pub sms_numbers: Vec<String>,
    pub whatsapp_numbers: Vec<WhatsappNumber>,
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
            whatsapp_numbers: whatsapp_numbers(&self.whatsapp_numbers)?,
        })
    }
}

/// `whatsapp_numbers` checked: each id 1 to [`MAX_PHONE_NUMBER_ID_CHARS`] of letters, digits, `-` and `_`
/// (never a `+`, so an id and a number never share a uniqueness record), each number E.164; an id or a
/// number listed twice is refused (one id has one number).
fn whatsapp_numbers(raw: &[WhatsappNumber]) -> DomainResult<Vec<WhatsappNumber>> {
    if raw.len() > MAX_PRACTICE_WHATSAPP_NUMBERS {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            "whatsapp_numbers",
            format!("at most {MAX_PRACTICE_WHATSAPP_NUMBERS} WhatsApp numbers"),
        ));
    }
    let mut out: Vec<WhatsappNumber> = Vec::new();
    for (i, entry) in raw.iter().enumerate() {
        let id = entry.phone_number_id.trim();
        let id_field = format!("whatsapp_numbers[{i}].phone_number_id");
        let id_ok = !id.is_empty()
            && id.chars().count() <= MAX_PHONE_NUMBER_ID_CHARS
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(DomainError::invalid(
                InvalidCode::InvalidValue,
                id_field,
                format!(
                    "a phone_number_id is 1 to {MAX_PHONE_NUMBER_ID_CHARS} letters, digits, '-' or '_' \
                     (e.g. phone-number-id-0123456789abcdef0123456789abcdef)"
                ),
            ));
        }
        let number_field = format!("whatsapp_numbers[{i}].number");
        let number = validate::gateway_number(&entry.number, &number_field)?;
        if out.iter().any(|o| o.phone_number_id == id) {
            return Err(DomainError::invalid(
                InvalidCode::InvalidValue,
                id_field,
                format!("{id} is listed twice"),
            ));
        }
        if out.iter().any(|o| o.number == number) {
            return Err(DomainError::invalid(
                InvalidCode::InvalidValue,
                number_field,
                format!("{number} is listed twice"),
            ));
        }
        out.push(WhatsappNumber {
            phone_number_id: id.to_owned(),
            number,
        });
    }
    Ok(out)
}

impl Practice {
    /// The name of the default department: "<Practice name> Team".
    pub fn default_department_name(practice_name: &str) -> String {
        format!("{practice_name} Team")
    }

    /// What the practice holds against every other practice, each once: its texting numbers, its WhatsApp
    /// numbers (a number belongs to one practice at most, whichever way it texts) and its WhatsApp phone
    /// number ids. A number starts with `+`, an id never does, so the two never share a record.
    pub fn number_claims(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let all = self.sms_numbers.iter().chain(
            self.whatsapp_numbers
                .iter()
                .flat_map(|w| [&w.number, &w.phone_number_id]),
        );
        for claim in all {
            if !out.contains(claim) {
                out.push(claim.clone());
            }
        }
        out
    }

    /// The field of `PUT /practice` that names `claim` (a number or an id of [`Practice::number_claims`]).
    pub fn claim_field(&self, claim: &str) -> String {
        if self.sms_numbers.iter().any(|n| n == claim) {
            return "sms_numbers".into();
        }
        for (i, w) in self.whatsapp_numbers.iter().enumerate() {
            if w.number == claim {
                return format!("whatsapp_numbers[{i}].number");
            }
            if w.phone_number_id == claim {
                return format!("whatsapp_numbers[{i}].phone_number_id");
            }
        }
        "sms_numbers".into()
    }

    /// Whether `to` is one of the practice's numbers on `channel` (SMS: a texting number; WhatsApp: a phone
    /// number id).
    pub fn owns_reply_number(&self, channel: Channel, to: &str) -> bool {
        match channel {
            Channel::Sms => self.sms_numbers.iter().any(|n| n == to),
            Channel::Whatsapp => self
                .whatsapp_numbers
                .iter()
                .any(|w| w.phone_number_id == to),
            Channel::App | Channel::Web => false,
        }
    }

    /// Where replies on `channel` go out from when the client's message did not say which number it was
    /// written to: the first texting number (SMS) or the first WhatsApp phone number id.
    pub fn default_reply_number(&self, channel: Channel) -> Option<&str> {
        match channel {
            Channel::Sms => self.sms_numbers.first().map(String::as_str),
            Channel::Whatsapp => self
                .whatsapp_numbers
                .first()
                .map(|w| w.phone_number_id.as_str()),
            Channel::App | Channel::Web => None,
        }
    }
}
