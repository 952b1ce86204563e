//! What the functions share at the edges: stores, identity, the error-to-HTTP mapping, configuration,
//! telemetry, and the clock and id source the pure domain is handed.

pub mod auth;
pub mod aws;
pub mod config;
pub mod http;
pub mod lambda;
pub mod realtime;
pub mod senders;
pub mod store;
pub mod telemetry;
pub mod texting;

use chrono::{DateTime, Utc};

/// The one clock read of the service: the domain gets time as an argument.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// A new record id: a prefix that says what it is and a ULID (time-ordered, unguessable enough for ids
/// that are never secrets).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A ticket's secret: 256 random bits from the system's generator, base64url (43 characters).
pub fn new_ticket_secret() -> String {
    use aws_lc_rs::rand::SecureRandom;
    use base64::Engine;
    let mut bytes = [0u8; domain::realtime::TICKET_SECRET_BYTES];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system's random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The id source handed to the domain.
pub struct UlidIds;

impl domain::identity::Ids for UlidIds {
    fn next(&self, prefix: &str) -> String {
        new_id(prefix)
    }
}
