//! The store contract suites, one per aggregate, each test run on every store
//! (`vetchat_tests::on_every_store!`): what the embedded store (in memory and on a file) and DynamoDB Local must all answer.
//!
//! One test binary for all of them (each binary links the whole AWS SDK); a module per suite, so
//! `cargo nextest run --test stores conversation_contract::` runs one suite and `-E 'test(dynamo)'` one store.

mod alert_contract;
mod conversation_contract;
mod opt_out_contract;
mod realtime_contract;
mod reminder;
mod store_contract;
mod text_contract;
