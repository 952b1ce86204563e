//! The edges that meet AWS: the SES v2 and SNS senders and alert delivery against moto, the SAM template
//! against the code (`template_drift`), the real function binaries run as Lambda runs them
//! (`lambda_events`) and under `cargo lambda watch` (`lambda_watch`).
//!
//! One test binary for all of them (each binary links the whole AWS SDK); a module per suite.
//! (`tls_trust` stays a binary of its own: it sets `SSL_CERT_FILE` for its whole process.)

mod alerts_moto;
mod fake_texting;
mod lambda_events;
mod lambda_watch;
mod realtime_fanout;
mod senders;
mod template_drift;
mod texting;
