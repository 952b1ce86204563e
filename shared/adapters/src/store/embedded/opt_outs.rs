//! Opt-outs on redb: `sms_opt_outs` (practice, number) → the instant the number opted out of the
//! practice's texts. Read with the routing context; written in the same write transaction as the keyword's
//! message (`conversations.rs`) after checking it is still as read, as DynamoDB's condition does.

use chrono::{DateTime, Utc};
use domain::identity::PracticeId;
use domain::store::{StoreError, StoreResult};
use redb::{ReadTransaction, TableDefinition, WriteTransaction};

use super::{engine, get, put, Json};

const OPT_OUTS: TableDefinition<(&str, &str), Json> = TableDefinition::new("sms_opt_outs");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(OPT_OUTS)?;
    Ok(())
}

pub(super) fn read_opt_out(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    number: &str,
) -> StoreResult<Option<DateTime<Utc>>> {
    let table = tx.open_table(OPT_OUTS).map_err(engine)?;
    get(&table, (practice_id.as_str(), number))
}

/// `VersionMismatch` unless the record is still `read`. Called with the write's other checks, before any
/// write.
pub(super) fn check_opt_out(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    number: &str,
    read: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    let table = tx.open_table(OPT_OUTS).map_err(engine)?;
    let stored: Option<DateTime<Utc>> = get(&table, (practice_id.as_str(), number))?;
    if stored == read {
        Ok(())
    } else {
        Err(StoreError::VersionMismatch)
    }
}

/// The record put (opted out since `opted_out_at`) or removed (`None`).
pub(super) fn write_opt_out(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    number: &str,
    opted_out_at: Option<DateTime<Utc>>,
) -> StoreResult<()> {
    let mut table = tx.open_table(OPT_OUTS).map_err(engine)?;
    let key = (practice_id.as_str(), number);
    match opted_out_at {
        Some(at) => put(&mut table, key, &at),
        None => table.remove(key).map(drop).map_err(engine),
    }
}

/// The record if there is one, else one since `at`: the instant it holds (the provider's refusal keeps
/// an earlier STOP's).
pub(super) fn keep_or_record(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    number: &str,
    at: DateTime<Utc>,
) -> StoreResult<DateTime<Utc>> {
    let mut table = tx.open_table(OPT_OUTS).map_err(engine)?;
    let key = (practice_id.as_str(), number);
    if let Some(earlier) = get::<_, DateTime<Utc>>(&table, key)? {
        return Ok(earlier);
    }
    put(&mut table, key, &at)?;
    Ok(at)
}
