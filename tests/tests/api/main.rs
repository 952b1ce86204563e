//! The HTTP contract through the local server's router (`vetchat_tests::api::Api`), on every store where
//! it touches one: settings, conversations, alerts and the reminder over HTTP; who may do what and the
//! limits (`security`); the routers against `openapi.yaml`; concurrent staff (`races`); DynamoDB faults;
//! bad input (`fuzz`, also run long by `scripts/fuzz`); the local server's binary on a data directory,
//! restarted and killed (`durability`).
//!
//! One test binary for all of them (each binary links the whole AWS SDK); a module per suite, so
//! `cargo nextest run --test api races::` runs one suite.

mod durability;
mod faults;
mod fuzz;
mod http_alerts;
mod http_client_view;
mod http_conversations;
mod http_reminder;
mod http_settings;
mod http_texting;
mod live;
mod openapi;
mod races;
mod security;
