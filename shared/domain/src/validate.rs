//! Value rules shared by practices and departments: names, emails, phone numbers, countries.

use std::str::FromStr;

use email_address::EmailAddress;
use phonenumber::country;
use serde::Deserialize;

use crate::error::{DomainError, DomainResult, InvalidCode};

pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_EMAILS: usize = 20;
pub const MAX_SMS_NUMBERS: usize = 10;
pub const MAX_TEXT_CHARS: usize = 1000;

/// A display name: trimmed, 1..=80 characters, no control characters.
pub fn name(raw: &str, field: &str) -> DomainResult<String> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS || trimmed.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            InvalidCode::InvalidName,
            field,
            format!("a name is 1 to {MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A free text shown to pet owners (greeting, after-hours message).
pub fn text(raw: &str, field: &str) -> DomainResult<String> {
    let trimmed = raw.trim();
    if trimmed.chars().count() > MAX_TEXT_CHARS {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            field,
            format!("at most {MAX_TEXT_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Alert emails as the dashboard sends them: a list, or one comma-separated line.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum EmailsInput {
    List(Vec<String>),
    Line(String),
}

impl Default for EmailsInput {
    fn default() -> Self {
        EmailsInput::List(Vec::new())
    }
}

/// Parses each address with a real RFC 5322 parser; keeps order, drops case-insensitive duplicates.
pub fn emails(input: &EmailsInput, field: &str) -> DomainResult<Vec<String>> {
    let parts: Vec<&str> = match input {
        EmailsInput::List(items) => items.iter().map(String::as_str).collect(),
        EmailsInput::Line(line) => line.split(',').collect(),
    };
    // Counted before any is parsed: a request cannot make the service parse thousands of addresses.
    let given = match input {
        EmailsInput::List(_) => parts.len(),
        EmailsInput::Line(_) => parts.iter().filter(|p| !p.trim().is_empty()).count(),
    };
    if given > MAX_EMAILS {
        return Err(too_many_emails(field));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let candidate = part.trim();
        if candidate.is_empty() && matches!(input, EmailsInput::Line(_)) {
            continue; // "a@x.example, " — a trailing comma is not an address
        }
        let at = match input {
            EmailsInput::List(_) => format!("{field}[{i}]"),
            EmailsInput::Line(_) => field.to_owned(),
        };
        let parsed = EmailAddress::from_str(candidate).map_err(|e| {
            DomainError::invalid(
                InvalidCode::InvalidEmail,
                &at,
                format!("{candidate:?} is not an email address: {e}"),
            )
        })?;
        // A bare local domain ("a@localhost") is valid RFC 5322 but cannot receive alerts from SES.
        if !parsed.domain().contains('.') || parsed.domain().starts_with('[') {
            return Err(DomainError::invalid(
                InvalidCode::InvalidEmail,
                &at,
                format!("{candidate:?} has no internet domain"),
            ));
        }
        let normalized = parsed.as_str().to_owned();
        if !out.iter().any(|e| e.eq_ignore_ascii_case(&normalized)) {
            out.push(normalized);
        }
    }
    Ok(out)
}

fn too_many_emails(field: &str) -> DomainError {
    DomainError::invalid(
        InvalidCode::TooLarge,
        field,
        format!("at most {MAX_EMAILS} alert emails"),
    )
}

/// An ISO 3166-1 alpha-2 country code, upper-cased.
pub fn country(raw: &str) -> DomainResult<String> {
    let upper = raw.trim().to_ascii_uppercase();
    if upper.len() == 2 && country::Id::from_str(&upper).is_ok() {
        Ok(upper)
    } else {
        Err(DomainError::invalid(
            InvalidCode::InvalidCountry,
            "country",
            format!("{raw:?} is not an ISO 3166-1 alpha-2 country code"),
        ))
    }
}

/// A valid phone number, normalised to E.164. Numbers without `+` are read in the practice's country.
pub fn phone(
    raw: &str,
    practice_country: &str,
    field: &str,
) -> DomainResult<phonenumber::PhoneNumber> {
    let region = country::Id::from_str(practice_country).ok();
    let invalid = || {
        DomainError::invalid(
            InvalidCode::InvalidPhone,
            field,
            format!("{raw:?} is not a valid phone number"),
        )
    };
    let number = phonenumber::parse(region, raw.trim()).map_err(|_| invalid())?;
    if !phonenumber::is_valid(&number) {
        return Err(invalid());
    }
    Ok(number)
}

pub fn e164(number: &phonenumber::PhoneNumber) -> String {
    number.format().mode(phonenumber::Mode::E164).to_string()
}

/// Phone numbers of a list, normalised, duplicates dropped.
pub fn phones(
    raw: &[String],
    practice_country: &str,
    field: &str,
    max: usize,
) -> DomainResult<Vec<phonenumber::PhoneNumber>> {
    if raw.len() > max {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            field,
            format!("at most {max} numbers"),
        ));
    }
    let mut out: Vec<phonenumber::PhoneNumber> = Vec::new();
    for (i, item) in raw.iter().enumerate() {
        let n = phone(item, practice_country, &format!("{field}[{i}]"))?;
        if !out.iter().any(|o| e164(o) == e164(&n)) {
            out.push(n);
        }
    }
    Ok(out)
}

/// SMS alerts exist only for practices in the US and Canada, and only to North American numbers.
pub fn sms_alert_numbers(
    raw: &[String],
    practice_country: &str,
    field: &str,
) -> DomainResult<Vec<String>> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    if !matches!(practice_country, "US" | "CA") {
        return Err(DomainError::invalid(
            InvalidCode::SmsAlertsUnavailableInCountry,
            field,
            "SMS alerts are available only to practices in the US and Canada",
        ));
    }
    // Counted before any is parsed, as `phones` does.
    if raw.len() > MAX_SMS_NUMBERS {
        return Err(DomainError::invalid(
            InvalidCode::TooLarge,
            field,
            format!("at most {MAX_SMS_NUMBERS} numbers"),
        ));
    }
    for (i, item) in raw.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if phone(item, practice_country, &at)?.code().value() != 1 {
            return Err(DomainError::invalid(
                InvalidCode::SmsAlertsUnavailableInCountry,
                at,
                format!("{item:?} is not a North American number; SMS alerts go only to US and Canadian numbers"),
            ));
        }
    }
    let numbers = phones(raw, practice_country, field, MAX_SMS_NUMBERS)?;
    Ok(numbers.iter().map(e164).collect())
}
