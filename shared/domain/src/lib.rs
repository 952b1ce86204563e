//! The pure domain of the conversation backend for veterinary practices.
//!
//! No I/O, no clock, no environment: time and new ids come in as arguments; storage is the [`store`] ports, one per aggregate.

pub mod alert;
pub mod client_view;
pub mod conversation;
pub mod department;
pub mod error;
pub mod identity;
pub mod practice;
pub mod realtime;
pub mod reminder;
pub mod schedule;
pub mod settings;
pub mod store;
pub mod texting;
pub mod validate;
pub mod whatsapp;

pub use error::{ConflictCode, DomainError, DomainResult, InvalidCode};
