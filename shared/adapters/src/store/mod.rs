//! The two implementations of the storage port, held to one contract (`tests/tests/store_contract.rs`).
//!
//! # DynamoDB single-table layout
//!
//! | item | `PK` | `SK` | holds |
//! |---|---|---|---|
//! | practice | `PRACTICE#{practice_id}` | `PRACTICE` | the `Practice` fields, `version` |
//! | department | `PRACTICE#{practice_id}` | `DEPT#{department_id}` | `settings` (one map), `name_key`, `is_default`, `open_conversations`, `version`, timestamps |
//! | department name | `DEPTNAME#{practice_id}#{name_key}` | `DEPTNAME` | `department_id`: the name is taken |
//! | texting number | `SMSNUMBER#{e164}` | `SMSNUMBER` | `practice_id`: the owner |
//!
//! A practice and its departments share one item collection, so `practice_config` is one Query and
//! `practice_and_department` one BatchGetItem. The name and number records are written in the same
//! transaction as the change that claims or releases them, each with a condition, so uniqueness holds under
//! concurrency.

mod counter;
mod dynamo;
mod memory;
mod table;

pub use counter::RequestCounter;
pub use dynamo::DynamoStore;
pub use memory::MemoryStore;
pub use table::{ensure_table, table_spec, IndexSpec, KeyAttribute, TableSpec};
