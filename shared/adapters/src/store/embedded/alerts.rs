//! The alert outbox on redb: each alert with its delivery claims, and the index of those still pending
//! (oldest first, DynamoDB's `ALERTS#pending` partition).

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use domain::alert::{AlertRecord, AlertStatus, DeliveryOutcome, PendingAlert};
use domain::conversation::AlertId;
use domain::store::{AlertOutbox, PendingAlerts, StoreError, StoreResult};
use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{engine, get, put, EmbeddedStore, Json};
use crate::store::sortable;

const ALERTS: TableDefinition<&str, Json> = TableDefinition::new("alerts");
/// (`created_at`, alert): the alerts still pending.
const PENDING: TableDefinition<(&str, &str), ()> = TableDefinition::new("pending_alerts");

pub(super) fn create_tables(tx: &WriteTransaction) -> Result<(), redb::Error> {
    tx.open_table(ALERTS)?;
    tx.open_table(PENDING)?;
    Ok(())
}

/// An alert as stored: the record and the leases on its deliveries (idempotency key → lease end).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct StoredAlert {
    pub(super) record: AlertRecord,
    pub(super) claims: BTreeMap<String, DateTime<Utc>>,
}

/// Writes a new alert, pending and with nothing delivered (the transactional outbox: inside the change
/// that causes it). `false`, writing nothing, when an alert of that id is already there.
pub(super) fn insert_alert(tx: &WriteTransaction, alert: &PendingAlert) -> StoreResult<bool> {
    let mut alerts = tx.open_table(ALERTS).map_err(engine)?;
    if alerts.get(alert.id.0.as_str()).map_err(engine)?.is_some() {
        return Ok(false);
    }
    let stored = StoredAlert {
        record: AlertRecord {
            alert: alert.clone(),
            status: AlertStatus::Pending,
            outcomes: Default::default(),
        },
        claims: BTreeMap::new(),
    };
    put(&mut alerts, alert.id.0.as_str(), &stored)?;
    tx.open_table(PENDING)
        .map_err(engine)?
        .insert(
            (sortable(alert.created_at).as_str(), alert.id.0.as_str()),
            (),
        )
        .map_err(engine)?;
    Ok(true)
}

/// Reads, changes and writes back one alert in a write transaction; `NotFound` if it is not there.
async fn change_alert<T: Send + 'static>(
    store: &EmbeddedStore,
    id: &AlertId,
    change: impl FnOnce(&mut StoredAlert) -> T + Send + 'static,
) -> StoreResult<T> {
    let id = id.clone();
    store
        .write(move |tx| {
            let mut alerts = tx.open_table(ALERTS).map_err(engine)?;
            let Some(mut stored) = get::<_, StoredAlert>(&alerts, id.0.as_str())? else {
                return Err(StoreError::NotFound);
            };
            let was_pending = stored.record.status == AlertStatus::Pending;
            let out = change(&mut stored);
            put(&mut alerts, id.0.as_str(), &stored)?;
            if was_pending && stored.record.status != AlertStatus::Pending {
                tx.open_table(PENDING)
                    .map_err(engine)?
                    .remove((
                        sortable(stored.record.alert.created_at).as_str(),
                        id.0.as_str(),
                    ))
                    .map_err(engine)?;
            }
            Ok(out)
        })
        .await
}

impl EmbeddedStore {
    /// Every alert written so far, whatever its status, oldest first (what tests read back).
    #[cfg(feature = "test-support")]
    pub fn all_alerts(&self) -> StoreResult<Vec<AlertRecord>> {
        self.read(|tx| {
            let alerts = tx.open_table(ALERTS).map_err(engine)?;
            let mut out = Vec::new();
            for row in alerts.iter().map_err(engine)? {
                out.push(super::decode::<StoredAlert>(row.map_err(engine)?.1.value())?.record);
            }
            out.sort_by(|a, b| {
                (a.alert.created_at, &a.alert.id).cmp(&(b.alert.created_at, &b.alert.id))
            });
            Ok(out)
        })
    }
}

#[async_trait]
impl AlertOutbox for EmbeddedStore {
    async fn get_alert(&self, id: &AlertId) -> StoreResult<Option<AlertRecord>> {
        self.read(|tx| {
            let alerts = tx.open_table(ALERTS).map_err(engine)?;
            Ok(get::<_, StoredAlert>(&alerts, id.0.as_str())?.map(|s| s.record))
        })
    }

    async fn claim_delivery(
        &self,
        id: &AlertId,
        key: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let key = key.to_owned();
        change_alert(self, id, move |stored| {
            if stored.record.outcomes.contains_key(&key)
                || stored.claims.get(&key).is_some_and(|until| *until > now)
            {
                return false;
            }
            stored.claims.insert(key, lease_until);
            true
        })
        .await
    }

    async fn release_delivery(&self, id: &AlertId, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        change_alert(self, id, move |stored| {
            stored.claims.remove(&key);
        })
        .await
    }

    async fn record_delivery(
        &self,
        id: &AlertId,
        key: &str,
        outcome: &DeliveryOutcome,
    ) -> StoreResult<()> {
        let (key, outcome) = (key.to_owned(), outcome.clone());
        change_alert(self, id, move |stored| {
            stored.claims.remove(&key);
            stored.record.outcomes.entry(key).or_insert(outcome);
        })
        .await
    }

    async fn complete_alert(&self, id: &AlertId) -> StoreResult<()> {
        change_alert(self, id, |stored| {
            stored.record.status = AlertStatus::Done;
        })
        .await
    }
}

#[async_trait]
impl PendingAlerts for EmbeddedStore {
    async fn pending_alert_ids(&self, limit: usize) -> StoreResult<Vec<AlertId>> {
        self.read(|tx| {
            let pending = tx.open_table(PENDING).map_err(engine)?;
            let mut out = Vec::new();
            for row in pending.iter().map_err(engine)?.take(limit) {
                let (key, _) = row.map_err(engine)?;
                out.push(AlertId(key.value().1.to_owned()));
            }
            Ok(out)
        })
    }
}
