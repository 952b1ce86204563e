//! A client's rate-limit counters on redb: `client_rates` (practice, client) → `ClientRate`, read with the
//! routing context and written in the same write transaction as the message it counts, after checking that
//! its `version` is still the one read (as DynamoDB's condition does). Kept, where DynamoDB lets its TTL
//! remove them: a few bytes per client, overwritten by its next window.

use domain::conversation::rate_limit::{ClientRate, RateUpdate};
use domain::identity::PracticeId;
use domain::store::{StoreError, StoreResult};
use redb::{ReadTransaction, TableDefinition, WriteTransaction};

use super::{engine, get, put, Json};

const CLIENT_RATES: TableDefinition<(&str, &str), Json> = TableDefinition::new("client_rates");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(CLIENT_RATES)?;
    Ok(())
}

pub(super) fn read_rate(
    tx: &ReadTransaction,
    practice_id: &PracticeId,
    client_id: &str,
) -> StoreResult<Option<ClientRate>> {
    let rates = tx.open_table(CLIENT_RATES).map_err(engine)?;
    get(&rates, (practice_id.0.as_str(), client_id))
}

/// The check of a write that carries counters, then their write: `VersionMismatch` unless they are still
/// as read. Called after the write's other checks; a failure aborts the transaction, which writes nothing.
pub(super) fn check_and_write_rate(
    tx: &WriteTransaction,
    practice_id: &PracticeId,
    update: Option<&RateUpdate>,
) -> StoreResult<()> {
    let Some(update) = update else {
        return Ok(());
    };
    let key = (practice_id.0.as_str(), update.next.client_id.as_str());
    let mut rates = tx.open_table(CLIENT_RATES).map_err(engine)?;
    let stored: Option<ClientRate> = get(&rates, key)?;
    if stored.map(|r| r.version) != update.read_version {
        return Err(StoreError::VersionMismatch);
    }
    put(&mut rates, key, &update.next)
}
