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

/// The country calling codes ITU has assigned, as the phone-number library's metadata lists them (a test
/// keeps the two equal).
const COUNTRY_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505, 506,
    507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675, 676,
    677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 800, 808, 850, 852,
    853, 855, 856, 870, 878, 880, 881, 882, 883, 886, 888, 960, 961, 962, 963, 964, 965, 966, 967,
    968, 970, 971, 972, 973, 974, 975, 976, 977, 979, 992, 993, 994, 995, 996, 998,
];

/// A number a gateway hands over (AWS End User Messaging, an integration's `from`): E.164, `+`, an assigned
/// country calling code, 7 to 15 digits in all (spaces, dashes, dots and parentheses between them dropped). Checked by its shape and country
/// code only: loading the full phone-number metadata costs a cold start tens of milliseconds on the first
/// text, and a gateway's number is one the network delivered. Numbers people type (settings, staff) go
/// through [`phone`].
pub fn gateway_number(raw: &str, field: &str) -> DomainResult<String> {
    let invalid = || {
        DomainError::invalid(
            InvalidCode::InvalidPhone,
            field,
            format!("{raw:?} is not an E.164 phone number (+ and 7 to 15 digits)"),
        )
    };
    // The visual separators people and some integrations write ("+1 201-555-0111") are dropped, as the
    // library's parser drops them.
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact.strip_prefix('+').ok_or_else(invalid)?;
    if !(7..=15).contains(&digits.len())
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || digits.starts_with('0')
    {
        return Err(invalid());
    }
    let assigned = (1..=3).any(|n| {
        digits[..n]
            .parse::<u16>()
            .is_ok_and(|code| COUNTRY_CODES.binary_search(&code).is_ok())
    });
    if !assigned {
        return Err(invalid());
    }
    Ok(format!("+{digits}"))
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

#[cfg(test)]
mod gateway_number_tests {
    use super::*;

    #[test]
    fn the_country_codes_are_the_phone_number_librarys() {
        let db = &*phonenumber::metadata::DATABASE;
        let library: Vec<u16> = (1u16..1000).filter(|c| db.by_code(c).is_some()).collect();
        assert_eq!(COUNTRY_CODES, library.as_slice());
    }

    #[test]
    fn gateway_numbers_are_e164_with_an_assigned_country_code() {
        assert_eq!(
            gateway_number("+12015550111", "from").unwrap(),
            "+12015550111"
        );
        assert_eq!(
            gateway_number("+1 (201) 555-0111", "from").unwrap(),
            "+12015550111"
        );
        assert_eq!(
            gateway_number(" +447700900123 ", "from").unwrap(),
            "+447700900123"
        );
        assert_eq!(gateway_number("+6831234", "from").unwrap(), "+6831234");
        for bad in [
            "",
            "12015550111",
            "+",
            "+1201",
            "+1234567890123456",
            "+1201555011a",
            "++12015550111",
            // No country calling code starts with 0, and 999 is not assigned.
            "+02015550111",
            "+99912345678",
        ] {
            let e = gateway_number(bad, "from").expect_err(bad);
            assert!(
                matches!(&e, DomainError::Invalid { code: InvalidCode::InvalidPhone, field, .. } if field == "from"),
                "{bad}: {e:?}"
            );
        }
    }

    /// What the library accepts as a valid E.164 number, the gateway check accepts too (the check is
    /// only ever looser, never refusing a real number).
    #[test]
    fn every_number_the_library_finds_valid_passes() {
        for raw in [
            "+12015550111",
            "+447911123456",
            "+61412345678",
            "+33612345678",
            "+8613800138000",
            "+5511987654321",
            "+27821234567",
            "+4915112345678",
            "+971501234567",
        ] {
            let n = phone(raw, "", "from").expect(raw);
            assert_eq!(gateway_number(raw, "from").unwrap(), e164(&n), "{raw}");
        }
    }
}
